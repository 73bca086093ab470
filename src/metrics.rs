//! Metrics through the [`metrics`](https://docs.rs/metrics) facade (feature `metrics`):
//! install any recorder (Prometheus, OpenTelemetry, StatsD) and these appear.
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `mcp_auth_decisions_total` | counter | `outcome` (`allowed`, `refused`), `reason` (`none` or the audit reason: `authentication_required`, `invalid_token`, `lockout`, `quota`, `tool_quota`, ...), `auth_method` (`api_key`, `bearer`, `none`), `endpoint` (the matched endpoint pattern, `default`, `resolver` or `none`), `rpc_method` (a known MCP method, `other` or `none`); opt-in `identity`, `target` | one per decision, per JSON-RPC message when the MCP permissions layer reads the body; counted by the [`AuditLayer`](crate::audit::AuditLayer) ([`McpAuthBuilder::metrics`](crate::McpAuthBuilder::metrics)) |
//! | `mcp_auth_verify_duration_seconds` | histogram | `verifier` (`jwt`, `jwks`, `introspection`), `result` (`ok`, `rejected`, `unavailable`) | one token verification (not counting cache hits) |
//! | `mcp_auth_token_cache_total` | counter | `result` (`hit`, `miss`) | verified-token cache lookups |
//! | `mcp_auth_jwks_refresh_total` | counter | `result` (`ok`, `error`) | JWKS fetches (periodic and on an unknown `kid`) |
//! | `mcp_auth_store_op_duration_seconds` | histogram | `op` (`gcra`) | a rate-limit decision by the `StateStore` (lockout, quota, per-tool quota) |
//! | `mcp_auth_store_errors_total` | counter | `op` (`gcra`) | store operations that failed |
//! | `mcp_auth_lockouts_total` | counter | | requests refused by the failed-auth lockout (429) |
//! | `mcp_auth_quota_refusals_total` | counter | `quota` (`identity`, `tool`) | requests refused by a quota (429) |
//! | `mcp_auth_audit_dropped_total` | counter | | audit events dropped by a full queue |
//!
//! Labels are bounded: endpoints are the configured patterns, never raw paths; user ids
//! and tool names are labels only when asked for
//! ([`AuditLayer::identity_label`](crate::audit::AuditLayer::identity_label),
//! [`AuditLayer::target_label`](crate::audit::AuditLayer::target_label)).
//!
//! ```
//! # #[cfg(feature = "metrics")] {
//! use tower_mcp_auth::{metrics::DECISIONS, ApiKeyRegistry, ApiKeySpec, McpAuth};
//!
//! assert_eq!(DECISIONS, "mcp_auth_decisions_total");
//! let auth = McpAuth::builder()
//!     .api_keys(ApiKeyRegistry::builder().key("k-1", ApiKeySpec::new("ci")).build())
//!     .metrics()
//!     .build()
//!     .unwrap();
//! # let _ = auth;
//! # }
//! ```
//!
//! Install the recorder before the first request: each audit layer resolves a decision
//! counter once per label set and keeps the handle. Without the feature every hook compiles
//! to nothing.

#[cfg(feature = "metrics")]
use std::time::Instant;

/// Counter: decisions (see the table above).
///
/// ```
/// assert_eq!(tower_mcp_auth::metrics::DECISIONS, "mcp_auth_decisions_total");
/// ```
pub const DECISIONS: &str = "mcp_auth_decisions_total";
/// Histogram (seconds): token verifications.
///
/// ```
/// assert_eq!(tower_mcp_auth::metrics::VERIFY_DURATION, "mcp_auth_verify_duration_seconds");
/// ```
pub const VERIFY_DURATION: &str = "mcp_auth_verify_duration_seconds";
/// Counter: verified-token cache hits and misses.
///
/// ```
/// assert_eq!(tower_mcp_auth::metrics::TOKEN_CACHE, "mcp_auth_token_cache_total");
/// ```
pub const TOKEN_CACHE: &str = "mcp_auth_token_cache_total";
/// Counter: JWKS refreshes.
///
/// ```
/// assert_eq!(tower_mcp_auth::metrics::JWKS_REFRESH, "mcp_auth_jwks_refresh_total");
/// ```
pub const JWKS_REFRESH: &str = "mcp_auth_jwks_refresh_total";
/// Histogram (seconds): store operations.
///
/// ```
/// assert_eq!(tower_mcp_auth::metrics::STORE_OP_DURATION, "mcp_auth_store_op_duration_seconds");
/// ```
pub const STORE_OP_DURATION: &str = "mcp_auth_store_op_duration_seconds";
/// Counter: failed store operations.
///
/// ```
/// assert_eq!(tower_mcp_auth::metrics::STORE_ERRORS, "mcp_auth_store_errors_total");
/// ```
pub const STORE_ERRORS: &str = "mcp_auth_store_errors_total";
/// Counter: failed-auth lockouts.
///
/// ```
/// assert_eq!(tower_mcp_auth::metrics::LOCKOUTS, "mcp_auth_lockouts_total");
/// ```
pub const LOCKOUTS: &str = "mcp_auth_lockouts_total";
/// Counter: quota refusals.
///
/// ```
/// assert_eq!(tower_mcp_auth::metrics::QUOTA_REFUSALS, "mcp_auth_quota_refusals_total");
/// ```
pub const QUOTA_REFUSALS: &str = "mcp_auth_quota_refusals_total";
/// Counter: dropped audit events.
///
/// ```
/// assert_eq!(tower_mcp_auth::metrics::AUDIT_DROPPED, "mcp_auth_audit_dropped_total");
/// ```
pub const AUDIT_DROPPED: &str = "mcp_auth_audit_dropped_total";

