//! [`ApiKeyLayer`].

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use super::registry::KeyStore;
use super::service::ApiKeyService;

pub(crate) struct ApiKeyConfig {
    /// `None` when built by [`McpAuth`](crate::McpAuth) without keys: the layer passes through.
    pub(crate) store: Option<Arc<dyn KeyStore>>,
    pub(crate) query: bool,
}

/// Identifies callers by API key.
///
/// Reads the `X-API-Key` header, then the `api_key` / `apikey` query parameters (switch off
/// with [`query_param`](Self::query_param)), hashes the key, looks the hash up in a
/// [`KeyStore`] and inserts an [`ApiKeyOutcome`](crate::api_key::ApiKeyOutcome) into the request
/// extensions. It never rejects a request itself: pair it with
/// [`EndpointPolicyLayer`](crate::policy::EndpointPolicyLayer), which decides.
///
/// ```
/// use tower::ServiceBuilder;
/// use tower_mcp_auth::{api_key::ApiKeyLayer, ApiKeyRegistry, ApiKeySpec, EndpointPolicy, policy::EndpointPolicyLayer};
///
/// let keys = ApiKeyRegistry::builder()
///     .key("k-123", ApiKeySpec::new("ci").user_id("alice"))
///     .build();
/// let svc = ServiceBuilder::new()
///     .layer(ApiKeyLayer::new(keys).query_param(false))
///     .layer(EndpointPolicyLayer::new(EndpointPolicy::api_key_only()))
///     .service_fn(|_req: http::Request<String>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
///     });
/// # let _ = svc;
/// ```
#[derive(Clone)]
#[must_use]
pub struct ApiKeyLayer {
    config: Arc<ApiKeyConfig>,
}

impl ApiKeyLayer {
    /// Looks keys up in `store` (for example an [`ApiKeyRegistry`](crate::ApiKeyRegistry)).
    pub fn new(store: impl KeyStore) -> Self {
        Self::from_shared(Arc::new(store))
    }

    /// Uses a store shared with other parts of the application.
    pub fn from_shared(store: Arc<dyn KeyStore>) -> Self {
        Self {
            config: Arc::new(ApiKeyConfig {
                store: Some(store),
                query: true,
            }),
        }
    }

    /// A layer that checks nothing (used by [`McpAuth`](crate::McpAuth) when no keys are
    /// configured, so the composed service type stays the same).
    pub(crate) fn disabled() -> Self {
        Self {
            config: Arc::new(ApiKeyConfig {
                store: None,
                query: false,
            }),
        }
    }

    /// Whether keys may come from the `api_key` / `apikey` query parameters (default `true`).
    /// Query strings end up in access logs; turn this off when clients can send headers.
    pub fn query_param(self, enabled: bool) -> Self {
        Self {
            config: Arc::new(ApiKeyConfig {
                store: self.config.store.clone(),
                query: enabled,
            }),
        }
    }
}

impl<S> Layer<S> for ApiKeyLayer {
    type Service = ApiKeyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ApiKeyService::new(inner, self.config.clone())
    }
}

impl fmt::Debug for ApiKeyLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyLayer")
            .field("query_param", &self.config.query)
            .finish_non_exhaustive()
    }
}
