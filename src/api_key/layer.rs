//! [`ApiKeyLayer`].

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use crate::credentials::{CredentialSources, Parse};

use super::registry::KeyLookup;
use super::service::ApiKeyService;

pub(crate) struct ApiKeyConfig {
    /// `None` when built by [`McpAuth`](crate::McpAuth) without keys: the layer passes through.
    pub(crate) store: Option<Arc<dyn KeyLookup>>,
    pub(crate) sources: CredentialSources,
    pub(crate) parse: Parse,
}

/// Identifies callers by API key.
///
/// Reads the `X-API-Key` header, then the `api_key` / `apikey` query parameters (switch off
/// with [`CredentialSources::query_param`] in
/// [`credential_sources`](Self::credential_sources)), hashes the key, looks the hash up in a
/// [`KeyLookup`] and inserts an [`ApiKeyOutcome`](crate::api_key::ApiKeyOutcome) into the request
/// extensions. It never rejects a request itself: pair it with
/// [`EndpointPolicyLayer`](crate::policy::EndpointPolicyLayer), which decides.
///
/// ```
/// use tower::ServiceBuilder;
/// use tower_mcp_auth::{
///     api_key::ApiKeyLayer, policy::EndpointPolicyLayer, ApiKeyRegistry, ApiKeySpec,
///     CredentialSources, EndpointPolicy,
/// };
///
/// let keys = ApiKeyRegistry::builder()
///     .key("k-123", ApiKeySpec::new("ci").user_id("alice"))
///     .build();
/// let sources = CredentialSources::new().query_param(false);
/// let policy = EndpointPolicyLayer::builder(EndpointPolicy::api_key_only())
///     .credential_sources(&sources)
///     .build()
///     .unwrap();
/// let svc = ServiceBuilder::new()
///     .layer(ApiKeyLayer::new(keys).credential_sources(sources))
///     .layer(policy)
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
    pub fn new(store: impl KeyLookup) -> Self {
        Self::from_shared(Arc::new(store))
    }

    /// Uses a store shared with other parts of the application.
    pub fn from_shared(store: Arc<dyn KeyLookup>) -> Self {
        Self {
            config: Arc::new(ApiKeyConfig {
                store: Some(store),
                sources: CredentialSources::new(),
                parse: Parse::Own,
            }),
        }
    }

    /// A layer that checks nothing (used by [`McpAuth`](crate::McpAuth) when no keys are
    /// configured, so the composed service type stays the same).
    pub(crate) fn disabled() -> Self {
        Self {
            config: Arc::new(ApiKeyConfig {
                store: None,
                sources: CredentialSources::new(),
                parse: Parse::Own,
            }),
        }
    }

    /// Where keys are read from (default [`CredentialSources::new`]: header and query
    /// parameters). Give every layer the same value.
    pub fn credential_sources(self, sources: CredentialSources) -> Self {
        self.with(sources, self.config.parse)
    }

    /// Inside an [`McpAuth`](crate::McpAuth) stack: the shared sources and how this layer
    /// gets the request's parsed credentials.
    pub(crate) fn stacked(self, sources: CredentialSources, parse: Parse) -> Self {
        self.with(sources, parse)
    }

    fn with(&self, sources: CredentialSources, parse: Parse) -> Self {
        Self {
            config: Arc::new(ApiKeyConfig {
                store: self.config.store.clone(),
                sources,
                parse,
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
            .field("credential_sources", &self.config.sources)
            .finish_non_exhaustive()
    }
}
