//! [`BearerLayer`].

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use super::service::BearerService;
use super::verifier::TokenVerifier;

/// Identifies callers by OAuth bearer token (`Authorization: Bearer`, scheme
/// case-insensitive; never from the query string).
///
/// Verifies the token with a [`TokenVerifier`] and inserts a
/// [`BearerOutcome`](crate::BearerOutcome) into the request extensions. Like every
/// authenticator it never rejects a request itself; [`EndpointPolicyLayer`](crate::EndpointPolicyLayer)
/// decides.
///
/// ```
/// use tower::ServiceBuilder;
/// use tower_mcp_auth::{BearerLayer, EndpointPolicy, EndpointPolicyLayer, JwtVerifier};
///
/// let verifier = JwtVerifier::hs256(b"an-hs256-secret-that-is-32-bytes+").build().unwrap();
/// let svc = ServiceBuilder::new()
///     .layer(BearerLayer::new(verifier))
///     .layer(EndpointPolicyLayer::new(EndpointPolicy::oauth_only()))
///     .service_fn(|_req: http::Request<String>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
///     });
/// # let _ = svc;
/// ```
#[derive(Clone)]
#[must_use]
pub struct BearerLayer {
    /// `None` when built by [`McpAuth`](crate::McpAuth) without a verifier: pass through.
    verifier: Option<Arc<dyn TokenVerifier>>,
}

impl BearerLayer {
    /// Verifies tokens with `verifier`.
    pub fn new(verifier: impl TokenVerifier) -> Self {
        Self::from_shared(Arc::new(verifier))
    }

    /// Uses a verifier shared with other parts of the application.
    pub fn from_shared(verifier: Arc<dyn TokenVerifier>) -> Self {
        Self {
            verifier: Some(verifier),
        }
    }
}

impl BearerLayer {
    pub(crate) fn disabled() -> Self {
        Self { verifier: None }
    }
}

impl<S> Layer<S> for BearerLayer {
    type Service = BearerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerService::new(inner, self.verifier.clone())
    }
}

impl fmt::Debug for BearerLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerLayer").finish_non_exhaustive()
    }
}
