//! Response future of [`EndpointPolicyService`](super::EndpointPolicyService).

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use pin_project_lite::pin_project;

use crate::body::ResponseBody;

pin_project! {
    /// Response future of [`EndpointPolicyService`](super::EndpointPolicyService) (and of
    /// [`OriginService`](crate::origin::OriginService)): the inner service's future, or a
    /// ready error response.
    pub struct PolicyFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Allowed { #[pin] future: F },
        Denied { response: Option<Response<Full<Bytes>>> },
    }
}

impl<F> PolicyFuture<F> {
    pub(crate) fn allowed(future: F) -> Self {
        Self {
            kind: Kind::Allowed { future },
        }
    }

    pub(crate) fn denied(response: Response<Full<Bytes>>) -> Self {
        Self {
            kind: Kind::Denied {
                response: Some(response),
            },
        }
    }
}

impl<F, B, E> Future for PolicyFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Allowed { future } => {
                let response = ready!(future.poll(cx))?;
                Poll::Ready(Ok(response.map(ResponseBody::inner)))
            }
            KindProj::Denied { response } => {
                let response = response
                    .take()
                    .expect("PolicyFuture polled after completion");
                Poll::Ready(Ok(crate::body::error_response(response)))
            }
        }
    }
}

impl<F> std::fmt::Debug for PolicyFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyFuture").finish_non_exhaustive()
    }
}
