//! [`EndpointPolicyLayer`].

use std::fmt;
use std::sync::Arc;

use http::request::Parts;
use tower_layer::Layer;

use super::endpoint::EndpointPolicy;
use super::pattern::PathPattern;
use super::service::EndpointPolicyService;

pub(crate) type Resolver = Arc<dyn Fn(&Parts) -> Option<EndpointPolicy> + Send + Sync>;

pub(crate) struct PolicyConfig {
    pub(crate) routes: Vec<(PathPattern, EndpointPolicy)>,
    pub(crate) resolver: Option<Resolver>,
    pub(crate) default: EndpointPolicy,
    pub(crate) realm: String,
    pub(crate) public_base_url: Option<String>,
    pub(crate) api_key_query: bool,
}

/// A policy configuration error, reported by [`EndpointPolicyLayerBuilder::build`] and
/// [`McpAuthBuilder::build`](crate::McpAuthBuilder::build).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A route pattern is not valid (see [`PathPattern`]).
    #[error("invalid path pattern {0:?}")]
    InvalidPattern(String),
    /// The public base URL is not an absolute `http` / `https` URL without query.
    #[error("invalid public base URL {0:?}: expected e.g. https://mcp.example.com")]
    InvalidBaseUrl(String),
    /// An endpoint accepts API keys but no key store was configured.
    #[error("endpoint {0} enables API keys but no API key store is configured")]
    MissingKeyStore(String),
    /// An endpoint accepts OAuth but no token verifier was configured.
    #[error("endpoint {0} enables OAuth but no token verifier is configured")]
    MissingVerifier(String),
}

/// Decides, per endpoint, whether a request may pass, and with which [`Identity`](crate::Identity).
///
/// It reads the outcomes that [`ApiKeyLayer`](crate::ApiKeyLayer) and
/// [`BearerLayer`](crate::BearerLayer) left in the request extensions, applies the
/// endpoint's mode, precedence, ownership and required permissions, and either inserts the
/// chosen `Identity` and calls the inner service, or answers with the error contract.
///
/// Endpoints are matched by [`PathPattern`] in the order added (first match wins), then by an
/// optional resolver closure, then fall back to the default policy.
///
/// ```
/// use tower_mcp_auth::{EndpointPolicy, EndpointPolicyLayer};
///
/// let layer = EndpointPolicyLayer::builder(EndpointPolicy::both())
///     .route("/health", EndpointPolicy::open())
///     .route("/users/alice/mcp", EndpointPolicy::both().private_to("alice"))
///     .public_base_url("https://mcp.example.com")
///     .build()
///     .unwrap();
/// # let _ = layer;
/// ```
#[derive(Clone)]
#[must_use]
pub struct EndpointPolicyLayer {
    config: Arc<PolicyConfig>,
}

impl EndpointPolicyLayer {
    /// Applies `policy` to every request.
    pub fn new(policy: EndpointPolicy) -> Self {
        Self {
            config: Arc::new(PolicyConfig {
                routes: Vec::new(),
                resolver: None,
                default: policy,
                realm: "mcp".to_owned(),
                public_base_url: None,
                api_key_query: true,
            }),
        }
    }

    /// Starts a layer with per-endpoint policies; `default` applies where nothing matches.
    pub fn builder(default: EndpointPolicy) -> EndpointPolicyLayerBuilder {
        EndpointPolicyLayerBuilder {
            routes: Vec::new(),
            resolver: None,
            default,
            realm: "mcp".to_owned(),
            public_base_url: None,
            api_key_query: true,
        }
    }

    pub(crate) fn from_config(config: PolicyConfig) -> Self {
        Self {
            config: Arc::new(config),
        }
    }
}

impl<S> Layer<S> for EndpointPolicyLayer {
    type Service = EndpointPolicyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        EndpointPolicyService::new(inner, self.config.clone())
    }
}

impl fmt::Debug for EndpointPolicyLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointPolicyLayer")
            .field("routes", &self.config.routes)
            .field("resolver", &self.config.resolver.is_some())
            .field("default", &self.config.default)
            .field("public_base_url", &self.config.public_base_url)
            .finish()
    }
}

impl fmt::Debug for EndpointPolicyLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointPolicyLayerBuilder")
            .field("routes", &self.routes)
            .field("default", &self.default)
            .finish_non_exhaustive()
    }
}

/// Builds an [`EndpointPolicyLayer`]; see [`EndpointPolicyLayer::builder`].
#[must_use]
pub struct EndpointPolicyLayerBuilder {
    pub(crate) routes: Vec<(String, EndpointPolicy)>,
    pub(crate) resolver: Option<Resolver>,
    pub(crate) default: EndpointPolicy,
    pub(crate) realm: String,
    pub(crate) public_base_url: Option<String>,
    pub(crate) api_key_query: bool,
}

impl EndpointPolicyLayerBuilder {
    /// Applies `policy` to paths matching `pattern` (axum syntax: `/users/{id}/mcp`,
    /// `/static/{*rest}`).
    pub fn route(mut self, pattern: impl Into<String>, policy: EndpointPolicy) -> Self {
        self.routes.push((pattern.into(), policy));
        self
    }

    /// Chooses the policy from the request (method, URI, headers, extensions) when no route
    /// pattern matched; `None` falls back to the default.
    pub fn resolver<F>(mut self, resolver: F) -> Self
    where
        F: Fn(&Parts) -> Option<EndpointPolicy> + Send + Sync + 'static,
    {
        self.resolver = Some(Arc::new(resolver));
        self
    }

    /// The `realm` of Bearer challenges (default `mcp`).
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = realm.into();
        self
    }

    /// The externally visible base URL (`https://mcp.example.com`), from which the RFC 9728
    /// `resource_metadata` URL of challenges is built. Without it the `Host` header is used
    /// with `http`, which is wrong behind a TLS-terminating proxy.
    pub fn public_base_url(mut self, url: impl Into<String>) -> Self {
        self.public_base_url = Some(url.into());
        self
    }

    /// Whether error bodies list the query parameter among the supported methods (keep in
    /// step with [`ApiKeyLayer::query_param`](crate::ApiKeyLayer::query_param); default `true`).
    pub fn api_key_query(mut self, enabled: bool) -> Self {
        self.api_key_query = enabled;
        self
    }

    /// Every policy this builder may apply, with a label for error messages.
    pub(crate) fn policies(&self) -> impl Iterator<Item = (&str, &EndpointPolicy)> {
        self.routes
            .iter()
            .map(|(p, policy)| (p.as_str(), policy))
            .chain(std::iter::once(("(default)", &self.default)))
    }

    /// Validates patterns and the base URL.
    ///
    /// # Errors
    ///
    /// [`PolicyError::InvalidPattern`] or [`PolicyError::InvalidBaseUrl`].
    pub fn build(self) -> Result<EndpointPolicyLayer, PolicyError> {
        let mut routes = Vec::with_capacity(self.routes.len());
        for (pattern, policy) in self.routes {
            let parsed =
                PathPattern::parse(&pattern).ok_or(PolicyError::InvalidPattern(pattern))?;
            routes.push((parsed, policy));
        }
        let public_base_url = match self.public_base_url {
            Some(url) => Some(
                crate::metadata::canonical_base_url(&url)
                    .ok_or(PolicyError::InvalidBaseUrl(url))?,
            ),
            None => None,
        };
        Ok(EndpointPolicyLayer::from_config(PolicyConfig {
            routes,
            resolver: self.resolver,
            default: self.default,
            realm: self.realm,
            public_base_url,
            api_key_query: self.api_key_query,
        }))
    }
}
