//! Response future of [`RateLimitService`](super::RateLimitService).

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::body::{error_response, ResponseBody};
use crate::deferred::Deferred;
use crate::store::{RateDecision, StoreError};

use super::headers::insert_rate_limit_headers;
use super::layer::FailMode;
use super::service::{verdict, Verdict};

pin_project! {
    /// Response future of [`RateLimitService`](super::RateLimitService).
    pub struct RateLimitFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        // Boxed: only network stores take this path, and they already box their future.
        Checking { pending: Box<Pending<S, ReqBody>> },
        Calling { #[pin] future: S::Future, decision: Option<RateDecision> },
        Denied { response: Option<Response<Full<Bytes>>> },
    }
}

pub(crate) struct Pending<S, ReqBody> {
    pub(crate) decision: Deferred<Result<RateDecision, StoreError>>,
    pub(crate) request: Option<Request<ReqBody>>,
    pub(crate) service: S,
    pub(crate) fail_mode: FailMode,
}

impl<S, ReqBody> RateLimitFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    pub(crate) fn calling(future: S::Future, decision: Option<RateDecision>) -> Self {
        Self {
            state: State::Calling { future, decision },
        }
    }

    pub(crate) fn denied(response: Response<Full<Bytes>>) -> Self {
        Self {
            state: State::Denied {
                response: Some(response),
            },
        }
    }

    pub(crate) fn checking(pending: Pending<S, ReqBody>) -> Self {
        Self {
            state: State::Checking {
                pending: Box::new(pending),
            },
        }
    }
}

impl<S, ReqBody, ResBody> Future for RateLimitFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Checking { pending } => {
                    let result = ready!(Pin::new(&mut pending.decision).poll(cx));
                    let next = match verdict(result, pending.fail_mode) {
                        Verdict::Allow(decision) => {
                            let request = pending
                                .request
                                .take()
                                .expect("RateLimitFuture polled after completion");
                            State::Calling {
                                future: pending.service.call(request),
                                decision,
                            }
                        }
                        Verdict::Deny(response) => State::Denied {
                            response: Some(response),
                        },
                    };
                    this.state.set(next);
                }
                StateProj::Calling { future, decision } => {
                    let mut response = ready!(future.poll(cx))?;
                    if let Some(decision) = decision {
                        insert_rate_limit_headers(response.headers_mut(), decision);
                    }
                    return Poll::Ready(Ok(response.map(ResponseBody::inner)));
                }
                StateProj::Denied { response } => {
                    let response = response
                        .take()
                        .expect("RateLimitFuture polled after completion");
                    return Poll::Ready(Ok(error_response(response)));
                }
            }
        }
    }
}
