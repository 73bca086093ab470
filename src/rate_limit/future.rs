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
use crate::store::RateDecision;

use super::gate::{PendingCheck, Verdict};
use super::headers::insert_rate_limit_headers;

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
        Checking { pending: Box<PendingCheck<S, ReqBody>> },
        Calling { #[pin] future: S::Future, decision: Option<RateDecision> },
        Denied { response: Option<Response<Full<Bytes>>> },
    }
}

impl<S, ReqBody> RateLimitFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    /// Not limited (no key for this request, or the layer is off): no headers.
    pub(crate) fn calling(future: S::Future, decision: Option<RateDecision>) -> Self {
        Self {
            state: State::Calling { future, decision },
        }
    }

    pub(crate) fn decided(verdict: Verdict<S::Future>) -> Self {
        Self {
            state: State::from(verdict),
        }
    }

    pub(crate) fn checking(pending: Box<PendingCheck<S, ReqBody>>) -> Self {
        Self {
            state: State::Checking { pending },
        }
    }
}

impl<S, ReqBody> From<Verdict<S::Future>> for State<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    fn from(verdict: Verdict<S::Future>) -> Self {
        match verdict {
            Verdict::Call { future, decision } => State::Calling { future, decision },
            Verdict::Deny(response) => State::Denied {
                response: Some(response),
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
                    let verdict = ready!(pending.poll(cx));
                    this.state.set(State::from(verdict));
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
