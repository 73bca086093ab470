//! Configuration errors of [`IntrospectionVerifierBuilder`](super::IntrospectionVerifierBuilder).

use crate::bearer::verify::remote::UrlError;

/// A configuration error found by [`IntrospectionVerifierBuilder::build`](super::IntrospectionVerifierBuilder::build).
///
/// ```
/// use tower_mcp_auth::{bearer::{IntrospectionConfigError, IntrospectionVerifier}};
///
/// let err = IntrospectionVerifier::builder("not a url", "id", "secret").build().unwrap_err();
/// assert!(matches!(err, IntrospectionConfigError::InvalidUrl(_)));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IntrospectionConfigError {
    /// The endpoint is not an absolute `http(s)` URL.
    #[error("invalid URL {0}")]
    InvalidUrl(String),
    /// Plain `http` to a host that is not loopback; see
    /// [`allow_http`](super::IntrospectionVerifierBuilder::allow_http). The client secret and the
    /// tokens would travel in clear.
    #[error("refusing plain http for {0}: tokens and the client secret would travel in clear")]
    InsecureUrl(String),
    /// The client credentials cannot be sent in a header (control characters).
    #[error("client credentials contain characters that cannot be sent")]
    InvalidCredentials,
    /// The default HTTP client could not be built.
    #[error("HTTP client: {0}")]
    HttpClient(String),
}

impl From<UrlError> for IntrospectionConfigError {
    fn from(e: UrlError) -> Self {
        match e {
            UrlError::Invalid(m) => IntrospectionConfigError::InvalidUrl(m),
            UrlError::Insecure(m) => IntrospectionConfigError::InsecureUrl(m),
        }
    }
}
