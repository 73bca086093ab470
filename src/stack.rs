//! [`McpAuth`]: the whole stack in one `.layer(...)`.

use std::fmt;
use std::sync::Arc;

use http::request::Parts;
use tower_layer::Layer;

use crate::api_key::{ApiKeyLayer, ApiKeyService, KeyLookup};
use crate::audit::{AuditLayer, AuditService};
use crate::bearer::{BearerLayer, BearerService, TokenVerifier};
use crate::credentials::{CredentialSources, Parse};
use crate::mcp::{McpPermissionsLayer, McpRules};
use crate::origin::{OriginLayer, OriginService};
use crate::policy::{EndpointPolicy, EndpointPolicyLayer, EndpointPolicyService, PolicyError};
use crate::rate_limit::{
    FailedAuthLimitLayer, FailedAuthLimitService, RateLimitLayer, RateLimitService,
};

/// Entry point of the one-call builder; see [`McpAuth::builder`].
#[derive(Debug)]
pub struct McpAuth;

impl McpAuth {
    /// Starts configuring the stack
    /// `[OriginLayer →] FailedAuthLimitLayer → ApiKeyLayer → BearerLayer → EndpointPolicyLayer →
    /// RateLimitLayer → McpPermissionsLayer → your service`, where the limiters and the MCP
    /// permissions are there only when configured
    /// ([`failed_auth_limit`](McpAuthBuilder::failed_auth_limit),
    /// [`rate_limit`](McpAuthBuilder::rate_limit),
    /// [`mcp_permissions`](McpAuthBuilder::mcp_permissions)).
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
            sources: CredentialSources::new(),
            policy: EndpointPolicyLayer::builder(EndpointPolicy::open()),
            default_set: false,
            rate_limit: None,
            lockout: None,
            origin: None,
            audit: None,
            mcp: (),
        }
    }
}

impl<M: fmt::Debug> fmt::Debug for McpAuthBuilder<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("McpAuthBuilder")
            .field("api_keys", &self.keys.is_some())
            .field("bearer", &self.verifier.is_some())
            .field("credential_sources", &self.sources)
            .field("policy", &self.policy)
            .field("rate_limit", &self.rate_limit)
            .field("failed_auth_limit", &self.lockout)
            .field("origin", &self.origin)
            .field("audit", &self.audit)
            .field("mcp_permissions", &self.mcp)
            .finish()
    }
}

/// Configures [`McpAuthLayer`]; see [`McpAuth::builder`].
///
/// `M` records whether [`mcp_permissions`](Self::mcp_permissions) was called: `()` (the
/// default) builds the three-layer stack, [`McpRules`] adds an [`McpPermissionsLayer`].
#[must_use]
pub struct McpAuthBuilder<M = ()> {
    keys: Option<Arc<dyn KeyLookup>>,
    verifier: Option<Arc<dyn TokenVerifier>>,
    sources: CredentialSources,
    policy: crate::policy::EndpointPolicyLayerBuilder,
    default_set: bool,
    rate_limit: Option<RateLimitLayer>,
    lockout: Option<FailedAuthLimitLayer>,
    origin: Option<OriginLayer>,
    audit: Option<AuditLayer>,
    mcp: M,
}

impl McpAuthBuilder {
    /// Also authorizes each MCP JSON-RPC request by method and tool with an
    /// [`McpPermissionsLayer`] placed after the policy layer, which shares the endpoint
    /// configuration (realm, `resource_metadata`, mode) to render its 403 challenges.
    ///
    /// The built layer then wraps services that take `Request<McpRequestBody<B>>`
    /// ([`McpRequestBody`](crate::mcp::McpRequestBody) is an ordinary `http_body::Body`: axum,
    /// rmcp, hyper and tonic services accept it) and answers
    /// `Response<ResponseBody<McpResponseBody<_>>>`.
    ///
    /// ```
    /// use axum::{routing::post, Router};
    /// use tower_mcp_auth::{ApiKeyRegistry, ApiKeySpec, McpAuth, McpRules};
    ///
    /// let keys = ApiKeyRegistry::builder()
    ///     .key("k-1", ApiKeySpec::new("bot").permissions(["tools/list", "tools/call:echo"]))
    ///     .build();
    /// let auth = McpAuth::builder()
    ///     .api_keys(keys)
    ///     .mcp_permissions(McpRules::new().path("/mcp").filter_tools_list(true))
    ///     .build()
    ///     .unwrap();
    /// let app: Router = Router::new().route("/mcp", post(|| async { "{}" })).layer(auth);
    /// # let _ = app;
    /// ```
    pub fn mcp_permissions(self, rules: McpRules) -> McpAuthBuilder<McpRules> {
        McpAuthBuilder {
            keys: self.keys,
            verifier: self.verifier,
            policy: self.policy,
            default_set: self.default_set,
            sources: self.sources,
            rate_limit: self.rate_limit,
            lockout: self.lockout,
            origin: self.origin,
            audit: self.audit,
            mcp: rules,
        }
    }
}

