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

    /// The identity an earlier [`verify`](Self::verify) of exactly these bytes produced and
    /// that still holds (a cache hit), or `None` to verify the token as usual. The default
    /// caches nothing.
    ///
    /// [`BearerLayer`](crate::bearer::BearerLayer) asks this first with the raw token of the
    /// `Authorization` header, before checking that it is a `b64token`: a hit can only be
    /// bytes that were checked when they were verified, so the check (a pass over every byte
    /// of the token on each request) is left to misses. An implementation must therefore
    /// answer only for bytes it verified, never for bytes it merely recognises, and must
    /// not cache tokens that are not `b64token`s. [`CachedVerifier`](crate::bearer::CachedVerifier)
    /// and [`IntrospectionVerifier`](crate::bearer::IntrospectionVerifier) answer from their
    /// caches.
    ///
    /// ```
    /// use tower_mcp_auth::{bearer::CachedVerifier, JwtVerifier, TokenVerifier};
    ///
    /// let jwt = JwtVerifier::hs256(b"an-hs256-secret-that-is-32-bytes+").build().unwrap();
    /// assert!(jwt.cached(b"any.token.bytes").is_none()); // verifies every time
    /// let cached = CachedVerifier::new(jwt);
    /// assert!(cached.cached(b"not.verified.yet").is_none());
    /// ```
    fn cached(&self, token: &[u8]) -> Option<Identity> {
        let _ = token;
        None
    }
}

impl<T: TokenVerifier + ?Sized> TokenVerifier for Arc<T> {
    fn verify(&self, token: &str) -> Deferred<Result<Identity, TokenError>> {
        (**self).verify(token)
    }

    fn cached(&self, token: &[u8]) -> Option<Identity> {
        (**self).cached(token)
    }
}
