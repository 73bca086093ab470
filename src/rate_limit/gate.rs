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

/// A request waiting for its store decision. Boxed in the futures: only network stores take
/// this path, and they already box their own future.
pub(crate) struct PendingCheck<S, ReqBody> {
    decision: Decision,
    request: Option<Request<ReqBody>>,
    service: S,
    fail_mode: FailMode,
    timer: crate::metrics::Timer,
}

/// What a store answer means for the request.
enum Verdict {
    /// Call the inner service; the decision is there unless the store failed open (then no
    /// `RateLimit-*` headers can be given).
    Call(Option<RateDecision>),
    /// Answer with this instead (429, or 503 when failing closed).
    Deny(Response<Full<Bytes>>),
}

fn verdict(result: Result<RateDecision, StoreError>, fail_mode: FailMode) -> Verdict {
    match result {
        Ok(decision) if decision.allowed => Verdict::Call(Some(decision)),
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
                FailMode::Open => Verdict::Call(None),
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
    /// The inner service answered; `decision` is there unless the store failed open.
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
    /// Straight to the inner service: not limited, so no decision and no headers.
    pub(crate) fn calling(future: S::Future) -> Self {
        Self::Calling {
            future,
            decision: None,
        }
    }

    /// Asks the store's `decision` whether `request` may go on to `service` (made ready by
    /// `poll_ready`): decided at once when the store answered synchronously (the memory
    /// store), else the request is parked with the ready service until the store answers.
    ///
    /// The gate is built in place: the request goes straight into `service.call` (or the
    /// parked check), not through an intermediate verdict, so neither the request head nor
    /// the inner future is copied on the way.
    #[inline]
    pub(crate) fn start(
        decision: Decision,
        request: Request<ReqBody>,
        service: &mut S,
        fail_mode: FailMode,
    ) -> Self
    where
        S: Clone,
    {
        let timer = crate::metrics::Timer::start();
        match decision.try_into_ready() {
            Ok(result) => {
                timer.store_op("gcra", result.is_ok());
                match verdict(result, fail_mode) {
                    Verdict::Call(decision) => Self::Calling {
                        future: service.call(request),
                        decision,
                    },
                    Verdict::Deny(response) => Self::Denied {
                        response: Some(response),
                    },
                }
            }
            Err(decision) => {
                // `service` was polled ready; the clone takes its place, as tower's docs advise.
                let clone = service.clone();
                Self::Checking {
                    pending: Box::new(PendingCheck {
                        decision,
                        request: Some(request),
                        service: std::mem::replace(service, clone),
                        fail_mode,
                        timer,
                    }),
                }
            }
        }
    }

    pub(crate) fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Gated<S::Response, S::Error>> {
        loop {
            match self.as_mut().project() {
                GateProj::Checking { pending } => {
                    let result = ready!(Pin::new(&mut pending.decision).poll(cx));
                    pending.timer.store_op("gcra", result.is_ok());
                    let next = match verdict(result, pending.fail_mode) {
                        Verdict::Call(decision) => {
                            let request = pending
                                .request
                                .take()
                                .expect("Gate polled after completion");
                            Self::Calling {
                                future: pending.service.call(request),
                                decision,
                            }
                        }
                        Verdict::Deny(response) => Self::Denied {
                            response: Some(response),
                        },
                    };
                    self.set(next);
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
