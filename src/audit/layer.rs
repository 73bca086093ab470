//! [`AuditLayer`].

use std::fmt;
use std::sync::Arc;

use http::header::HeaderName;
use tower_layer::Layer;

use crate::rate_limit::ClientIpResolver;

use super::service::AuditService;
use super::sink::{AuditSink, TracingSink};

pub(crate) struct AuditConfig {
    /// `None`: no events, only decision metrics (feature `metrics`).
    pub(crate) sink: Option<Arc<dyn AuditSink>>,
    pub(crate) client_ip: ClientIpResolver,
    pub(crate) request_id: HeaderName,
    pub(crate) metrics: MetricOptions,
    pub(crate) counters: crate::metrics::DecisionCounters,
}

/// Which decision metrics the layer emits (feature `metrics`).
#[derive(Clone, Copy, Debug, Default)]
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub(crate) struct MetricOptions {
    pub(crate) on: bool,
    pub(crate) identity_label: bool,
    pub(crate) target_label: bool,
}

/// Records one [`AuditEvent`](super::AuditEvent) per decision of the stack, allowed or refused,
/// into an [`AuditSink`]; with the `metrics` feature it can also count the decisions
/// (`mcp_auth_decisions_total`, see the [`metrics`](crate::metrics) table):
/// [`McpAuthBuilder::metrics`](crate::McpAuthBuilder::metrics) or `decision_metrics(true)`.
///
/// Place it outermost, so it sees every refusal (origin, lockout, 401, 403, quotas, MCP
/// refusals): [`McpAuthBuilder::audit`](crate::McpAuthBuilder::audit) does. The layers inside it
/// leave what they decided in a per-request record (the policy's endpoint and identity, the
/// MCP permissions layer's parsed JSON-RPC messages), so nothing is resolved or parsed twice.
/// Without [`McpAuthBuilder::mcp_permissions`](crate::McpAuthBuilder::mcp_permissions) no
/// layer reads the body, and events carry no JSON-RPC fields.
///
/// When the sink is not [enabled](AuditSink::enabled) (the default [`TracingSink`] with its
/// target filtered off) and no metrics are on, a request costs one check and no allocation.
///
/// ```
/// use axum::{routing::post, Router};
/// use tower_mcp_auth::audit::{AuditLayer, ChannelSink};
/// use tower_mcp_auth::{ApiKeyRegistry, ApiKeySpec, McpAuth};
///
/// let (sink, events) = ChannelSink::bounded(10_000);
/// let auth = McpAuth::builder()
///     .api_keys(ApiKeyRegistry::builder().key("k-1", ApiKeySpec::new("ci")).build())
///     .audit(AuditLayer::new(sink))
///     .build()
///     .unwrap();
/// let app: Router = Router::new().route("/mcp", post(|| async { "{}" })).layer(auth);
/// # let _ = (app, events);
/// ```
#[derive(Clone)]
#[must_use]
pub struct AuditLayer {
    config: Option<Arc<AuditConfig>>,
}

impl AuditLayer {
    /// Records into `sink`.
    ///
    /// ```
    /// use tower_mcp_auth::audit::{AuditLayer, JsonLinesSink};
    /// let layer = AuditLayer::new(JsonLinesSink::new(std::io::stdout(), 10_000));
    /// # let _ = layer;
    /// ```
    pub fn new(sink: impl AuditSink) -> Self {
        Self::with_sink(Some(Arc::new(sink)))
    }

    /// Records as `tracing` events ([`TracingSink`]).
    ///
    /// ```
    /// let layer = tower_mcp_auth::audit::AuditLayer::tracing();
    /// # let _ = layer;
    /// ```
    pub fn tracing() -> Self {
        Self::new(TracingSink::new())
    }

    /// No events, only the decision metrics.
    ///
    /// ```
    /// let layer = tower_mcp_auth::audit::AuditLayer::metrics_only();
    /// # let _ = layer;
    /// ```
    #[cfg(feature = "metrics")]
    pub fn metrics_only() -> Self {
        Self::with_sink(None).decision_metrics(true)
    }