/// MCP methods that are labels as themselves; any other is `other`.
#[cfg(feature = "metrics")]
const KNOWN_METHODS: [&str; 20] = [
    "initialize",
    "ping",
    "server/discover",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "sampling/createMessage",
    "elicitation/create",
    "roots/list",
    "tasks/get",
    "tasks/list",
    "tasks/cancel",
];

/// Starts timing an operation; zero-sized without the feature.
#[derive(Clone, Copy)]
pub(crate) struct Timer {
    #[cfg(feature = "metrics")]
    start: Instant,
}

impl Timer {
    #[inline]
    pub(crate) fn start() -> Self {
        Self {
            #[cfg(feature = "metrics")]
            start: Instant::now(),
        }
    }

    /// One token verification by `verifier` ended with `result`.
    #[inline]
    pub(crate) fn verified<T>(
        self,
        verifier: &'static str,
        result: &Result<T, crate::bearer::TokenError>,
    ) {
        #[cfg(feature = "metrics")]
        {
            use crate::bearer::TokenError;
            let result = match result {
                Ok(_) => "ok",
                Err(TokenError::Rejected(_)) => "rejected",
                Err(TokenError::Unavailable(_)) => "unavailable",
            };
            metrics::histogram!(VERIFY_DURATION, "verifier" => verifier, "result" => result)
                .record(self.start.elapsed());
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (verifier, result);
    }

    /// One store operation `op` ended, `ok` or not.
    #[inline]
    pub(crate) fn store_op(self, op: &'static str, ok: bool) {
        #[cfg(feature = "metrics")]
        {
            metrics::histogram!(STORE_OP_DURATION, "op" => op).record(self.start.elapsed());
            if !ok {
                metrics::counter!(STORE_ERRORS, "op" => op).increment(1);
            }
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (op, ok);
    }
}

/// A verified-token cache lookup.
#[inline]
pub(crate) fn token_cache(hit: bool) {
    #[cfg(feature = "metrics")]
    metrics::counter!(TOKEN_CACHE, "result" => if hit { "hit" } else { "miss" }).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = hit;
}

/// A JWKS fetch.
#[inline]
#[cfg_attr(not(feature = "jwks"), allow(dead_code))]
pub(crate) fn jwks_refresh(ok: bool) {
    #[cfg(feature = "metrics")]
    metrics::counter!(JWKS_REFRESH, "result" => if ok { "ok" } else { "error" }).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = ok;
}

/// A request refused by the failed-auth lockout.
#[inline]
pub(crate) fn lockout() {
    #[cfg(feature = "metrics")]
    metrics::counter!(LOCKOUTS).increment(1);
}

/// A request refused by a quota: `identity` or `tool`.
#[inline]
pub(crate) fn quota_refused(quota: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(QUOTA_REFUSALS, "quota" => quota).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = quota;
}

/// An audit event dropped by a full queue.
#[inline]
pub(crate) fn audit_dropped() {
    #[cfg(feature = "metrics")]
    metrics::counter!(AUDIT_DROPPED).increment(1);
}

/// What `mcp_auth_decisions_total` is labelled with, borrowed from the audit record.
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub(crate) struct DecisionLabels<'a> {
    pub(crate) outcome: crate::audit::Outcome,
    pub(crate) reason: Option<&'static str>,
    pub(crate) identity: Option<&'a crate::Identity>,
    pub(crate) endpoint: Option<&'a str>,
    pub(crate) rpc: Option<&'a crate::audit::RpcMessage>,
}

/// Slots of a layer's [`DecisionCounters`].
#[cfg(feature = "metrics")]
const COUNTER_SLOTS: usize = 128;

/// The `mcp_auth_decisions_total` handles a layer has used, one per label set, so a decision
/// is one atomic increment instead of a registry lookup by name and labels (a few thousand
/// instructions with the Prometheus recorder). Direct-mapped, filled once per slot, no lock;
/// a label set whose slot holds another one takes the registry path.
#[derive(Default)]
pub(crate) struct DecisionCounters {
    #[cfg(feature = "metrics")]
    slots: std::sync::OnceLock<Box<[Slot]>>,
}

/// One cached label set and its counter.
#[cfg(feature = "metrics")]
type Slot = std::sync::OnceLock<(CounterKey, metrics::Counter)>;

#[cfg(feature = "metrics")]
#[derive(PartialEq, Eq)]
struct CounterKey {
    outcome: &'static str,
    reason: &'static str,
    auth_method: &'static str,
    endpoint: Box<str>,
    rpc_method: &'static str,
}

#[cfg(feature = "metrics")]
impl DecisionCounters {
    /// Counts one decision with the static labels `statics` (outcome, reason, auth method,
    /// JSON-RPC method) and `endpoint`; `register` looks the counter up in the recorder.
    fn increment(
        &self,
        statics: [&'static str; 4],
        endpoint: &str,
        register: impl FnOnce() -> metrics::Counter,
    ) {
        let [outcome, reason, auth_method, rpc_method] = statics;
        let matches = |k: &CounterKey| {
            k.outcome == outcome
                && k.reason == reason
                && k.auth_method == auth_method
                && k.rpc_method == rpc_method
                && &*k.endpoint == endpoint
        };
        // The static labels' addresses and the endpoint pattern (a few bytes) pick the slot.
        let mut hash: u64 = 0;
        let mut mix = |x: u64| hash = (hash.rotate_left(5) ^ x).wrapping_mul(0x517c_c1b7_2722_0a95);
        for s in statics {
            mix(s.as_ptr() as u64);
        }
        endpoint.bytes().for_each(|b| mix(u64::from(b)));
        let slots = self.slots.get_or_init(|| {
            (0..COUNTER_SLOTS)
                .map(|_| std::sync::OnceLock::new())
                .collect()
        });
        let slot = &slots[(hash >> 32) as usize % COUNTER_SLOTS];
        let mut register = Some(register);
        let (key, counter) = slot.get_or_init(|| {
            let key = CounterKey {
                outcome,
                reason,
                auth_method,
                endpoint: endpoint.into(),
                rpc_method,
            };
            (key, (register.take().expect("called once"))())
        });
        if matches(key) {
            counter.increment(1);
        } else if let Some(register) = register {
            register().increment(1);
        }
    }
}

impl std::fmt::Debug for DecisionCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DecisionCounters")
    }
}

