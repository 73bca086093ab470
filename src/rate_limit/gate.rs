//! What both limiters do before calling the inner service: ask the store for a decision and
//! turn it into "call" or "refuse", waiting for network stores without holding up anything
//! else.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use pin_project_lite::pin_project;
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
    let timer = crate::metrics::Timer::start();
    match decision.try_into_ready() {
        Ok(result) => {
            timer.store_op("gcra", result.is_ok());
            Ok(decide(result, fail_mode, || service.call(request)))
        }
        Err(decision) => {
            // `service` was polled ready; the clone takes its place, as tower's docs advise.
            let clone = service.clone();
            Err(Box::new(PendingCheck {
                decision,
                request: Some(request),
                service: std::mem::replace(service, clone),
                fail_mode,
                timer,
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
    timer: crate::metrics::Timer,
}

impl<S, ReqBody> PendingCheck<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    /// Waits for the store, then calls the service or refuses. Must not be polled again
    /// after it returned `Ready`.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Verdict<S::Future>> {
        let result = ready!(Pin::new(&mut self.decision).poll(cx));
        self.timer.store_op("gcra", result.is_ok());
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

pin_project! {
    /// The future both limiters share: waits for the store when it answers later, then
    /// runs the inner service or holds the refusal. Yields a [`Gated`]; what each limiter
    /// does with the response (headers, a refund) stays in its own future. Must not be
    /// polled again after it returned `Ready`.
    #[project = GateProj]
    pub(crate) enum Gate<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        Checking { pending: Box<PendingCheck<S, ReqBody>> },
        Calling { #[pin] future: S::Future, decision: Option<RateDecision> },
        Denied { response: Option<Response<Full<Bytes>>> },
    }
}

/// What a [`Gate`] ends with.
pub(crate) enum Gated<R, E> {
    /// The inner service answered; `decision` as in [`Verdict::Call`].
    Called {
        outcome: Result<R, E>,
        decision: Option<RateDecision>,
    },
    /// The request was refused (429, or 503 when failing closed).
    Denied(Response<Full<Bytes>>),
}

impl<S, ReqBody> Gate<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    /// Straight to the inner service: not limited, or the decision is known.
    pub(crate) fn calling(future: S::Future, decision: Option<RateDecision>) -> Self {
        Self::Calling { future, decision }
    }

    /// Waiting for a network store.
    pub(crate) fn checking(pending: Box<PendingCheck<S, ReqBody>>) -> Self {
        Self::Checking { pending }
    }

    pub(crate) fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Gated<S::Response, S::Error>> {
        loop {
            match self.as_mut().project() {
                GateProj::Checking { pending } => {
                    let verdict = ready!(pending.poll(cx));
                    self.set(Self::from(verdict));
                }
                GateProj::Calling { future, decision } => {
                    let outcome = ready!(future.poll(cx));
                    return Poll::Ready(Gated::Called {
                        outcome,
                        decision: decision.take(),
                    });
                }
                GateProj::Denied { response } => {
                    let response = response.take().expect("Gate polled after completion");
                    return Poll::Ready(Gated::Denied(response));
                }
            }
        }
    }
}

impl<S, ReqBody> From<Verdict<S::Future>> for Gate<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    fn from(verdict: Verdict<S::Future>) -> Self {
        match verdict {
            Verdict::Call { future, decision } => Self::Calling { future, decision },
            Verdict::Deny(response) => Self::Denied {
                response: Some(response),
            },
        }
    }
}
