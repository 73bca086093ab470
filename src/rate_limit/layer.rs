//! [`RateLimitLayer`]: per-identity quotas after authentication.

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use crate::identity::Identity;
use crate::store::{Quota, StateStore};

use super::key::RateLimitKey;
use super::service::RateLimitService;

/// What a limiter does when its [`StateStore`] fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FailMode {
    /// Let the request through, unlimited, and log a warning (the default for rate limits:
    /// a Redis outage should not take the MCP server down with it).
    #[default]
    Open,
    /// Refuse with 503 `temporarily_unavailable`.
    Closed,
}

type QuotaFor = Arc<dyn Fn(&Identity) -> Option<Quota> + Send + Sync>;

pub(crate) struct RateLimitConfig {
    pub(crate) store: Arc<dyn StateStore>,
    pub(crate) quota: Quota,
    pub(crate) quota_for: Option<QuotaFor>,
    pub(crate) key: RateLimitKey,
    pub(crate) fail_mode: FailMode,
}

/// Per-identity quotas (GCRA) on a [`StateStore`], placed after
/// [`EndpointPolicyLayer`](crate::policy::EndpointPolicyLayer) so the decided [`Identity`] is known.
///
/// Every limited response carries `RateLimit-Limit`, `RateLimit-Remaining` and
/// `RateLimit-Reset`; a refused request gets 429 `too_many_requests` with `Retry-After`
/// (whole seconds, rounded up, at least 1). With a shared store (Redis) all instances behind a
/// load balancer enforce one quota.
///
/// ```
/// use tower::ServiceBuilder;
/// use tower_mcp_auth::store::{MemoryStore, Quota};
/// use tower_mcp_auth::{rate_limit::{RateLimitKey, RateLimitLayer}};
///
/// let limit = RateLimitLayer::new(MemoryStore::new(), Quota::per_minute(60).unwrap())
///     .key(RateLimitKey::User)
///     // Admins get more.
///     .quota_for(|id| (id.role() == Some("admin")).then(|| Quota::per_minute(600).unwrap()));
/// let svc = ServiceBuilder::new()
///     .layer(limit)
///     .service_fn(|_req: http::Request<String>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
///     });
/// # let _ = svc;
/// ```
#[derive(Clone)]
#[must_use]
pub struct RateLimitLayer {
    /// `None` when built by [`McpAuth`](crate::McpAuth) without a limit: the layer passes through.
    config: Option<Arc<RateLimitConfig>>,
}

impl RateLimitLayer {
    /// Limits each identity to `quota`, counted in `store`.
    pub fn new(store: impl StateStore, quota: Quota) -> Self {
        Self::from_shared(Arc::new(store), quota)
    }

    /// Uses a store shared with other layers (for example the failed-auth limiter).
    pub fn from_shared(store: Arc<dyn StateStore>, quota: Quota) -> Self {
        Self {
            config: Some(Arc::new(RateLimitConfig {
                store,
                quota,
                quota_for: None,
                key: RateLimitKey::Identity,
                fail_mode: FailMode::Open,
            })),
        }
    }

    pub(crate) fn disabled() -> Self {
        Self { config: None }
    }

    fn map(self, f: impl FnOnce(&mut RateLimitConfig)) -> Self {
        let Some(c) = &self.config else {
            return self;
        };
        let mut config = RateLimitConfig {
            store: c.store.clone(),
            quota: c.quota,
            quota_for: c.quota_for.clone(),
            key: c.key.clone(),
            fail_mode: c.fail_mode,
        };
        f(&mut config);
        Self {
            config: Some(Arc::new(config)),
        }
    }

    /// What the quota is counted per (default [`RateLimitKey::Identity`]).
    pub fn key(self, key: RateLimitKey) -> Self {
        self.map(|c| c.key = key)
    }

    /// A different quota for some identities (per role, per key...); `None` keeps the default.
    pub fn quota_for<F>(self, f: F) -> Self
    where
        F: Fn(&Identity) -> Option<Quota> + Send + Sync + 'static,
    {
        self.map(|c| c.quota_for = Some(Arc::new(f)))
    }

    /// What to do when the store fails (default [`FailMode::Open`]).
    pub fn fail_mode(self, mode: FailMode) -> Self {
        self.map(|c| c.fail_mode = mode)
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimitService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService::new(inner, self.config.clone())
    }
}

impl fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(c) = &self.config else {
            return f.write_str("RateLimitLayer(disabled)");
        };
        f.debug_struct("RateLimitLayer")
            .field("quota", &c.quota)
            .field("key", &c.key)
            .field("fail_mode", &c.fail_mode)
            .finish_non_exhaustive()
    }
}
