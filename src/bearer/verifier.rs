//! The [`TokenVerifier`] trait.

use std::sync::Arc;

use crate::deferred::Deferred;
use crate::error::TokenRejection;
use crate::identity::Identity;

/// Why a token was not turned into an [`Identity`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token is not valid (401 `invalid_token`).
    #[error(transparent)]
    Rejected(#[from] TokenRejection),
    /// The verifier could not decide: identity provider unreachable, no keys yet
    /// (503 `temporarily_unavailable`). The message is for logs.
    #[error("token verifier unavailable: {0}")]
    Unavailable(String),
}

/// Turns a bearer token into an [`Identity`].
///
/// [`JwtVerifier`](crate::JwtVerifier) checks JWTs against static keys. Implementations that
/// need the network (JWKS, introspection) return [`Deferred::boxed`]; in-memory ones
/// [`Deferred::ready`].
///
/// ```
/// use tower_mcp_auth::{AuthMethod, Deferred, Identity, bearer::TokenError, TokenRejection, TokenVerifier};
///
/// /// Accepts exactly one opaque token (for example in a test).
/// struct OneToken(&'static str);
///
/// impl TokenVerifier for OneToken {
///     fn verify(&self, token: &str) -> Deferred<Result<Identity, TokenError>> {
///         Deferred::ready(if token == self.0 {
///             Ok(Identity::builder(AuthMethod::Bearer, "tester").build())
///         } else {
///             Err(TokenRejection::BadSignature.into())
///         })
///     }
/// }
/// ```
pub trait TokenVerifier: Send + Sync + 'static {
    /// Verifies `token`. Must never panic, whatever the input.
    fn verify(&self, token: &str) -> Deferred<Result<Identity, TokenError>>;
}

impl<T: TokenVerifier + ?Sized> TokenVerifier for Arc<T> {
    fn verify(&self, token: &str) -> Deferred<Result<Identity, TokenError>> {
        (**self).verify(token)
    }
}
