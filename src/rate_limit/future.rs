//! Response future of [`RateLimitService`](super::RateLimitService).

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::body::{error_response, ResponseBody};

use super::gate::{Gate, Gated};
use super::headers::insert_rate_limit_headers;

pin_project! {
    /// Response future of [`RateLimitService`](super::RateLimitService).
    pub struct RateLimitFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        gate: Gate<S, ReqBody>,
    }
}

impl<S, ReqBody> RateLimitFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    /// Not limited (no key for this request, or the layer is off): no headers.
    pub(crate) fn calling(future: S::Future) -> Self {
        Self {
            gate: Gate::calling(future),
        }
    }

    /// Limited: the store's decision gates the call.
    pub(crate) fn gated(gate: Gate<S, ReqBody>) -> Self {
        Self { gate }
    }
}

impl<S, ReqBody, ResBody> Future for RateLimitFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match ready!(self.project().gate.poll(cx)) {
            Gated::Called { outcome, decision } => {
                let mut response = outcome?;
                if let Some(decision) = decision {
                    insert_rate_limit_headers(response.headers_mut(), &decision);
                }
                Poll::Ready(Ok(response.map(ResponseBody::inner)))
            }
            Gated::Denied(response) => {
                if response.status() == http::StatusCode::TOO_MANY_REQUESTS {
                    crate::metrics::quota_refused("identity");
                }
                Poll::Ready(Ok(error_response(response)))
            }
        }
    }
}
