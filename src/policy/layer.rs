//! [`EndpointPolicyLayer`].

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use http::header::HOST;
use http::request::Parts;
use http::{HeaderMap, Uri};
use tower_layer::Layer;

use crate::error::ErrorContext;
use crate::mcp::McpRuleError;

use super::decision::Applied;
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
    /// Whether the [`Decision`](super::decision::Decision) goes into the request extensions
    /// for the layers inside. Always, except in an [`McpAuth`](crate::McpAuth) stack whose
    /// inner layers never read it (no MCP rules): an extension costs an allocation.
    pub(crate) record_decision: bool,
}

impl PolicyConfig {
    /// The first route matching canonical `path`. When none does, the resolver (if any),
    /// else the default, applies ([`resolve`](Self::resolve)). Runs once per request (see
    /// [`Decision`](super::decision::Decision)).
    pub(crate) fn route(&self, path: &str) -> Option<usize> {
        self.routes.iter().position(|(p, _)| p.matches(path))
    }

    /// The policy for a request no route matched: the resolver's answer, else the default.
    pub(crate) fn resolve(&self, parts: &Parts) -> Applied {
        match self.resolver.as_ref().and_then(|resolve| resolve(parts)) {
            Some(policy) => Applied::Resolved(policy),
            None => Applied::Default,
        }
    }

    /// How a refusal on `policy` is rendered for a request to `uri`.
    ///
    /// The `resource_metadata` URL is built from the raw (still percent-encoded) path: it is
    /// a URL, and clients compare the resource with the URL they sent byte for byte.
    pub(crate) fn error_context<'a>(
        &'a self,
        policy: &'a EndpointPolicy,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> ErrorContext<'a> {
        let resource_metadata = policy
            .enable_oauth()
            .then(|| self.resource_metadata_url(uri, headers))
            .flatten();
        ErrorContext {
            api_key: policy.enable_api_key_auth(),
            api_key_query: self.api_key_query,
            oauth: policy.enable_oauth(),
            realm: &self.realm,
            resource_metadata: resource_metadata.map(Cow::Owned),
            scopes: policy.required(),
        }
    }

    /// The RFC 9728 metadata URL for this request's resource: from the configured public
    /// base URL, else from the `Host` header (http).
    fn resource_metadata_url(&self, uri: &Uri, headers: &HeaderMap) -> Option<String> {
        let path = uri.path();
        match &self.public_base_url {
            Some(base) => Some(crate::metadata::metadata_url(base, path)),
            None => {
                let host = uri
                    .authority()
                    .map(|a| a.as_str())
                    .or_else(|| headers.get(HOST).and_then(|h| h.to_str().ok()))?;
                let base = crate::metadata::canonical_base_url(&format!("http://{host}"))?;
                Some(crate::metadata::metadata_url(&base, path))
            }
        }
    }
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
    /// The [`McpRules`](crate::McpRules) given to
    /// [`McpAuthBuilder::mcp_permissions`](crate::McpAuthBuilder::mcp_permissions) are not valid.
    #[error(transparent)]
    McpRules(#[from] McpRuleError),
}

/// Decides, per endpoint, whether a request may pass, and with which [`Identity`](crate::Identity).
///
/// It reads the outcomes that [`ApiKeyLayer`](crate::api_key::ApiKeyLayer) and
/// [`BearerLayer`](crate::bearer::BearerLayer) left in the request extensions, applies the
/// endpoint's mode, precedence, ownership and required permissions, and either inserts the
/// chosen `Identity` and calls the inner service, or answers with the error contract.
///
/// Endpoints are matched by [`PathPattern`] in the order added (first match wins), then by an
/// optional resolver closure, then fall back to the default policy.
///
/// Patterns match the decoded, canonical path, as the router dispatches it:
/// `/users/alic%65/mcp` is alice's endpoint. Paths whose meaning depends on who decodes them
/// (`%2F`, `%5C`, `%25`, dot segments raw or encoded, `//`, NUL and control characters,
/// invalid escapes or UTF-8) are refused with 400 `invalid_request`
/// ([`AuthError::MalformedPath`](crate::AuthError::MalformedPath)) before any policy applies,
/// on open endpoints too. Resolvers and inner layers read the decoded path with
/// [`CanonicalPath::of`](super::CanonicalPath::of).
///
/// ```
/// use tower_mcp_auth::{EndpointPolicy, policy::EndpointPolicyLayer};
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
    ///
    /// Without a public base URL, so an OAuth `policy` logs the warning described at
    /// [`EndpointPolicyLayerBuilder::public_base_url`]; use the builder to set one.
    pub fn new(policy: EndpointPolicy) -> Self {
        warn_if_host_derived(None, std::iter::once(&policy));
        Self {
            config: Arc::new(PolicyConfig {
                routes: Vec::new(),
                resolver: None,
                default: policy,
                realm: "mcp".to_owned(),
                public_base_url: None,
                api_key_query: true,
                record_decision: true,
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
            record_decision: true,
        }
    }

    pub(crate) fn from_config(config: PolicyConfig) -> Self {
        Self {
            config: Arc::new(config),
        }
    }

    /// The decision this layer records when its default policy applies.
    #[cfg(test)]
    pub(crate) fn default_decision(&self) -> super::Decision {
        super::Decision::new(self.config.clone(), Applied::Default)
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
    pub(crate) record_decision: bool,
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
    /// `resource_metadata` URL of challenges is built.
    ///
    /// Set it whenever an endpoint accepts OAuth. Without it the URL is built from each
    /// request's `Host` header with `http://`: wrong behind a TLS-terminating proxy (clients
    /// then fetch metadata over plain http, or refuse the mismatch), and it follows whatever
    /// `Host` a client sends. [`build`](Self::build) logs a `tracing` warning once when a
    /// route or the default policy enables OAuth and no base URL is set (policies that only a
    /// [`resolver`](Self::resolver) returns cannot be seen at build time).
    pub fn public_base_url(mut self, url: impl Into<String>) -> Self {
        self.public_base_url = Some(url.into());
        self
    }

    /// The [`CredentialSources`](crate::CredentialSources) the authenticators read, so error
    /// bodies list the query parameter among the supported methods only when it is accepted
    /// (default: accepted).
    pub fn credential_sources(mut self, sources: &crate::CredentialSources) -> Self {
        self.api_key_query = sources.query_param_enabled();
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
        warn_if_host_derived(
            public_base_url.as_deref(),
            routes
                .iter()
                .map(|(_, policy)| policy)
                .chain(std::iter::once(&self.default)),
        );
        Ok(EndpointPolicyLayer::from_config(PolicyConfig {
            routes,
            resolver: self.resolver,
            default: self.default,
            realm: self.realm,
            public_base_url,
            api_key_query: self.api_key_query,
            record_decision: self.record_decision,
        }))
    }
}

/// Warns (once per built layer) when OAuth challenges will name a metadata URL derived from
/// the request's `Host` header.
fn warn_if_host_derived<'a>(
    public_base_url: Option<&str>,
    mut policies: impl Iterator<Item = &'a EndpointPolicy>,
) {
    if public_base_url.is_none() && policies.any(EndpointPolicy::enable_oauth) {
        tracing::warn!(
            "OAuth is enabled but no public_base_url is set: resource_metadata in Bearer \
             challenges is built from each request's Host header with http://, which is wrong \
             behind a TLS-terminating proxy and follows any Host a client sends; set \
             public_base_url to the externally visible base URL"
        );
    }
}
