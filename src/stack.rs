//! [`McpAuth`]: the whole stack in one `.layer(...)`.

use std::fmt;
use std::sync::Arc;

use http::request::Parts;
use tower_layer::Layer;

use crate::api_key::{ApiKeyLayer, ApiKeyService, KeyStore};
use crate::bearer::{BearerLayer, BearerService, TokenVerifier};
use crate::policy::{EndpointPolicy, EndpointPolicyLayer, EndpointPolicyService, PolicyError};

/// Entry point of the one-call builder; see [`McpAuth::builder`].
#[derive(Debug)]
pub struct McpAuth;

impl McpAuth {
    /// Starts configuring the stack
    /// `ApiKeyLayer → BearerLayer → EndpointPolicyLayer → your service`.
    ///
    /// The default policy (for paths no [`endpoint`](McpAuthBuilder::endpoint) matches)
    /// enables exactly the methods that are configured: with keys and a verifier it is
    /// "both", with neither it is "open".
    ///
    /// ```
    /// use axum::{routing::post, Router};
    /// use tower_mcp_auth::{ApiKeyRegistry, ApiKeySpec, EndpointPolicy, JwtVerifier, McpAuth};
    ///
    /// let auth = McpAuth::builder()
    ///     .api_keys(ApiKeyRegistry::builder().key("k-123", ApiKeySpec::new("ci")).build())
    ///     .bearer(JwtVerifier::hs256(b"an-hs256-secret-that-is-32-bytes+").build().unwrap())
    ///     .public_base_url("http://127.0.0.1:8080")
    ///     .endpoint("/health", EndpointPolicy::open())
    ///     .endpoint("/users/alice/mcp", EndpointPolicy::both().private_to("alice"))
    ///     .build()
    ///     .unwrap();
    ///
    /// let app: Router = Router::new()
    ///     .route("/mcp", post(|| async { "ok" }))
    ///     .layer(auth);
    /// # let _ = app;
    /// ```
    pub fn builder() -> McpAuthBuilder {
        McpAuthBuilder {
            keys: None,
            verifier: None,
            session_cookie: None,
            policy: EndpointPolicyLayer::builder(EndpointPolicy::open()),
            default_set: false,
        }
    }
}

impl fmt::Debug for McpAuthBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("McpAuthBuilder")
            .field("api_keys", &self.keys.is_some())
            .field("bearer", &self.verifier.is_some())
            .field("session_cookie", &self.session_cookie)
            .field("policy", &self.policy)
            .finish()
    }
}

/// Configures [`McpAuthLayer`]; see [`McpAuth::builder`].
#[must_use]
pub struct McpAuthBuilder {
    keys: Option<Arc<dyn KeyStore>>,
    verifier: Option<Arc<dyn TokenVerifier>>,
    session_cookie: Option<String>,
    policy: crate::policy::EndpointPolicyLayerBuilder,
    default_set: bool,
}

impl McpAuthBuilder {
    /// Accepts API keys from `store` (for example [`ApiKeyRegistry::from_env`](crate::ApiKeyRegistry::from_env)).
    pub fn api_keys(mut self, store: impl KeyStore) -> Self {
        self.keys = Some(Arc::new(store));
        self
    }

    /// Accepts bearer tokens verified by `verifier` (for example a [`JwtVerifier`](crate::JwtVerifier)).
    pub fn bearer(mut self, verifier: impl TokenVerifier) -> Self {
        self.verifier = Some(Arc::new(verifier));
        self
    }

    /// Also reads bearer tokens from the cookie `name` when no `Authorization: Bearer` header
    /// is sent; see [`BearerLayer::session_cookie`]. Needs [`bearer`](Self::bearer).
    ///
    /// ```
    /// use tower_mcp_auth::{JwtVerifier, McpAuth};
    ///
    /// let auth = McpAuth::builder()
    ///     .bearer(JwtVerifier::hs256(b"an-hs256-secret-that-is-32-bytes+").build().unwrap())
    ///     .session_cookie("mcp_session")
    ///     .build()
    ///     .unwrap();
    /// # let _ = auth;
    /// ```
    pub fn session_cookie(mut self, name: impl Into<String>) -> Self {
        self.session_cookie = Some(name.into());
        self
    }

