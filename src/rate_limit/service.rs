//! [`RateLimitService`].

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use tower_service::Service;

use crate::body::ResponseBody;
use crate::error::{AuthError, ErrorContext};
use crate::identity::Identity;
use crate::store::{RateDecision, StoreError};

use super::future::{Pending, RateLimitFuture};
use super::headers::insert_rate_limit_headers;
use super::layer::{FailMode, RateLimitConfig};

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

/// What a store answer means for the request.
pub(crate) enum Verdict {
    /// Call the inner service; add headers when there is a decision (none when failing open).
    Allow(Option<RateDecision>),
    /// Answer with this response instead.
    Deny(Response<Full<Bytes>>),
}

pub(crate) fn verdict(result: Result<RateDecision, StoreError>, fail_mode: FailMode) -> Verdict {
    match result {
        Ok(decision) if decision.allowed => Verdict::Allow(Some(decision)),
        Ok(decision) => {
            let mut res = AuthError::TooManyRequests {
                retry_after: decision.retry_after,
            }
            .to_response(&ErrorContext::new(false, false));
            insert_rate_limit_headers(res.headers_mut(), &decision);
            Verdict::Deny(res)
        }
        Err(e) => unavailable(&e, fail_mode),
    }
}

/// A store failure: pass (fail open) or 503 (fail closed).
pub(crate) fn unavailable(e: &StoreError, fail_mode: FailMode) -> Verdict {
    tracing::warn!(error = %e, ?fail_mode, "rate limit store unavailable");
    match fail_mode {
        FailMode::Open => Verdict::Allow(None),
        FailMode::Closed => Verdict::Deny(
            AuthError::TemporarilyUnavailable.to_response(&ErrorContext::new(false, false)),
        ),
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

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let Some(config) = self.config.as_deref() else {
            return RateLimitFuture::calling(self.inner.call(req), None);
        };
        let (parts, body) = req.into_parts();
        let key = config.key.key_for(&parts);
        let quota = match (&config.quota_for, parts.extensions.get::<Identity>()) {
            (Some(quota_for), Some(identity)) => quota_for(identity).unwrap_or(config.quota),
            _ => config.quota,
        };
        let req = Request::from_parts(parts, body);
        let Some(key) = key else {
            return RateLimitFuture::calling(self.inner.call(req), None);
        };
        match config.store.gcra(&key, quota, 1).try_into_ready() {
            Ok(result) => match verdict(result, config.fail_mode) {
                Verdict::Allow(decision) => {
                    RateLimitFuture::calling(self.inner.call(req), decision)
                }
                Verdict::Deny(response) => RateLimitFuture::denied(response),
            },
            Err(decision) => {
                let clone = self.inner.clone();
                let service = std::mem::replace(&mut self.inner, clone);
                RateLimitFuture::checking(Pending {
                    decision,
                    request: Some(req),
                    service,
                    fail_mode: config.fail_mode,
                })
            }
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for RateLimitService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}