impl<M: sealed::InnerLayer> McpAuthBuilder<M> {
    /// Accepts API keys from `store` (for example [`ApiKeyRegistry::from_env`](crate::ApiKeyRegistry::from_env)).
    pub fn api_keys(mut self, store: impl KeyLookup) -> Self {
        self.keys = Some(Arc::new(store));
        self
    }

    /// Accepts bearer tokens verified by `verifier` (for example a [`JwtVerifier`](crate::JwtVerifier)).
    pub fn bearer(mut self, verifier: impl TokenVerifier) -> Self {
        self.verifier = Some(Arc::new(verifier));
        self
    }

    /// Also reads bearer tokens from the cookie `name` when no `Authorization: Bearer` header
    /// is sent; see [`BearerLayer::session_cookie`]. Needs [`bearer`](Self::bearer). The
    /// same as [`CredentialSources::session_cookie`] on the
    /// [`credential_sources`](Self::credential_sources).
    ///
    /// ```
    /// use tower_mcp_auth::{JwtVerifier, McpAuth};
    ///
    /// let auth = McpAuth::builder()
    ///     .bearer(JwtVerifier::hs256(b"an-hs256-secret-that-is-32-bytes+").build().unwrap())
    ///     .session_cookie("__Host-mcp_session")
    ///     .build()
    ///     .unwrap();
    /// # let _ = auth;
    /// ```
    pub fn session_cookie(mut self, name: impl Into<String>) -> Self {
        self.sources = self.sources.session_cookie(name);
        self
    }

    /// Where credentials are read from (default [`CredentialSources::new`]), for every layer
    /// of the stack at once: the API key layer, the bearer layer, the failed-auth lockout
    /// (which counts exactly what they read) and the policy's error bodies. Each request's
    /// credentials are parsed once, by the outermost layer that reads them.
    ///
    /// ```
    /// use tower_mcp_auth::{ApiKeyRegistry, ApiKeySpec, CredentialSources, McpAuth};
    ///
    /// let auth = McpAuth::builder()
    ///     .api_keys(ApiKeyRegistry::builder().key("k-123", ApiKeySpec::new("ci")).build())
    ///     .credential_sources(CredentialSources::new().query_param(false))
    ///     .build()
    ///     .unwrap();
    /// # let _ = auth;
    /// ```
    pub fn credential_sources(mut self, sources: CredentialSources) -> Self {
        self.sources = sources;
        self
    }

    /// Limits each authenticated identity with `limit`, placed after the policy layer so the
    /// decided [`Identity`](crate::Identity) is known (open endpoints, which decide none, are
    /// not limited by identity keys).
    ///
    /// ```
    /// use tower_mcp_auth::store::{MemoryStore, Quota};
    /// use tower_mcp_auth::{ApiKeyRegistry, ApiKeySpec, McpAuth, rate_limit::{RateLimitKey, RateLimitLayer}};
    ///
    /// let auth = McpAuth::builder()
    ///     .api_keys(ApiKeyRegistry::builder().key("k-123", ApiKeySpec::new("ci")).build())
    ///     .rate_limit(
    ///         RateLimitLayer::new(MemoryStore::new(), Quota::per_minute(120).unwrap())
    ///             .key(RateLimitKey::User),
    ///     )
    ///     .build()
    ///     .unwrap();
    /// # let _ = auth;
    /// ```
    pub fn rate_limit(mut self, limit: RateLimitLayer) -> Self {
        self.rate_limit = Some(limit);
        self
    }

