//! What both limiters do before calling the inner service: ask the store for a decision and
//! turn it into "call" or "refuse", waiting for network stores without holding up anything
//! else.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use tower_service::Service;

use crate::deferred::Deferred;
use crate::error::{AuthError, ErrorContext};
use crate::store::{RateDecision, StoreError};

use super::headers::insert_rate_limit_headers;
use super::layer::FailMode;

/// A store's answer for one request.
pub(crate) type Decision = Deferred<Result<RateDecision, StoreError>>;

/// What a store answer means for the request.
pub(crate) enum Verdict<F> {
    /// The inner service was called; `decision` is there unless the store failed open (then
    /// no `RateLimit-*` headers can be given).
    Call {
        future: F,
        decision: Option<RateDecision>,
    },
    /// Answer with this response instead (429, or 503 when failing closed).
    Deny(Response<Full<Bytes>>),
}

/// Decides at once when the store answered synchronously (the memory store), else parks
/// the request with a ready clone of the service until the store answers.
pub(crate) fn check<S, ReqBody>(
    decision: Decision,
    request: Request<ReqBody>,
    service: &mut S,
    fail_mode: FailMode,
) -> Result<Verdict<S::Future>, Box<PendingCheck<S, ReqBody>>>
where
    S: Service<Request<ReqBody>> + Clone,
{
    match decision.try_into_ready() {
        Ok(result) => Ok(decide(result, fail_mode, || service.call(request))),
        Err(decision) => {
            // `service` was polled ready; the clone takes its place, as tower's docs advise.
            let clone = service.clone();
            Err(Box::new(PendingCheck {
                decision,
                request: Some(request),
                service: std::mem::replace(service, clone),
                fail_mode,
            }))
        }
    }
}

/// A request waiting for its store decision. Boxed in the futures: only network stores take
/// this path, and they already box their own future.
pub(crate) struct PendingCheck<S, ReqBody> {
    decision: Decision,
    request: Option<Request<ReqBody>>,
    service: S,
    fail_mode: FailMode,
}

impl<S, ReqBody> PendingCheck<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    /// Waits for the store, then calls the service or refuses. Must not be polled again
    /// after it returned `Ready`.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Verdict<S::Future>> {
        let result = ready!(Pin::new(&mut self.decision).poll(cx));
        let (request, service) = (&mut self.request, &mut self.service);
        Poll::Ready(decide(result, self.fail_mode, || {
            service.call(
                request
                    .take()
                    .expect("PendingCheck polled after completion"),
            )
        }))
    }
}

fn decide<F>(
    result: Result<RateDecision, StoreError>,
    fail_mode: FailMode,
    call: impl FnOnce() -> F,
) -> Verdict<F> {
    match result {
        Ok(decision) if decision.allowed => Verdict::Call {
            future: call(),
            decision: Some(decision),
        },
        Ok(decision) => {
            let mut res = AuthError::TooManyRequests {
                retry_after: decision.retry_after,
            }
            .to_response(&ErrorContext::new(false, false));
            insert_rate_limit_headers(res.headers_mut(), &decision);
            Verdict::Deny(res)
        }
        Err(e) => {
            tracing::warn!(error = %e, ?fail_mode, "rate limit store unavailable");
            match fail_mode {
                FailMode::Open => Verdict::Call {
                    future: call(),
                    decision: None,
                },
                FailMode::Closed => Verdict::Deny(
                    AuthError::TemporarilyUnavailable.to_response(&ErrorContext::new(false, false)),
                ),
            }
        }
    }
}
