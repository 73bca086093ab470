//! [`AuditSink`] and the default [`TracingSink`].

use std::sync::Arc;

use super::event::AuditEvent;

/// Where audit events go. Called on the request path, once per event: it must not block
/// (queue the event, as [`ChannelSink`](super::ChannelSink) and
/// [`JsonLinesSink`](super::JsonLinesSink) do, or hand it to a non-blocking subscriber as
/// [`TracingSink`] does).
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use tower_mcp_auth::audit::{AuditEvent, AuditSink, Outcome};
///
/// /// Counts refusals, nothing else.
/// #[derive(Default)]
/// struct Refusals(AtomicU64);
///
/// impl AuditSink for Refusals {
///     fn record(&self, event: AuditEvent) {
///         if event.outcome == Outcome::Refused {
///             self.0.fetch_add(1, Ordering::Relaxed);
///         }
///     }
/// }
/// let layer = tower_mcp_auth::audit::AuditLayer::new(Refusals::default());
/// # let _ = layer;
/// ```
pub trait AuditSink: Send + Sync + 'static {
    /// Records one event. Must not block.
    fn record(&self, event: AuditEvent);

    /// Whether events are wanted right now; when `false` the layer builds none (a tracing
    /// sink whose level is filtered off costs next to nothing). Default `true`.
    fn enabled(&self) -> bool {
        true
    }
}

impl<T: AuditSink + ?Sized> AuditSink for Arc<T> {
    fn record(&self, event: AuditEvent) {
        (**self).record(event)
    }

    fn enabled(&self) -> bool {
        (**self).enabled()
    }
}

/// The `tracing` target of [`TracingSink`]'s events.
///
/// ```
/// // For example in an `EnvFilter`: audit events at INFO, the rest of the crate at WARN.
/// let filter = format!("tower_mcp_auth=warn,{}=info", tower_mcp_auth::audit::AUDIT_TARGET);
/// assert_eq!(filter, "tower_mcp_auth=warn,tower_mcp_auth::audit=info");
/// ```
pub const AUDIT_TARGET: &str = "tower_mcp_auth::audit";

/// The default sink: one `tracing` event per decision at `INFO` (target
/// [`AUDIT_TARGET`], `tower_mcp_auth::audit`), with the event's fields as structured fields.
/// Filter it like any target (`RUST_LOG=tower_mcp_auth::audit=info`); when the level is off
/// the layer builds no event at all. Use a non-blocking writer in the subscriber
/// (`tracing-appender`) so that writing never holds up a request.
///
/// ```
/// use tower_mcp_auth::audit::{AuditLayer, TracingSink};
///
/// let layer = AuditLayer::new(TracingSink::new());
/// # let _ = layer;
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct TracingSink {
    _private: (),
}

impl TracingSink {
    /// The sink.
    ///
    /// ```
    /// let sink = tower_mcp_auth::audit::TracingSink::new();
    /// # let _ = sink;
    /// ```
    pub fn new() -> Self {
        Self { _private: () }
    }
}

impl AuditSink for TracingSink {
    fn record(&self, e: AuditEvent) {
        let id = e.identity.as_ref();
        let rpc = e.rpc.as_ref();
        tracing::info!(
            target: AUDIT_TARGET,
            outcome = e.outcome.as_str(),
            status = e.status,
            reason = e.reason,
            auth_method = id.map(|i| i.method().as_str()),
            identity = id.map(|i| i.name()),
            user_id = id.and_then(|i| i.user_id()),
            issuer = id.and_then(|i| i.issuer()),
            endpoint = e.endpoint.as_deref(),
            http_method = e.http_method.as_str(),
            path = e.path.as_str(),
            rpc_method = rpc.map(|m| m.method.as_str()),
            rpc_id = rpc.and_then(|m| m.id.as_ref()).map(tracing::field::display),
            target = rpc.and_then(|m| m.target.as_deref()),
            client_ip = e.client_ip.map(tracing::field::display),
            request_id = e.request_id.as_deref(),
            latency_us = e.latency.as_micros() as u64,
            "auth decision"
        );
    }

    fn enabled(&self) -> bool {
        tracing::enabled!(target: AUDIT_TARGET, tracing::Level::INFO)
    }
}