    /// Locks out client IPs that present too many wrong credentials, placed outermost so it
    /// sees every refusal. If the stack reads a [`session_cookie`](Self::session_cookie), the
    /// lockout counts that cookie as a presented credential too.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tower_mcp_auth::store::{MemoryStore, Quota, StateStore};
    /// use tower_mcp_auth::rate_limit::{FailedAuthLimitLayer, RateLimitLayer};
    /// use tower_mcp_auth::{ApiKeyRegistry, ApiKeySpec, McpAuth};
    ///
    /// // One store for both limiters (a `RedisStore` makes them fleet-wide).
    /// let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    /// let auth = McpAuth::builder()
    ///     .api_keys(ApiKeyRegistry::builder().key("k-123", ApiKeySpec::new("ci")).build())
    ///     .failed_auth_limit(FailedAuthLimitLayer::from_shared(
    ///         store.clone(),
    ///         Quota::per_minute(20).unwrap(),
    ///     ))
    ///     .rate_limit(RateLimitLayer::from_shared(store, Quota::per_minute(120).unwrap()))
    ///     .build()
    ///     .unwrap();
    /// # let _ = auth;
    /// ```
    pub fn failed_auth_limit(mut self, lockout: FailedAuthLimitLayer) -> Self {
        self.lockout = Some(lockout);
        self
    }

    /// Refuses browser origins that may not reach the server (403 `invalid_origin`, DNS-rebinding
    /// protection), placed outermost, before any credential is read.
    ///
    /// ```
    /// use tower_mcp_auth::{origin::OriginLayer, McpAuth};
    ///
    /// let auth = McpAuth::builder().origin(OriginLayer::loopback()).build().unwrap();
    /// # let _ = auth;
    /// ```
    pub fn origin(mut self, origin: OriginLayer) -> Self {
        self.origin = Some(origin);
        self
    }

    /// Records one event per decision (allowed or refused) with `audit`, placed outermost so
    /// it sees every refusal; see the [`audit`](crate::audit) module.
    ///
    /// ```
    /// use tower_mcp_auth::{audit::AuditLayer, ApiKeyRegistry, ApiKeySpec, McpAuth};
    ///
    /// let auth = McpAuth::builder()
    ///     .api_keys(ApiKeyRegistry::builder().key("k-123", ApiKeySpec::new("ci")).build())
    ///     .audit(AuditLayer::tracing())
    ///     .build()
    ///     .unwrap();
    /// # let _ = auth;
    /// ```
    pub fn audit(mut self, audit: AuditLayer) -> Self {
        self.audit = Some(audit);
        self
    }

    /// Counts decisions (`mcp_auth_decisions_total`): adds an
    /// [`AuditLayer::metrics_only`], or turns the decision counter on in the layer
    /// [`audit`](Self::audit) set (call this after it). The other metrics of the
    /// [`metrics`](crate::metrics) table are emitted whenever the feature is on.
    ///
    /// ```
    /// use tower_mcp_auth::{ApiKeyRegistry, ApiKeySpec, McpAuth};
    ///
    /// let auth = McpAuth::builder()
    ///     .api_keys(ApiKeyRegistry::builder().key("k-123", ApiKeySpec::new("ci")).build())
    ///     .metrics()
    ///     .build()
    ///     .unwrap();
    /// # let _ = auth;
    /// ```
    #[cfg(feature = "metrics")]
    pub fn metrics(mut self) -> Self {
        self.audit = Some(match self.audit.take() {
            Some(audit) => audit.decision_metrics(true),
            None => AuditLayer::metrics_only(),
        });
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

    /// Externally visible base URL (`https://mcp.example.com`), for `resource_metadata` in
    /// challenges. Set it whenever OAuth is on: without it the URL is built from each
    /// request's `Host` header with `http://` (wrong behind a TLS-terminating proxy), and
    /// [`build`](Self::build) logs a `tracing` warning; see
    /// [`EndpointPolicyLayerBuilder::public_base_url`](crate::policy::EndpointPolicyLayerBuilder::public_base_url).
    pub fn public_base_url(mut self, url: impl Into<String>) -> Self {
        self.policy = self.policy.public_base_url(url);
        self
    }

    /// `realm` of Bearer challenges (default `mcp`).
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.policy = self.policy.realm(realm);
        self
    }