    fn with_sink(sink: Option<Arc<dyn AuditSink>>) -> Self {
        Self {
            config: Some(Arc::new(AuditConfig {
                sink,
                client_ip: ClientIpResolver::new(),
                request_id: HeaderName::from_static("x-request-id"),
                metrics: MetricOptions {
                    on: false,
                    identity_label: false,
                    target_label: false,
                },
                counters: Default::default(),
            })),
        }
    }

    pub(crate) fn disabled() -> Self {
        Self { config: None }
    }

    fn map(self, f: impl FnOnce(&mut AuditConfig)) -> Self {
        let Some(c) = &self.config else {
            return self;
        };
        let mut config = AuditConfig {
            sink: c.sink.clone(),
            client_ip: c.client_ip.clone(),
            request_id: c.request_id.clone(),
            metrics: c.metrics,
            counters: Default::default(),
        };
        f(&mut config);
        Self {
            config: Some(Arc::new(config)),
        }
    }

    /// How the client IP of each event is found (default [`ClientIpResolver::new`]: the
    /// socket address). Use the same resolver as the failed-auth lockout behind a proxy.
    ///
    /// ```
    /// use tower_mcp_auth::{audit::AuditLayer, rate_limit::ClientIpResolver};
    ///
    /// let proxies = ClientIpResolver::new().trust_proxies(["10.0.0.0/8"]).unwrap();
    /// let layer = AuditLayer::tracing().client_ip(proxies);
    /// # let _ = layer;
    /// ```
    pub fn client_ip(self, resolver: ClientIpResolver) -> Self {
        self.map(|c| c.client_ip = resolver)
    }

    /// The request header whose value is the event's `request_id` (default `x-request-id`,
    /// as tower-http's `SetRequestIdLayer` sets it).
    ///
    /// ```
    /// use http::HeaderName;
    /// let layer = tower_mcp_auth::audit::AuditLayer::tracing()
    ///     .request_id_header(HeaderName::from_static("x-correlation-id"));
    /// # let _ = layer;
    /// ```
    pub fn request_id_header(self, name: HeaderName) -> Self {
        self.map(|c| c.request_id = name)
    }

    /// Whether `mcp_auth_decisions_total` is counted (default: no;
    /// [`McpAuthBuilder::metrics`](crate::McpAuthBuilder::metrics) turns it on).
    ///
    /// ```
    /// let layer = tower_mcp_auth::audit::AuditLayer::tracing().decision_metrics(true);
    /// # let _ = layer;
    /// ```
    #[cfg(feature = "metrics")]
    pub fn decision_metrics(self, on: bool) -> Self {
        self.map(|c| c.metrics.on = on)
    }

    /// Adds the `identity` label (the identity's name: an API key's name, a token's subject)
    /// to `mcp_auth_decisions_total`. Off by default: one time series per user is unbounded.
    ///
    /// ```
    /// let layer = tower_mcp_auth::audit::AuditLayer::tracing().identity_label(true);
    /// # let _ = layer;
    /// ```
    #[cfg(feature = "metrics")]
    pub fn identity_label(self, on: bool) -> Self {
        self.map(|c| c.metrics.identity_label = on)
    }

    /// Adds the `target` label (tool or prompt name, resource URI) to
    /// `mcp_auth_decisions_total`. Off by default: names come from the request body.
    ///
    /// ```
    /// let layer = tower_mcp_auth::audit::AuditLayer::tracing().target_label(true);
    /// # let _ = layer;
    /// ```
    #[cfg(feature = "metrics")]
    pub fn target_label(self, on: bool) -> Self {
        self.map(|c| c.metrics.target_label = on)
    }
}

impl<S> Layer<S> for AuditLayer {
    type Service = AuditService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuditService::new(inner, self.config.clone())
    }
}

impl fmt::Debug for AuditLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(c) = &self.config else {
            return f.write_str("AuditLayer(disabled)");
        };
        f.debug_struct("AuditLayer")
            .field("sink", &c.sink.is_some())
            .field("client_ip", &c.client_ip)
            .field("request_id", &c.request_id)
            .field("metrics", &c.metrics)
            .finish()
    }
}