/// One decision, as the audit layer saw it.
#[inline]
pub(crate) fn decision(
    labels: &DecisionLabels<'_>,
    options: &crate::audit::MetricOptions,
    counters: &DecisionCounters,
) {
    #[cfg(feature = "metrics")]
    {
        use metrics::Label;
        let id = labels.identity;
        let rpc_method = match labels.rpc {
            None => "none",
            Some(m) => KNOWN_METHODS
                .iter()
                .find(|k| **k == m.method)
                .copied()
                .unwrap_or("other"),
        };
        let outcome = labels.outcome.as_str();
        let reason = labels.reason.unwrap_or("none");
        let auth_method = id.map_or("none", |i| i.method().as_str());
        let endpoint = labels.endpoint.unwrap_or("none");
        let register = || {
            let mut list = Vec::with_capacity(7);
            list.push(Label::from_static_parts("outcome", outcome));
            list.push(Label::from_static_parts("reason", reason));
            list.push(Label::from_static_parts("auth_method", auth_method));
            list.push(Label::new("endpoint", endpoint.to_owned()));
            list.push(Label::from_static_parts("rpc_method", rpc_method));
            if options.identity_label {
                list.push(Label::new(
                    "identity",
                    id.map_or("none", |i| i.name()).to_owned(),
                ));
            }
            if options.target_label {
                let target = labels.rpc.and_then(|m| m.target.as_deref());
                list.push(Label::new("target", target.unwrap_or("none").to_owned()));
            }
            metrics::counter!(DECISIONS, list)
        };
        if options.identity_label || options.target_label {
            // Unbounded label sets are not cached.
            register().increment(1);
        } else {
            counters.increment(
                [outcome, reason, auth_method, rpc_method],
                endpoint,
                register,
            );
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (labels, options, counters);
}

#[cfg(all(test, feature = "metrics"))]
mod tests {
    use super::*;
    use crate::audit::{MetricOptions, Outcome};

    #[test]
    fn cached_counters_count_every_label_set_apart() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let counters = DecisionCounters::default();
        let options = MetricOptions {
            on: true,
            ..MetricOptions::default()
        };
        // More label sets than slots: collisions take the registry path.
        let endpoints: Vec<String> = (0..3 * COUNTER_SLOTS).map(|i| format!("/e{i}")).collect();
        let outcome = |i: usize| {
            if i.is_multiple_of(2) {
                Outcome::Allowed
            } else {
                Outcome::Refused
            }
        };
        metrics::with_local_recorder(&recorder, || {
            for _ in 0..3 {
                for (i, endpoint) in endpoints.iter().enumerate() {
                    let labels = DecisionLabels {
                        outcome: outcome(i),
                        reason: None,
                        identity: None,
                        endpoint: Some(endpoint),
                        rpc: None,
                    };
                    decision(&labels, &options, &counters);
                }
            }
        });
        let text = handle.render();
        for (i, endpoint) in endpoints.iter().enumerate() {
            let endpoint = format!("endpoint=\"{endpoint}\"");
            let outcome = format!("outcome=\"{}\"", outcome(i).as_str());
            let line = text
                .lines()
                .find(|l| l.contains(&endpoint) && l.contains(&outcome))
                .unwrap_or_else(|| panic!("{endpoint} missing:\n{text}"));
            assert!(line.ends_with(" 3"), "{line}");
        }
    }
}
