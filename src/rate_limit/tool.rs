//! [`ToolQuotas`]: quotas per (identity, tool pattern), checked by the MCP permissions layer
//! on the JSON-RPC messages it already parsed.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use http::request::Parts;

use crate::metrics::Timer;
use crate::store::{Quota, RateDecision, StateStore, StoreError, StoreResult};

use super::key::RateLimitKey;
use super::layer::FailMode;

struct Config {
    store: Arc<dyn StateStore>,
    limits: Vec<(String, Quota)>,
    key: RateLimitKey,
    fail_mode: FailMode,
}

/// Quotas per (identity, tool pattern), beside the per-identity quota of
/// [`RateLimitLayer`](super::RateLimitLayer): `tools/call:search_*` 10 per minute for each
/// caller, say, while other tools stay unlimited. Patterns are permission patterns (see
/// [`McpRules`](crate::McpRules)): `method` or `method:target`, with a trailing `*`; each
/// message counts against the first limit whose pattern matches it (a batch of three
/// searches costs three).
///
/// Give them to [`McpRules::tool_quotas`](crate::McpRules::tool_quotas): the MCP permissions
/// layer reads the JSON-RPC body once, checks permissions, then these quotas (GCRA on the
/// [`StateStore`], so a Redis store makes them fleet-wide). A refusal is HTTP 429
/// `too_many_requests` with `Retry-After`, the `RateLimit-*` headers of the spent quota, and a
/// JSON-RPC error envelope (code [`TOO_MANY_REQUESTS_CODE`](crate::mcp::TOO_MANY_REQUESTS_CODE))
/// carrying the request's `id`, so MCP clients show the reason instead of a transport error.
/// When one message of a batch is refused, the whole batch is, and what the others had
/// consumed is given back.
///
/// ```
/// use tower_mcp_auth::rate_limit::{RateLimitKey, ToolQuotas};
/// use tower_mcp_auth::store::{MemoryStore, Quota};
/// use tower_mcp_auth::{ApiKeyRegistry, ApiKeySpec, McpAuth, McpRules};
///
/// let quotas = ToolQuotas::new(MemoryStore::new())
///     .limit("tools/call:search_*", Quota::per_minute(10).unwrap())
///     .limit("tools/call:deploy", Quota::per_hour(3).unwrap())
///     .key(RateLimitKey::User);
/// let auth = McpAuth::builder()
///     .api_keys(ApiKeyRegistry::builder().key("k-1", ApiKeySpec::new("bot").permissions(["*"])).build())
///     .mcp_permissions(McpRules::new().tool_quotas(quotas))
///     .build()
///     .unwrap();
/// # let _ = auth;
/// ```
#[derive(Clone)]
#[must_use]
pub struct ToolQuotas {
    config: Arc<Config>,
}

impl ToolQuotas {
    /// No limits yet, counted in `store`, per credential ([`RateLimitKey::Identity`]).
    ///
    /// ```
    /// let quotas = tower_mcp_auth::rate_limit::ToolQuotas::new(tower_mcp_auth::store::MemoryStore::new());
    /// # let _ = quotas;
    /// ```
    pub fn new(store: impl StateStore) -> Self {
        Self::from_shared(Arc::new(store))
    }

    /// Uses a store shared with other layers.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tower_mcp_auth::{rate_limit::ToolQuotas, store::{MemoryStore, StateStore}};
    ///
    /// let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    /// let quotas = ToolQuotas::from_shared(store);
    /// # let _ = quotas;
    /// ```
    pub fn from_shared(store: Arc<dyn StateStore>) -> Self {
        Self {
            config: Arc::new(Config {
                store,
                limits: Vec::new(),
                key: RateLimitKey::Identity,
                fail_mode: FailMode::Open,
            }),
        }
    }

    fn map(self, f: impl FnOnce(&mut Config)) -> Self {
        let c = &self.config;
        let mut config = Config {
            store: c.store.clone(),
            limits: c.limits.clone(),
            key: c.key.clone(),
            fail_mode: c.fail_mode,
        };
        f(&mut config);
        Self {
            config: Arc::new(config),
        }
    }

