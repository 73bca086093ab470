//! Errors of [`JwksVerifier`](super::JwksVerifier): at build time and while verifying.

use reqwest::Url;

use crate::bearer::verify::remote::{FetchError, UrlError};

/// A configuration error found by [`JwksVerifierBuilder::build`](super::JwksVerifierBuilder::build).
///
/// ```
/// use tower_mcp_auth::{bearer::{JwksConfigError, JwksVerifier}};
///
/// let err = JwksVerifier::from_issuer("auth.example.com").audience("https://mcp/mcp").build();
/// assert!(matches!(err, Err(JwksConfigError::InvalidUrl(_))));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwksConfigError {
    /// The issuer or JWKS URL is not an absolute `http(s)` URL.
    #[error("invalid URL {0}")]
    InvalidUrl(String),
    /// Plain `http` to a host that is not loopback; see
    /// [`allow_http`](super::JwksVerifierBuilder::allow_http).
    #[error("refusing plain http for {0}: keys fetched without TLS can be replaced in transit")]
    InsecureUrl(String),
    /// No audience was configured. Without one, a token issued for any other resource of the
    /// same identity provider would be accepted (RFC 8707).
    #[error("a JWKS verifier needs an audience (your resource URL)")]
    MissingAudience,
    /// The algorithm allowlist holds no asymmetric algorithm (HMAC is never taken from a JWKS).
    #[error("the algorithm allowlist has no asymmetric algorithm")]
    NoAlgorithms,
    /// The default HTTP client could not be built (no TLS roots, ...).
    #[error("HTTP client: {0}")]
    HttpClient(String),
}

impl From<UrlError> for JwksConfigError {
    fn from(e: UrlError) -> Self {
        match e {
            UrlError::Invalid(m) => JwksConfigError::InvalidUrl(m),
            UrlError::Insecure(m) => JwksConfigError::InsecureUrl(m),
        }
    }
}

/// Why fetching the keys failed. The verifier keeps its last good keys meanwhile.
///
/// ```
/// use std::time::Duration;
/// use tower_mcp_auth::{bearer::{JwksError, JwksVerifier}};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// // Nothing listens on port 9 of the loopback interface.
/// let verifier = JwksVerifier::from_jwks_url("http://127.0.0.1:9/jwks")
///     .audience("https://mcp.example.com/mcp")
///     .fetch_timeout(Duration::from_millis(500))
///     .build()
///     .unwrap();
/// let err = verifier.refresh().await.unwrap_err();
/// assert!(matches!(err, JwksError::Fetch { .. } | JwksError::Timeout), "{err}");
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// A request to the identity provider failed (unreachable, timeout, not 200, bad JSON).
    #[error("{url}: {reason}")]
    Fetch {
        /// The URL fetched.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The discovery document is for another issuer (RFC 8414 section 3.3).
    #[error("discovery document names issuer {found:?}, expected {expected:?}")]
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// The document's `issuer`.
        found: Option<String>,
    },
    /// The discovery document has no usable `jwks_uri`.
    #[error("discovery document has no usable jwks_uri: {0}")]
    NoJwksUri(String),
    /// The JWK set holds no key this verifier can use.
    #[error("the JWK set has no usable signing key")]
    NoUsableKeys,
    /// The whole attempt took longer than its budget (twice the fetch timeout).
    #[error("fetching keys took too long")]
    Timeout,
}

impl JwksError {
    pub(super) fn fetch(url: &Url, e: FetchError) -> Self {
        JwksError::Fetch {
            url: url.to_string(),
            reason: e.to_string(),
        }
    }
}
