//! [`AuditEvent`]: one authorization decision, as the audit layer records it.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

use crate::identity::Identity;

/// Whether a request (or one JSON-RPC message of it) was let through to the service.
///
/// ```
/// use tower_mcp_auth::audit::{AuditEvent, Outcome};
///
/// fn refused(event: &AuditEvent) -> bool {
///     event.outcome == Outcome::Refused
/// }
/// # let _ = refused;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The request reached the service.
    Allowed,
    /// A layer of the stack answered instead (401, 403, 429, 400, 413, 503).
    Refused,
}

impl Outcome {
    /// `"allowed"` or `"refused"`, as in logs and metric labels.
    ///
    /// ```
    /// assert_eq!(tower_mcp_auth::audit::Outcome::Refused.as_str(), "refused");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Refused => "refused",
        }
    }
}

/// One JSON-RPC message of a request body, as far as the audit trail cares: its method, its
/// `id` (absent for notifications) and the tool, prompt or resource it addresses.
///
/// ```
/// use tower_mcp_auth::audit::AuditEvent;
///
/// /// The tool an event is about, if it is a tool call.
/// fn tool(event: &AuditEvent) -> Option<&str> {
///     let rpc = event.rpc.as_ref().filter(|m| m.method == "tools/call")?;
///     rpc.target.as_deref()
/// }
/// # let _ = tool;
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct RpcMessage {
    /// The JSON-RPC method (`tools/call`).
    pub method: String,
    /// The request id; `None` for a notification.
    pub id: Option<Value>,
    /// `params.name` (tools, prompts) or `params.uri` (resources), for the methods that address
    /// one object.
    pub target: Option<String>,
    /// Set on the messages that caused their body's refusal (`insufficient_scope`: this one
    /// lacks the permission; `tool_quota`: this one's tool quota is spent); the other
    /// messages of a refused batch were refused with it.
    pub refusal: Option<&'static str>,
}

/// One decision of the stack, recorded by [`AuditLayer`](super::AuditLayer): one event per
/// HTTP request, or one per JSON-RPC message when the MCP permissions layer read the body (a
/// batch of three calls is three events).
///
/// It never holds a credential: the identity is the one the stack decided (an API key's
/// *name*, a token's subject), the path is recorded without its query string (where an API
/// key may travel), and no header but the request id is kept.
///
/// ```
/// use tower_mcp_auth::audit::{AuditEvent, Outcome};
///
/// fn on_event(event: &AuditEvent) {
///     if event.outcome == Outcome::Refused {
///         eprintln!("{} {} refused: {:?}", event.http_method, event.path, event.reason);
///     }
/// }
/// # let _ = on_event;
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct AuditEvent {
    /// When the request arrived.
    pub timestamp: SystemTime,
    /// Allowed or refused.
    pub outcome: Outcome,
    /// The response's HTTP status.
    pub status: u16,
    /// Why it was refused: the error contract's code (`authentication_required`,
    /// `invalid_credentials`, `invalid_token`, `access_denied`, `insufficient_scope`,
    /// `temporarily_unavailable`, `invalid_request`, `invalid_origin`), `lockout` (failed-auth
    /// lockout), `quota` (per-identity quota), `tool_quota` (per-tool quota) or
    /// `payload_too_large`. `None` when allowed.
    pub reason: Option<&'static str>,
    /// Who: the decided identity, or for a refusal after authentication (403, 429) the
    /// authenticated one. `None` before authentication or on open endpoints.
    pub identity: Option<Identity>,
    /// The endpoint pattern whose policy applied (`/users/*/mcp`), `default` or `resolver`;
    /// `None` when the request was refused before the policy (origin, lockout, malformed path).
    pub endpoint: Option<String>,
    /// The HTTP method.
    pub http_method: http::Method,
    /// The request path, without query string.
    pub path: String,
    /// The JSON-RPC message this event is about, when the MCP permissions layer read one.
    pub rpc: Option<RpcMessage>,
    /// The client IP, as the layer's [`ClientIpResolver`](crate::rate_limit::ClientIpResolver)
    /// resolves it.
    pub client_ip: Option<IpAddr>,
    /// The request id header (`x-request-id` by default), when sent and printable.
    pub request_id: Option<String>,
    /// From the request's arrival to its response headers.
    pub latency: Duration,
}

impl AuditEvent {
    /// The event as one JSON object (what [`JsonLinesSink`](super::JsonLinesSink) writes).
    ///
    /// ```
    /// use tower_mcp_auth::audit::AuditEvent;
    ///
    /// fn line(event: &AuditEvent) -> String {
    ///     event.to_json().to_string()
    /// }
    /// # let _ = line;
    /// ```
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

impl Serialize for AuditEvent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry(
            "timestamp",
            &crate::time::format_rfc3339_millis(self.timestamp),
        )?;
        map.serialize_entry("outcome", self.outcome.as_str())?;
        map.serialize_entry("status", &self.status)?;
        map.serialize_entry("reason", &self.reason)?;
        if let Some(id) = &self.identity {
            map.serialize_entry("auth_method", id.method().as_str())?;
            map.serialize_entry("identity", id.name())?;
            map.serialize_entry("user_id", &id.user_id())?;
            map.serialize_entry("issuer", &id.issuer())?;
        }
        map.serialize_entry("endpoint", &self.endpoint)?;
        map.serialize_entry("http_method", self.http_method.as_str())?;
        map.serialize_entry("path", &self.path)?;
        if let Some(rpc) = &self.rpc {
            map.serialize_entry("rpc_method", &rpc.method)?;
            map.serialize_entry("rpc_id", &rpc.id)?;
            map.serialize_entry("target", &rpc.target)?;
        }
        map.serialize_entry("client_ip", &self.client_ip)?;
        map.serialize_entry("request_id", &self.request_id)?;
        map.serialize_entry("latency_us", &(self.latency.as_micros() as u64))?;
        map.end()
    }
}
