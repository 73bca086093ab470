//! Why an exchange failed, or a configuration was refused.

use std::fmt;

/// Why [`TokenExchange::exchange`](super::TokenExchange::exchange) gave no token. Messages
/// never contain a token or the client secret.
///
/// ```
/// use tower_mcp_auth::exchange::ExchangeError;
///
/// let e = ExchangeError::Refused { code: "invalid_target".into() };
/// assert_eq!(e.to_string(), "the identity provider refused the exchange: invalid_target");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExchangeError {
    /// The caller is not a verified bearer-token identity with a subject (an API key, an
    /// anonymous request), or the request has no `Authorization: Bearer` token to exchange.
    NoSubjectToken,
    /// The identity provider answered with an RFC 6749 error (`invalid_grant`: the caller's
    /// token is not acceptable; `invalid_target` / `invalid_scope`: not for this downstream;
    /// `unauthorized_client`: this server may not exchange). Only `[a-z_]` codes are kept.
    Refused {
        /// The `error` code.
        code: String,
    },
    /// The identity provider could not be reached, timed out, or answered something that is
    /// not a token-exchange answer.
    Unavailable(String),
}

impl fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExchangeError::NoSubjectToken => {
                f.write_str("the caller has no verified bearer token to exchange")
            }
            ExchangeError::Refused { code } => {
                write!(f, "the identity provider refused the exchange: {code}")
            }
            ExchangeError::Unavailable(e) => write!(f, "token exchange unavailable: {e}"),
        }
    }
}

impl std::error::Error for ExchangeError {}

/// Why [`TokenExchangeBuilder::build`](super::TokenExchangeBuilder::build) refused the
/// configuration.
///
/// ```
/// use tower_mcp_auth::exchange::{ExchangeConfigError, TokenExchange};
///
/// let err = TokenExchange::builder("http://idp.example/token", "id", "secret").build().unwrap_err();
/// assert!(matches!(err, ExchangeConfigError::InsecureUrl(_)));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExchangeConfigError {
    /// The token endpoint is not an absolute http(s) URL.
    #[error("invalid token endpoint URL: {0}")]
    InvalidUrl(String),
    /// `http` to a host that is not loopback, without `allow_http`.
    #[error("token endpoint must be https (or loopback): {0}")]
    InsecureUrl(String),
    /// The client id or secret cannot be sent in a header.
    #[error("the client id or secret has characters that cannot be sent")]
    InvalidCredentials,
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    HttpClient(String),
}

impl From<crate::bearer::remote::UrlError> for ExchangeConfigError {
    fn from(e: crate::bearer::remote::UrlError) -> Self {
        match e {
            crate::bearer::remote::UrlError::Invalid(u) => ExchangeConfigError::InvalidUrl(u),
            crate::bearer::remote::UrlError::Insecure(u) => ExchangeConfigError::InsecureUrl(u),
        }
    }
}
