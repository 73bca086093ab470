//! [`ResponseBody`]: the inner service's body, or an error body produced by a deciding layer.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use pin_project_lite::pin_project;

pin_project! {
    /// Response body of the deciding layers ([`EndpointPolicyLayer`](crate::policy::EndpointPolicyLayer)
    /// and the rate limiters): either the inner service's body, untouched, or a small JSON
    /// error body from the response contract.
    ///
    /// Wrapping instead of boxing keeps the success path free of allocations.
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Error { #[pin] body: Full<Bytes> },
    }
}

impl<B> ResponseBody<B> {
    /// Wraps the inner service's body.
    pub fn inner(body: B) -> Self {
        Self {
            kind: Kind::Inner { body },
        }
    }

    /// Wraps an error body.
    pub fn error(body: Full<Bytes>) -> Self {
        Self {
            kind: Kind::Error { body },
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx),
            KindProj::Error { body } => match body.poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
                Poll::Ready(Some(Err(never))) => match never {},
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Error { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Error { body } => body.size_hint(),
        }
    }
}

impl<B> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::Inner { .. } => f.write_str("ResponseBody::Inner"),
            Kind::Error { .. } => f.write_str("ResponseBody::Error"),
        }
    }
}

/// Converts an error response into the wrapping body type.
pub(crate) fn error_response<B>(
    res: http::Response<Full<Bytes>>,
) -> http::Response<ResponseBody<B>> {
    res.map(ResponseBody::error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_variants_yield_their_bytes() {
        let body: ResponseBody<Full<Bytes>> = ResponseBody::error(Full::new(Bytes::from("{}")));
        assert_eq!(body.size_hint().exact(), Some(2));
        assert_eq!(crate::test_util::body_bytes(body), "{}");
        let body = ResponseBody::inner(Full::new(Bytes::from("inner")));
        assert_eq!(crate::test_util::body_bytes(body), "inner");
    }
}
