//! Audit trail: one [`AuditEvent`] per decision of the stack, allowed or refused, into an
//! [`AuditSink`].
//!
//! [`AuditLayer`] goes outermost ([`McpAuthBuilder::audit`](crate::McpAuthBuilder::audit)
//! puts it there), so it sees every answer: `Origin` refusals, failed-auth lockouts, 401,
//! 403, per-identity and per-tool quotas, and the MCP permissions layer's refusals. Each event
//! says who (identity name, user id, issuer, method), what (endpoint pattern, HTTP method and
//! path, JSON-RPC method, id and tool / resource / prompt name; one event per message of a
//! batch), the outcome and its reason, the client IP, the request id and the latency.
//!
//! | sink | where events go |
//! |---|---|
//! | [`TracingSink`] (default, [`AuditLayer::tracing`]) | `tracing` events at `INFO`, target `tower_mcp_auth::audit` |
//! | [`JsonLinesSink`] | one JSON object per line to any `Write`, from a thread of its own |
//! | [`ChannelSink`] | a bounded queue that your own consumer drains |
//! | your type | implement [`AuditSink`] (must not block) |
//!
//! Writing never blocks a request: the queued sinks drop (and count, `dropped()`) events when
//! full. Events never hold a credential: no header but the request id, no query string, the
//! identity's *name* (an API key's name, never the key).
//!
//! ```
//! use axum::{routing::post, Router};
//! use tower_mcp_auth::audit::{AuditLayer, JsonLinesSink};
//! use tower_mcp_auth::{ApiKeyRegistry, ApiKeySpec, McpAuth, McpRules};
//!
//! let keys = ApiKeyRegistry::builder()
//!     .key("k-1", ApiKeySpec::new("bot").permissions(["tools/call:search_*"]))
//!     .build();
//! let auth = McpAuth::builder()
//!     .api_keys(keys)
//!     // With the MCP permissions layer, events name each JSON-RPC method and tool.
//!     .mcp_permissions(McpRules::new())
//!     .audit(AuditLayer::new(JsonLinesSink::new(std::io::stdout(), 10_000)))
//!     .build()
//!     .unwrap();
//! let app: Router = Router::new().route("/mcp", post(|| async { "{}" })).layer(auth);
//! # let _ = app;
//! ```

mod event;
mod future;
mod layer;
mod queue;
pub(crate) mod record;
mod service;
mod sink;

pub use event::{AuditEvent, Outcome, RpcMessage};
pub use future::AuditFuture;
pub use layer::AuditLayer;
pub(crate) use layer::MetricOptions;
pub use queue::{AuditReceiver, ChannelSink, JsonLinesSink};
pub use service::AuditService;
pub use sink::{AuditSink, TracingSink, AUDIT_TARGET};