    /// Validates the configuration and builds the layer.
    ///
    /// # Errors
    ///
    /// An endpoint that enables a method with nothing configured to check it, an invalid
    /// path pattern, or an invalid base URL.
    pub fn build(mut self) -> Result<McpAuthLayer<M::Layer>, PolicyError> {
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
        let api_key = match self.keys {
            Some(store) => ApiKeyLayer::from_shared(store),
            None => ApiKeyLayer::disabled(),
        };
        let bearer = match self.verifier {
            Some(verifier) => BearerLayer::from_shared(verifier),
            None => BearerLayer::disabled(),
        };
        let lockout = self.lockout.unwrap_or_else(FailedAuthLimitLayer::disabled);
        // Every layer reads credentials with the same `CredentialSources`. Only the lockout
        // reads every kind; each authenticator reads only its own. Handing the lockout's
        // record to the authenticators in the request extensions costs an allocation and
        // three map operations, more than the one header lookup each authenticator saves
        // (measured: about 450 instructions per request more), so it is shared only when a
        // session cookie is configured: splitting a `Cookie` header twice costs more.
        let share = lockout.is_enabled() && self.sources.session_cookie_name().is_some();
        let (outer, inner) = if share {
            (Parse::Share, Parse::Reuse)
        } else {
            (Parse::Own, Parse::Own)
        };
        let lockout = lockout.stacked(self.sources.clone(), outer);
        let api_key = api_key.stacked(self.sources.clone(), inner);
        let bearer = bearer.stacked(self.sources.clone(), inner);
        let mut policy = self.policy.credential_sources(&self.sources);
        policy.record_decision = M::READS_DECISION;
        let policy = policy.build()?;
        let mcp = self.mcp.build(&policy)?;
        Ok(McpAuthLayer {
            audit: self.audit.unwrap_or_else(AuditLayer::disabled),
            origin: self.origin.unwrap_or_else(OriginLayer::disabled),
            lockout,
            api_key,
            bearer,
            policy,
            rate_limit: self.rate_limit.unwrap_or_else(RateLimitLayer::disabled),
            mcp,
        })
    }
}

mod sealed {
    use super::*;

    /// What goes inside the policy layer: nothing, or the MCP permissions layer.
    pub trait InnerLayer {
        type Layer;
        /// Whether the layer reads the policy layer's decision from the request.
        const READS_DECISION: bool;
        fn build(self, policy: &EndpointPolicyLayer) -> Result<Self::Layer, PolicyError>;
    }

    impl InnerLayer for () {
        type Layer = tower_layer::Identity;
        const READS_DECISION: bool = false;
        fn build(self, _: &EndpointPolicyLayer) -> Result<Self::Layer, PolicyError> {
            Ok(tower_layer::Identity::new())
        }
    }

    impl InnerLayer for McpRules {
        type Layer = McpPermissionsLayer;
        const READS_DECISION: bool = true;
        fn build(self, _: &EndpointPolicyLayer) -> Result<Self::Layer, PolicyError> {
            // Refusals read the policy layer's decision from the request: nothing to share.
            Ok(McpRules::build(self)?)
        }
    }
}

/// The composed authentication stack; apply with `.layer(...)` on an axum `Router`, a
/// `tower::ServiceBuilder`, a hyper or a tonic service.
///
/// `L` is what runs inside the policy layer: nothing (`tower_layer::Identity`, the default)
/// or an [`McpPermissionsLayer`] (see [`McpAuthBuilder::mcp_permissions`]).
#[derive(Clone)]
#[must_use]
pub struct McpAuthLayer<L = tower_layer::Identity> {
    audit: AuditLayer,
    origin: OriginLayer,
    lockout: FailedAuthLimitLayer,
    api_key: ApiKeyLayer,
    bearer: BearerLayer,
    policy: EndpointPolicyLayer,
    rate_limit: RateLimitLayer,
    mcp: L,
}

/// The service [`McpAuthLayer`] produces around `S`; with
/// [`mcp_permissions`](McpAuthBuilder::mcp_permissions), `S` is an
/// [`McpPermissionsService`](crate::mcp::McpPermissionsService) around yours.
///
/// The limiters and the audit layer are always in the type; when not configured they pass
/// requests through.
pub type McpAuthService<S> = AuditService<
    OriginService<
        FailedAuthLimitService<
            ApiKeyService<BearerService<EndpointPolicyService<RateLimitService<S>>>>,
        >,
    >,
>;

impl<S, L: Layer<S>> Layer<S> for McpAuthLayer<L> {
    type Service = McpAuthService<L::Service>;

    fn layer(&self, inner: S) -> Self::Service {
        let inner = self.rate_limit.layer(self.mcp.layer(inner));
        let authenticated = self.bearer.layer(self.policy.layer(inner));
        let limited = self.lockout.layer(self.api_key.layer(authenticated));
        self.audit.layer(self.origin.layer(limited))
    }
}

impl<L: fmt::Debug> fmt::Debug for McpAuthLayer<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("McpAuthLayer")
            .field("audit", &self.audit)
            .field("origin", &self.origin)
            .field("failed_auth_limit", &self.lockout)
            .field("api_key", &self.api_key)
            .field("bearer", &self.bearer)
            .field("policy", &self.policy)
            .field("rate_limit", &self.rate_limit)
            .field("mcp", &self.mcp)
            .finish()
    }
}
