//! [`RateLimitService`].

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use crate::body::ResponseBody;
use crate::identity::Identity;

use super::future::RateLimitFuture;
use super::gate::Gate;
use super::layer::RateLimitConfig;

/// Service produced by [`RateLimitLayer`](super::RateLimitLayer).
#[derive(Clone)]
pub struct RateLimitService<S> {
    inner: S,
    config: Option<Arc<RateLimitConfig>>,
}

impl<S> RateLimitService<S> {
    pub(crate) fn new(inner: S, config: Option<Arc<RateLimitConfig>>) -> Self {
        Self { inner, config }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RateLimitService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = RateLimitFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let Some(config) = self.config.as_deref() else {
            return RateLimitFuture::calling(self.inner.call(req));
        };
        let Some(key) = config.key.key_for_request(&mut req) else {
            return RateLimitFuture::calling(self.inner.call(req));
        };
        let quota = match (&config.quota_for, req.extensions().get::<Identity>()) {
            (Some(quota_for), Some(identity)) => quota_for(identity).unwrap_or(config.quota),
            _ => config.quota,
        };
        let decision = config.store.gcra(&key, quota, 1);
        RateLimitFuture::gated(Gate::start(
            decision,
            req,
            &mut self.inner,
            config.fail_mode,
        ))
    }
}

impl<S: fmt::Debug> fmt::Debug for RateLimitService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}