    /// Limits messages matching `pattern` (`tools/call:search_*`) to `quota` per identity.
    /// The first matching limit, in the order added, counts a message.
    ///
    /// ```
    /// use tower_mcp_auth::{rate_limit::ToolQuotas, store::{MemoryStore, Quota}};
    ///
    /// let quotas = ToolQuotas::new(MemoryStore::new())
    ///     .limit("tools/call:search_*", Quota::per_minute(10).unwrap())
    ///     .limit("resources/read", Quota::per_second(5).unwrap());
    /// # let _ = quotas;
    /// ```
    pub fn limit(self, pattern: impl Into<String>, quota: Quota) -> Self {
        let pattern = pattern.into();
        self.map(|c| c.limits.push((pattern, quota)))
    }

    /// What the quotas are counted per (default [`RateLimitKey::Identity`]). A request
    /// without an identity (an open endpoint) has no identity key and is not counted: on
    /// open endpoints, count per client IP with [`RateLimitKey::ClientIp`].
    ///
    /// ```
    /// use tower_mcp_auth::{rate_limit::{RateLimitKey, ToolQuotas}, store::MemoryStore};
    /// let quotas = ToolQuotas::new(MemoryStore::new()).key(RateLimitKey::User);
    /// # let _ = quotas;
    /// ```
    pub fn key(self, key: RateLimitKey) -> Self {
        self.map(|c| c.key = key)
    }

    /// What to do when the store fails (default [`FailMode::Open`]: let the message through).
    ///
    /// ```
    /// use tower_mcp_auth::{rate_limit::{FailMode, ToolQuotas}, store::MemoryStore};
    /// let quotas = ToolQuotas::new(MemoryStore::new()).fail_mode(FailMode::Closed);
    /// # let _ = quotas;
    /// ```
    pub fn fail_mode(self, mode: FailMode) -> Self {
        self.map(|c| c.fail_mode = mode)
    }

    /// Every limit's pattern, in order.
    pub(crate) fn patterns(&self) -> impl Iterator<Item = &str> {
        self.config.limits.iter().map(|(p, _)| p.as_str())
    }

    /// The pattern of limit `i`.
    pub(crate) fn pattern(&self, i: usize) -> &str {
        &self.config.limits[i].0
    }

    /// Whether no limit is configured.
    pub(crate) fn is_empty(&self) -> bool {
        self.config.limits.is_empty()
    }

    /// Which limit counts a message of `method` addressed to `target`, if any.
    pub(crate) fn limit_for(&self, method: &str, target: Option<&str>) -> Option<usize> {
        self.config
            .limits
            .iter()
            .position(|(pattern, _)| matches(pattern, method, target))
    }

    /// Starts checking `hits` (limit index, cost) for the request's identity; `None` when the
    /// request has no key (no identity) or nothing to count.
    pub(crate) fn check(&self, parts: &Parts, hits: &[(usize, u32)]) -> Option<ToolCheck> {
        if hits.is_empty() {
            return None;
        }
        let identity = self.config.key.key_for(parts)?;
        let mut len = String::new();
        let keys = hits
            .iter()
            .map(|&(limit, cost)| {
                let (pattern, quota) = &self.config.limits[limit];
                len.clear();
                len.push_str(&pattern.len().to_string());
                // The pattern's length makes the split unambiguous whatever it contains.
                let key = ["rl:tool:", &len, ":", pattern, ":", &identity].concat();
                Hit {
                    key,
                    quota: *quota,
                    cost,
                    limit,
                }
            })
            .collect();
        Some(ToolCheck {
            config: self.config.clone(),
            hits: keys,
            next: 0,
            pending: None,
            refunding: None,
        })
    }
}

/// Whether permission pattern `pattern` (`method`, `method:target`, a trailing `*`) matches
/// the message's permission `method[:target]`, without building that string.
fn matches(pattern: &str, method: &str, target: Option<&str>) -> bool {
    let permission = method.bytes().chain(
        target
            .into_iter()
            .flat_map(|t| std::iter::once(b':').chain(t.bytes())),
    );
    match pattern.strip_suffix('*') {
        Some(prefix) => {
            let mut permission = permission;
            prefix.bytes().all(|b| permission.next() == Some(b))
        }
        // A bare method counts all its targets, as a held bare method grants them.
        None => permission.eq(pattern.bytes()) || (target.is_some() && pattern == method),
    }
}

