//! Response future of [`OriginService`](super::OriginService).

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use pin_project_lite::pin_project;

use crate::body::ResponseBody;

pin_project! {
    /// Response future of [`OriginService`](super::OriginService): the inner service's
    /// future, or a ready 403.
    pub struct OriginFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Allowed { #[pin] future: F },
        Refused { response: Option<Response<Full<Bytes>>> },
    }
}

impl<F> OriginFuture<F> {
    pub(crate) fn allowed(future: F) -> Self {
        Self {
            kind: Kind::Allowed { future },
        }
    }

    pub(crate) fn refused(response: Response<Full<Bytes>>) -> Self {
        Self {
            kind: Kind::Refused {
                response: Some(response),
            },
        }
    }
}

impl<F, B, E> Future for OriginFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Allowed { future } => {
                let response = ready!(future.poll(cx))?;
                Poll::Ready(Ok(response.map(ResponseBody::inner)))
            }
            KindProj::Refused { response } => {
                let response = response
                    .take()
                    .expect("OriginFuture polled after completion");
                Poll::Ready(Ok(crate::body::error_response(response)))
            }
        }
    }
}

impl<F> std::fmt::Debug for OriginFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OriginFuture").finish_non_exhaustive()
    }
}
