//! axum extractors for [`Identity`] (feature `axum`).

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;

use crate::error::{AuthError, ErrorContext};
use crate::identity::Identity;

/// Rejection when a handler asks for an [`Identity`] that no policy layer provided (the
/// endpoint is open, or the layer is missing): 401 `authentication_required`.
#[derive(Debug, Clone, Copy)]
pub struct MissingIdentity;

impl IntoResponse for MissingIdentity {
    fn into_response(self) -> Response {
        let res = AuthError::AuthenticationRequired.to_response(&ErrorContext::new(false, false));
        res.map(axum::body::Body::new)
    }
}

/// ```
/// use axum::{routing::post, Router};
/// use tower_mcp_auth::Identity;
///
/// async fn whoami(identity: Identity) -> String {
///     format!("{} via {}", identity.name(), identity.method())
/// }
/// async fn maybe(identity: Option<Identity>) -> &'static str {
///     if identity.is_some() { "signed in" } else { "anonymous" }
/// }
/// let app: Router = Router::new().route("/whoami", post(whoami)).route("/maybe", post(maybe));
/// # let _ = app;
/// ```
impl<S: Send + Sync> FromRequestParts<S> for Identity {
    type Rejection = MissingIdentity;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Identity>()
            .cloned()
            .ok_or(MissingIdentity)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Identity {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Identity>().cloned())
    }
}
