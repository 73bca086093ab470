//! [`AuditService`].

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use http::{Request, Response};
use tower_service::Service;

use super::future::{AuditFuture, Detail, Pending};
use super::layer::AuditConfig;
use super::record::AuditRecord;

/// Longest request id kept; a longer one is recorded as absent.
const MAX_REQUEST_ID: usize = 200;

/// Service produced by [`AuditLayer`](super::AuditLayer).
///
/// ```
/// use tower_layer::Layer;
/// use tower_mcp_auth::audit::AuditLayer;
///
/// let svc = AuditLayer::tracing().layer("inner");
/// assert_eq!(*svc.get_ref(), "inner");
/// ```
#[derive(Clone)]
pub struct AuditService<S> {
    inner: S,
    config: Option<Arc<AuditConfig>>,
}

impl<S> AuditService<S> {
    pub(crate) fn new(inner: S, config: Option<Arc<AuditConfig>>) -> Self {
        Self { inner, config }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for AuditService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = AuditFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let Some(config) = &self.config else {
            return AuditFuture::passthrough(self.inner.call(req));
        };
        let events = config.sink.as_ref().is_some_and(|s| s.enabled());
        if !events && !config.metrics.on {
            return AuditFuture::passthrough(self.inner.call(req));
        }
        let record = AuditRecord::default();
        req.extensions_mut().insert(record.clone());
        let detail = events.then(|| {
            Box::new(Detail {
                start: Instant::now(),
                timestamp: SystemTime::now(),
                method: req.method().clone(),
                // Only the path: the query string may carry an API key.
                path: req.uri().path().to_owned(),
                client_ip: config.client_ip.resolve(req.headers(), req.extensions()),
                request_id: req
                    .headers()
                    .get(&config.request_id)
                    .filter(|v| v.len() <= MAX_REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
            })
        });
        let pending = Pending {
            record,
            config: config.clone(),
            detail,
        };
        AuditFuture::audited(self.inner.call(req), pending)
    }
}

impl<S: fmt::Debug> fmt::Debug for AuditService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}