struct Hit {
    key: String,
    quota: Quota,
    cost: u32,
    limit: usize,
}

/// How a [`ToolCheck`] ended.
pub(crate) enum ToolVerdict {
    /// Every hit fits (or the store failed open).
    Allowed,
    /// Limit `limit` is spent; `decision` is the store's (none when the cost can never fit).
    Refused {
        limit: usize,
        retry_after: Duration,
        decision: Option<RateDecision>,
    },
    /// The store failed and the quotas fail closed (503).
    Unavailable,
}

/// The store calls for one request, one after the other; a memory store answers at once, so
/// the first poll completes. Nothing is boxed here (network stores box their own futures).
pub(crate) struct ToolCheck {
    config: Arc<Config>,
    hits: Vec<Hit>,
    /// The next hit to ask the store about.
    next: usize,
    pending: Option<(StoreResult<RateDecision>, Timer)>,
    /// After a refusal: the refunds under way and the verdict to give once they are done.
    refunding: Option<(Vec<StoreResult<()>>, ToolVerdict)>,
}

impl ToolCheck {
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToolVerdict> {
        loop {
            if let Some((refunds, _)) = &mut self.refunding {
                // Every refund must finish (a network store's future does nothing unpolled).
                while let Some(last) = refunds.last_mut() {
                    if let Err(e) = ready!(Pin::new(last).poll(cx)) {
                        tracing::warn!(error = %e, "tool quota refund failed");
                    }
                    refunds.pop();
                }
                let (_, verdict) = self.refunding.take().expect("set above");
                return Poll::Ready(verdict);
            }
            let Some(hit) = self.hits.get(self.next) else {
                return Poll::Ready(ToolVerdict::Allowed);
            };
            let (pending, timer) = self.pending.get_or_insert_with(|| {
                let timer = Timer::start();
                (self.config.store.gcra(&hit.key, hit.quota, hit.cost), timer)
            });
            let result = ready!(Pin::new(pending).poll(cx));
            timer.store_op("gcra", result.is_ok());
            self.pending = None;
            let verdict = match result {
                Ok(decision) if decision.allowed => {
                    self.next += 1;
                    continue;
                }
                Ok(decision) => ToolVerdict::Refused {
                    limit: hit.limit,
                    retry_after: decision.retry_after,
                    decision: Some(decision),
                },
                // Never fits: wait a whole period (and send fewer calls in one batch).
                Err(StoreError::CostExceedsBurst { .. }) => ToolVerdict::Refused {
                    limit: hit.limit,
                    retry_after: hit.quota.period(),
                    decision: None,
                },
                Err(e) => {
                    tracing::warn!(error = %e, fail_mode = ?self.config.fail_mode, "tool quota store unavailable");
                    match self.config.fail_mode {
                        FailMode::Open => {
                            self.next += 1;
                            continue;
                        }
                        FailMode::Closed => ToolVerdict::Unavailable,
                    }
                }
            };
            // Give back what the hits before this one consumed.
            let refunds = self.hits[..self.next]
                .iter()
                .map(|h| self.config.store.gcra_refund(&h.key, h.quota, h.cost))
                .collect();
            self.refunding = Some((refunds, verdict));
        }
    }
}

impl fmt::Debug for ToolQuotas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ToolQuotas")
            .field("limits", &self.config.limits)
            .field("key", &self.config.key)
            .field("fail_mode", &self.config.fail_mode)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_the_permission_string() {
        assert!(matches(
            "tools/call:search_*",
            "tools/call",
            Some("search_docs")
        ));
        assert!(matches(
            "tools/call:search_*",
            "tools/call",
            Some("search_")
        ));
        assert!(!matches("tools/call:search_*", "tools/call", Some("searc")));
        assert!(!matches("tools/call:search_*", "tools/call", None));
        assert!(matches("tools/call:echo", "tools/call", Some("echo")));
        assert!(!matches("tools/call:echo", "tools/call", Some("echo2")));
        assert!(matches("tools/call", "tools/call", None));
        assert!(matches("tools/call", "tools/call", Some("echo")));
        assert!(!matches("tools/list", "tools/call", Some("echo")));
        assert!(matches("tools/*", "tools/call", Some("echo")));
        assert!(matches("*", "ping", None));
    }
}
