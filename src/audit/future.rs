//! Response future of [`AuditService`](super::AuditService): when the response is ready,
//! turns what the layers recorded into events.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Instant, SystemTime};

use http::{Method, Response};
use pin_project_lite::pin_project;

use crate::error::{AuthFailure, AuthFailureKind};

use super::event::{AuditEvent, Outcome, RpcMessage};
use super::layer::AuditConfig;
use super::record::{AuditRecord, Recorded};

/// What the request looked like when it arrived.
pub(crate) struct Pending {
    pub(crate) record: AuditRecord,
    pub(crate) config: Arc<AuditConfig>,
    /// `Some` when the sink wants events; `None` when only decisions are counted. Boxed: it
    /// would otherwise make every request's future larger, events or not.
    pub(crate) detail: Option<Box<Detail>>,
}

/// What an event says beyond the decision itself.
pub(crate) struct Detail {
    pub(crate) start: Instant,
    pub(crate) timestamp: SystemTime,
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) client_ip: Option<IpAddr>,
    pub(crate) request_id: Option<String>,
}

pin_project! {
    /// Response future of [`AuditService`](super::AuditService).
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use http::{Request, Response};
    /// use tower::{service_fn, Service};
    /// use tower_layer::Layer;
    /// use tower_mcp_auth::audit::{AuditFuture, AuditLayer};
    ///
    /// let mut svc = AuditLayer::tracing().layer(service_fn(|_: Request<()>| async {
    ///     Ok::<_, Infallible>(Response::new(()))
    /// }));
    /// let future: AuditFuture<_> = svc.call(Request::new(()));
    /// # drop(future);
    /// ```
    pub struct AuditFuture<F> {
        #[pin]
        inner: F,
        pending: Option<Pending>,
    }
}

impl<F> AuditFuture<F> {
    pub(crate) fn passthrough(inner: F) -> Self {
        Self {
            inner,
            pending: None,
        }
    }

    pub(crate) fn audited(inner: F, pending: Pending) -> Self {
        Self {
            inner,
            pending: Some(pending),
        }
    }
}

impl<F, B, E> Future for AuditFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        if let (Some(pending), Ok(response)) = (this.pending.take(), &result) {
            finish(pending, response);
        }
        Poll::Ready(result)
    }
}

/// Emits the request's events (one per JSON-RPC message, or one) and decision metrics.
fn finish<B>(p: Pending, response: &Response<B>) {
    let failure = response.extensions().get::<AuthFailure>();
    let recorded = std::mem::take(&mut *p.record.lock());
    let refused = failure.is_some() || recorded.mcp_refusal.is_some();
    let reason = refused.then(|| reason(failure, &recorded));
    let outcome = if refused {
        Outcome::Refused
    } else {
        Outcome::Allowed
    };
    let config = &p.config;
    if config.metrics.on {
        let count = |message: Option<&RpcMessage>| {
            let labels = crate::metrics::DecisionLabels {
                outcome,
                reason: message.and_then(|m| m.refusal).or(reason),
                identity: recorded.identity.as_ref(),
                endpoint: recorded.decision.as_ref().map(|d| d.endpoint_label()),
                rpc: message,
            };
            crate::metrics::decision(&labels, &config.metrics, &config.counters);
        };
        if recorded.messages.is_empty() {
            count(None);
        }
        recorded.messages.iter().for_each(|m| count(Some(m)));
    }
    let (Some(detail), Some(sink)) = (p.detail, &config.sink) else {
        return;
    };
    let Recorded {
        decision,
        identity,
        mut messages,
        ..
    } = recorded;
    let detail = *detail;
    let base = AuditEvent {
        timestamp: detail.timestamp,
        outcome,
        status: response.status().as_u16(),
        reason,
        identity,
        endpoint: decision.as_ref().map(|d| d.endpoint_label().to_owned()),
        http_method: detail.method,
        path: detail.path,
        rpc: None,
        client_ip: detail.client_ip,
        request_id: detail.request_id,
        latency: detail.start.elapsed(),
    };
    let Some(last) = messages.pop() else {
        return sink.record(base);
    };
    let with = |mut event: AuditEvent, message: RpcMessage| {
        if let Some(own) = message.refusal {
            event.reason = Some(own);
        }
        event.rpc = Some(message);
        event
    };
    for message in messages {
        sink.record(with(base.clone(), message));
    }
    sink.record(with(base, last));
}

/// Why a request was refused, from the response's marker and where it stopped.
fn reason(failure: Option<&AuthFailure>, recorded: &Recorded) -> &'static str {
    if let Some(reason) = recorded.mcp_refusal {
        return reason;
    }
    let Some(failure) = failure else {
        return "refused";
    };
    match failure.kind {
        AuthFailureKind::MissingCredentials => "authentication_required",
        AuthFailureKind::InvalidCredentials => "invalid_credentials",
        AuthFailureKind::InvalidToken => "invalid_token",
        AuthFailureKind::AccessDenied => "access_denied",
        AuthFailureKind::InsufficientScope => "insufficient_scope",
        // The lockout refuses before the policy layer, the quota after it.
        AuthFailureKind::RateLimited if recorded.decision.is_none() => "lockout",
        AuthFailureKind::RateLimited => "quota",
        AuthFailureKind::Unavailable => "temporarily_unavailable",
        AuthFailureKind::MalformedRequest => "invalid_request",
        AuthFailureKind::InvalidOrigin => "invalid_origin",
    }
}
