//! [`FailedAuthLimitLayer`].

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use crate::credentials::{CredentialSources, Parse};
use crate::store::{Quota, StateStore};

use super::super::client_ip::ClientIpResolver;
use super::super::layer::FailMode;
use super::service::FailedAuthLimitService;

pub(super) struct LockoutConfig {
    pub(super) store: Arc<dyn StateStore>,
    pub(super) quota: Quota,
    pub(super) resolver: ClientIpResolver,
    pub(super) fail_mode: FailMode,
    /// What counts as a presented credential: what the authenticators read.
    pub(super) sources: CredentialSources,
    pub(super) parse: Parse,
}

/// Locks out client IPs that present too many wrong credentials. Place it outermost, before
/// the authenticators, so it sees every refusal's [`AuthFailure`](crate::AuthFailure).
///
/// `quota` is the failure budget: `Quota::per_minute(20)` allows a burst of 20 wrong
/// credentials, then one more every 3 seconds (GCRA); a locked-out client is told when to
/// retry in `Retry-After`. Shared through a Redis store, every instance enforces one lockout.
///
/// Each credentialed request *reserves* one failure before it is called (an atomic
/// [`gcra`](crate::store::StateStore::gcra) check-and-consume) and gives it back
/// ([`gcra_refund`](crate::store::StateStore::gcra_refund)) once its response shows it did not count.
/// With a network store shared by several instances, concurrent guesses therefore cannot all
/// pass one "locked out?" check before any failure is recorded: of any number sent at once,
/// at most the remaining burst reach the authenticators. The price: while requests are in
/// flight, each holds a cell of its client IP's budget, so a client with more concurrent
/// credentialed requests than its remaining budget gets 429 for the excess until the others
/// finish; and a request whose response future is dropped (the client went away) keeps its
/// cell, which then drains at the quota's rate like a failure.
///
/// ```
/// use tower::ServiceBuilder;
/// use tower_mcp_auth::store::{MemoryStore, Quota};
/// use tower_mcp_auth::{rate_limit::{ClientIpResolver, FailedAuthLimitLayer}};
///
/// let lockout = FailedAuthLimitLayer::new(MemoryStore::new(), Quota::per_minute(20).unwrap())
///     .client_ip(ClientIpResolver::new().trust_proxies(["10.0.0.0/8"]).unwrap());
/// let svc = ServiceBuilder::new()
///     .layer(lockout)
///     .service_fn(|_req: http::Request<String>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
///     });
/// # let _ = svc;
/// ```
#[derive(Clone)]
#[must_use]
pub struct FailedAuthLimitLayer {
    /// `None` when built by [`McpAuth`](crate::McpAuth) without a lockout: the layer passes through.
    config: Option<Arc<LockoutConfig>>,
}

impl FailedAuthLimitLayer {
    /// Allows each client IP `quota` failed authentications, counted in `store`.
    pub fn new(store: impl StateStore, quota: Quota) -> Self {
        Self::from_shared(Arc::new(store), quota)
    }

    /// Uses a store shared with other layers.
    pub fn from_shared(store: Arc<dyn StateStore>, quota: Quota) -> Self {
        Self {
            config: Some(Arc::new(LockoutConfig {
                store,
                quota,
                resolver: ClientIpResolver::new(),
                fail_mode: FailMode::Open,
                sources: CredentialSources::new(),
                parse: Parse::Own,
            })),
        }
    }

    pub(crate) fn disabled() -> Self {
        Self { config: None }
    }

    /// Also treats the cookie `name` as a presented credential, as
    /// [`BearerLayer::session_cookie`](crate::bearer::BearerLayer::session_cookie) does: a browser
    /// replaying a forged session cookie is locked out like a client sending forged tokens.
    /// Only a well-formed cookie value counts: a malformed one (which a sibling subdomain can
    /// plant and the user cannot easily clear) never locks anyone out.
    /// [`McpAuth`](crate::McpAuth) sets this from its own
    /// [`session_cookie`](crate::McpAuthBuilder::session_cookie).
    ///
    /// ```
    /// use tower_mcp_auth::store::{MemoryStore, Quota};
    /// use tower_mcp_auth::rate_limit::FailedAuthLimitLayer;
    ///
    /// let lockout = FailedAuthLimitLayer::new(MemoryStore::new(), Quota::per_minute(20).unwrap())
    ///     .session_cookie("__Host-mcp_session");
    /// # let _ = lockout;
    /// ```
    pub fn session_cookie(self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.map(|c| c.sources = c.sources.clone().session_cookie(name))
    }

    /// Counts exactly the credentials `sources` lets the authenticators read (default
    /// [`CredentialSources::new`]); give every layer the same value. [`McpAuth`](crate::McpAuth)
    /// sets its own.
    pub fn credential_sources(self, sources: CredentialSources) -> Self {
        self.map(|c| c.sources = sources)
    }

    /// Inside an [`McpAuth`](crate::McpAuth) stack: the shared sources and how this layer
    /// gets the request's parsed credentials.
    pub(crate) fn stacked(self, sources: CredentialSources, parse: Parse) -> Self {
        self.map(|c| {
            c.sources = sources;
            c.parse = parse;
        })
    }

    pub(crate) fn is_enabled(&self) -> bool {
        self.config.is_some()
    }

    /// How client IPs are found (trusted proxies, IPv6 prefix).
    pub fn client_ip(self, resolver: ClientIpResolver) -> Self {
        self.map(|c| c.resolver = resolver)
    }

    /// What to do when the store fails before a credentialed request (default
    /// [`FailMode::Open`]: the request is authenticated normally, only not limited).
    pub fn fail_mode(self, mode: FailMode) -> Self {
        self.map(|c| c.fail_mode = mode)
    }

    fn map(self, f: impl FnOnce(&mut LockoutConfig)) -> Self {
        let Some(c) = &self.config else {
            return self;
        };
        let mut config = LockoutConfig {
            store: c.store.clone(),
            quota: c.quota,
            resolver: c.resolver.clone(),
            fail_mode: c.fail_mode,
            sources: c.sources.clone(),
            parse: c.parse,
        };
        f(&mut config);
        Self {
            config: Some(Arc::new(config)),
        }
    }
}

impl<S> Layer<S> for FailedAuthLimitLayer {
    type Service = FailedAuthLimitService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        FailedAuthLimitService::new(inner, self.config.clone())
    }
}

impl fmt::Debug for FailedAuthLimitLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(c) = &self.config else {
            return f.write_str("FailedAuthLimitLayer(disabled)");
        };
        f.debug_struct("FailedAuthLimitLayer")
            .field("quota", &c.quota)
            .field("client_ip", &c.resolver)
            .field("fail_mode", &c.fail_mode)
            .field("credential_sources", &c.sources)
            .finish_non_exhaustive()
    }
}
