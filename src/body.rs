//! [`ResponseBody`]: the inner service's body, or an error body produced by a deciding layer.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use pin_project_lite::pin_project;

/// Implements [`Body`](http_body::Body) (`Data = Bytes`, the inner body's error) for
/// `$ty<B>` over an inner body `B`: the part every body of the crate shares, written once,
/// around its three methods.
macro_rules! impl_body {
    ($ty:ident,
     poll($this:ident, $cx:ident) $poll:block,
     is_end_stream($end_this:ident) $end:block,
     size_hint($hint_this:ident) $hint:block
    ) => {
        impl<B> http_body::Body for $ty<B>
        where
            B: http_body::Body<Data = bytes::Bytes>,
        {
            type Data = bytes::Bytes;
            type Error = B::Error;

            fn poll_frame(
                self: std::pin::Pin<&mut Self>,
                $cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, B::Error>>> {
                let $this = self;
                $poll
            }

            fn is_end_stream(&self) -> bool {
                let $end_this = self;
                $end
            }

            fn size_hint(&self) -> http_body::SizeHint {
                let $hint_this = self;
                $hint
            }
        }
    };
}
pub(crate) use impl_body;

/// Implements [`Body`](http_body::Body) for a body whose pinned `kind` field is a [`FullOr`].
macro_rules! delegate_body {
    ($ty:ident) => {
        $crate::body::impl_body!($ty,
            poll(this, cx) { this.project().kind.poll_frame(cx) },
            is_end_stream(this) { this.kind.is_end_stream() },
            size_hint(this) { this.kind.size_hint() }
        );
    };
}
pub(crate) use delegate_body;

pin_project! {
    /// Response body of the deciding layers ([`EndpointPolicyLayer`](crate::policy::EndpointPolicyLayer)
    /// and the rate limiters): either the inner service's body, untouched, or a small JSON
    /// error body from the response contract.
    ///
    /// Wrapping instead of boxing keeps the success path free of allocations.
    pub struct ResponseBody<B> {
        #[pin]
        kind: FullOr<B>,
    }
}

impl<B> ResponseBody<B> {
    /// Wraps the inner service's body.
    pub fn inner(body: B) -> Self {
        Self {
            kind: FullOr::Inner { body },
        }
    }

    /// Wraps an error body.
    pub fn error(body: Full<Bytes>) -> Self {
        Self {
            kind: FullOr::Full { body },
        }
    }
}

delegate_body!(ResponseBody);

pin_project! {
    /// A body of the crate: the inner service's (or client's) body untouched, or bytes the
    /// crate produced (an error, a checked request, a filtered response). The public bodies
    /// wrap it, so the `Body` plumbing is written once.
    #[project = FullOrProj]
    pub(crate) enum FullOr<B> {
        Inner { #[pin] body: B },
        Full { #[pin] body: Full<Bytes> },
    }
}

impl<B> FullOr<B> {
    /// Whether these are bytes the crate produced.
    pub(crate) fn is_full(&self) -> bool {
        matches!(self, FullOr::Full { .. })
    }
}

impl_body!(FullOr,
    poll(this, cx) {
        match this.project() {
            FullOrProj::Inner { body } => body.poll_frame(cx),
            // A `Full` never fails: its frames are re-typed to the inner body's error.
            FullOrProj::Full { body } => body
                .poll_frame(cx)
                .map(|frame| frame.map(|r| r.map_err(|never: Infallible| match never {}))),
        }
    },
    is_end_stream(this) {
        match this {
            FullOr::Inner { body } => body.is_end_stream(),
            FullOr::Full { body } => body.is_end_stream(),
        }
    },
    size_hint(this) {
        match this {
            FullOr::Inner { body } => body.size_hint(),
            FullOr::Full { body } => body.size_hint(),
        }
    }
);

impl<B> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.kind.is_full() {
            "ResponseBody::Error"
        } else {
            "ResponseBody::Inner"
        })
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
    use http_body::Body;

    #[test]
    fn both_variants_yield_their_bytes() {
        let body: ResponseBody<Full<Bytes>> = ResponseBody::error(Full::new(Bytes::from("{}")));
        assert_eq!(body.size_hint().exact(), Some(2));
        assert_eq!(crate::test_util::body_bytes(body), "{}");
        let body = ResponseBody::inner(Full::new(Bytes::from("inner")));
        assert_eq!(crate::test_util::body_bytes(body), "inner");
    }
}