    /// Applies `policy` to paths matching `pattern` (first match wins).
    pub fn endpoint(mut self, pattern: impl Into<String>, policy: EndpointPolicy) -> Self {
        self.policy = self.policy.route(pattern, policy);
        self
    }

    /// Chooses a policy from the request when no endpoint pattern matched.
    pub fn resolver<F>(mut self, resolver: F) -> Self
    where
        F: Fn(&Parts) -> Option<EndpointPolicy> + Send + Sync + 'static,
    {
        self.policy = self.policy.resolver(resolver);
        self
    }

    /// The policy for paths nothing else matches.
    pub fn default_policy(mut self, policy: EndpointPolicy) -> Self {
        self.policy.default = policy;
        self.default_set = true;
        self
    }

    /// Externally visible base URL, for `resource_metadata` in challenges.
    pub fn public_base_url(mut self, url: impl Into<String>) -> Self {
        self.policy = self.policy.public_base_url(url);
        self
    }

    /// `realm` of Bearer challenges (default `mcp`).
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.policy = self.policy.realm(realm);
        self
    }

    /// Whether API keys may come from the `api_key` / `apikey` query parameters (default `true`).
    pub fn query_param_auth(mut self, enabled: bool) -> Self {
        self.policy = self.policy.api_key_query(enabled);
        self
    }

    /// Validates the configuration and builds the layer.
    ///
    /// # Errors
    ///
    /// An endpoint that enables a method with nothing configured to check it, an invalid
    /// path pattern, or an invalid base URL.
    pub fn build(mut self) -> Result<McpAuthLayer, PolicyError> {
        if !self.default_set {
            self.policy.default = EndpointPolicy::new(self.keys.is_some(), self.verifier.is_some());
        }
        for (label, policy) in self.policy.policies() {
            if policy.enable_api_key_auth() && self.keys.is_none() {
                return Err(PolicyError::MissingKeyStore(label.to_owned()));
            }
            if policy.enable_oauth() && self.verifier.is_none() {
                return Err(PolicyError::MissingVerifier(label.to_owned()));
            }
        }
        let query = self.policy.api_key_query;
        let api_key = match self.keys {
            Some(store) => ApiKeyLayer::from_shared(store).query_param(query),
            None => ApiKeyLayer::disabled(),
        };
        let bearer = match self.verifier {
            Some(verifier) => BearerLayer::from_shared(verifier),
            None => BearerLayer::disabled(),
        };
        let bearer = match self.session_cookie {
            Some(name) => bearer.session_cookie(name),
            None => bearer,
        };
        Ok(McpAuthLayer {
            api_key,
            bearer,
            policy: self.policy.build()?,
        })
    }
}

/// The composed authentication stack; apply with `.layer(...)` on an axum `Router`, a
/// `tower::ServiceBuilder`, a hyper or a tonic service.
#[derive(Clone)]
#[must_use]
pub struct McpAuthLayer {
    api_key: ApiKeyLayer,
    bearer: BearerLayer,
    policy: EndpointPolicyLayer,
}

/// The service [`McpAuthLayer`] produces.
pub type McpAuthService<S> = ApiKeyService<BearerService<EndpointPolicyService<S>>>;

impl<S> Layer<S> for McpAuthLayer {
    type Service = McpAuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        self.api_key
            .layer(self.bearer.layer(self.policy.layer(inner)))
    }
}

impl fmt::Debug for McpAuthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("McpAuthLayer")
            .field("api_key", &self.api_key)
            .field("bearer", &self.bearer)
            .field("policy", &self.policy)
            .finish()
    }
}
