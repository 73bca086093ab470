//! Request and response bodies of [`McpPermissionsService`](super::McpPermissionsService).

use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use pin_project_lite::pin_project;

use super::filter::ToolsFilter;
use super::sse::SseRewriter;

pin_project! {
    /// Request body handed to the service inside
    /// [`McpPermissionsLayer`](super::McpPermissionsLayer): the bytes the layer read and
    /// checked, or the original body, untouched and still streaming, when the request was not
    /// inspected (no [`Identity`](crate::Identity), not a `POST`, or another path).
    ///
    /// It is an ordinary [`http_body::Body`], so axum routers, rmcp's
    /// `StreamableHttpService`, hyper and tonic services accept it as is.
    ///
    /// ```
    /// use http_body::Body;
    /// use tower_mcp_auth::mcp::McpRequestBody;
    ///
    /// let body: McpRequestBody<String> = McpRequestBody::buffered("{}".into());
    /// assert!(body.is_buffered());
    /// assert_eq!(body.size_hint().exact(), Some(2));
    /// ```
    pub struct McpRequestBody<B> {
        #[pin]
        kind: RequestKind<B>,
    }
}

pin_project! {
    #[project = RequestKindProj]
    enum RequestKind<B> {
        Buffered { #[pin] body: Full<Bytes> },
        Streaming { #[pin] body: B },
    }
}

impl<B> McpRequestBody<B> {
    /// A body read into memory.
    ///
    /// ```
    /// let body = tower_mcp_auth::mcp::McpRequestBody::<String>::buffered("{}".into());
    /// assert!(body.is_buffered());
    /// ```
    pub fn buffered(bytes: Bytes) -> Self {
        Self {
            kind: RequestKind::Buffered {
                body: Full::new(bytes),
            },
        }
    }

    /// The original body, passed on as it streams.
    ///
    /// ```
    /// let body = tower_mcp_auth::mcp::McpRequestBody::streaming(String::from("raw"));
    /// assert!(!body.is_buffered());
    /// ```
    pub fn streaming(body: B) -> Self {
        Self {
            kind: RequestKind::Streaming { body },
        }
    }

    /// Whether the layer read (and checked) this body.
    ///
    /// ```
    /// use tower_mcp_auth::mcp::McpRequestBody;
    /// assert!(McpRequestBody::<String>::buffered("{}".into()).is_buffered());
    /// ```
    pub fn is_buffered(&self) -> bool {
        matches!(self.kind, RequestKind::Buffered { .. })
    }
}

impl<B> Body for McpRequestBody<B>
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
            RequestKindProj::Buffered { body } => full_frame(body, cx),
            RequestKindProj::Streaming { body } => body.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            RequestKind::Buffered { body } => body.is_end_stream(),
            RequestKind::Streaming { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            RequestKind::Buffered { body } => body.size_hint(),
            RequestKind::Streaming { body } => body.size_hint(),
        }
    }
}

impl<B> fmt::Debug for McpRequestBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            RequestKind::Buffered { .. } => f.write_str("McpRequestBody::Buffered"),
            RequestKind::Streaming { .. } => f.write_str("McpRequestBody::Streaming"),
        }
    }
}

/// A `Full` never fails; its frames are re-typed to the inner body's error.
fn full_frame<E>(
    body: Pin<&mut Full<Bytes>>,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Frame<Bytes>, E>>> {
    body.poll_frame(cx)
        .map(|frame| frame.map(|r| r.map_err(|never: Infallible| match never {})))
}

pin_project! {
    /// Response body of [`McpPermissionsService`](super::McpPermissionsService): the inner
    /// service's body untouched, a small JSON body (a refusal, or a filtered `tools/list`
    /// JSON response), or the inner event stream with `tools/list` responses filtered.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use bytes::Bytes;
    /// use http::Request;
    /// use http_body_util::{BodyExt, Full};
    /// use tower::{ServiceBuilder, ServiceExt};
    /// use tower_mcp_auth::{AuthMethod, Identity, mcp::{McpPermissionsLayer, McpRequestBody}};
    ///
    /// let svc = ServiceBuilder::new()
    ///     .layer(McpPermissionsLayer::new())
    ///     .service_fn(|_req: Request<McpRequestBody<Full<Bytes>>>| async {
    ///         Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::new())))
    ///     });
    /// let mut req = Request::post("/mcp").body(Full::new(Bytes::from("{oops"))).unwrap();
    /// req.extensions_mut().insert(Identity::builder(AuthMethod::ApiKey, "k").build());
    /// let res = svc.oneshot(req).await.unwrap();
    /// assert_eq!(res.status(), 400);
    /// // A `McpResponseBody` is read like any other body.
    /// let body = res.into_body().collect().await.unwrap().to_bytes();
    /// let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    /// assert_eq!(json["error"]["code"], -32700);
    /// # }
    /// ```
    pub struct McpResponseBody<B> {
        #[pin]
        kind: ResponseKind<B>,
    }
}

pin_project! {
    #[project = ResponseKindProj]
    enum ResponseKind<B> {
        Inner { #[pin] body: B },
        Full { #[pin] body: Full<Bytes> },
        EventStream {
            #[pin]
            body: B,
            rewriter: SseRewriter,
            trailers: Option<HeaderMap>,
            ended: bool,
        },
    }
}

impl<B> McpResponseBody<B> {
    pub(crate) fn inner(body: B) -> Self {
        Self {
            kind: ResponseKind::Inner { body },
        }
    }

    pub(crate) fn full(bytes: Bytes) -> Self {
        Self::from_full(Full::new(bytes))
    }

    pub(crate) fn from_full(body: Full<Bytes>) -> Self {
        Self {
            kind: ResponseKind::Full { body },
        }
    }

    pub(crate) fn event_stream(body: B, filter: ToolsFilter) -> Self {
        Self {
            kind: ResponseKind::EventStream {
                body,
                rewriter: SseRewriter::new(filter),
                trailers: None,
                ended: false,
            },
        }
    }
}

impl<B> Body for McpResponseBody<B>
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
            ResponseKindProj::Inner { body } => body.poll_frame(cx),
            ResponseKindProj::Full { body } => full_frame(body, cx),
            ResponseKindProj::EventStream {
                mut body,
                rewriter,
                trailers,
                ended,
            } => loop {
                if *ended {
                    return Poll::Ready(trailers.take().map(|t| Ok(Frame::trailers(t))));
                }
                let out = match std::task::ready!(body.as_mut().poll_frame(cx)) {
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(data) => rewriter.push(data),
                        Err(frame) => {
                            // Trailers end the data: flush first, send them after.
                            *trailers = frame.into_trailers().ok();
                            *ended = true;
                            rewriter.finish()
                        }
                    },
                    Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                    None => {
                        *ended = true;
                        rewriter.finish()
                    }
                };
                if !out.is_empty() {
                    return Poll::Ready(Some(Ok(Frame::data(out))));
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            ResponseKind::Inner { body } => body.is_end_stream(),
            ResponseKind::Full { body } => body.is_end_stream(),
            ResponseKind::EventStream {
                ended, trailers, ..
            } => *ended && trailers.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            ResponseKind::Inner { body } => body.size_hint(),
            ResponseKind::Full { body } => body.size_hint(),
            // Filtering changes the length.
            ResponseKind::EventStream { .. } => SizeHint::default(),
        }
    }
}

impl<B> fmt::Debug for McpResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ResponseKind::Inner { .. } => f.write_str("McpResponseBody::Inner"),
            ResponseKind::Full { .. } => f.write_str("McpResponseBody::Full"),
            ResponseKind::EventStream { .. } => f.write_str("McpResponseBody::EventStream"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::filter::tests::{filter, tools_result};
    use http_body_util::BodyExt;
    use serde_json::json;

    #[test]
    fn request_body_variants() {
        let b: McpRequestBody<Full<Bytes>> = McpRequestBody::streaming(Full::new("x".into()));
        assert!(!b.is_buffered());
        assert_eq!(crate::test_util::body_bytes(b), "x");
        let b: McpRequestBody<Full<Bytes>> = McpRequestBody::buffered("y".into());
        assert_eq!(crate::test_util::body_bytes(b), "y");
    }

    /// A body that yields prepared frames, one per poll.
    struct Frames(std::vec::IntoIter<Frame<Bytes>>);

    impl Body for Frames {
        type Data = Bytes;
        type Error = Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Ready(self.0.next().map(Ok))
        }
    }

    #[test]
    fn event_stream_is_filtered_and_trailers_kept() {
        let text = format!("data: {}\n\n", tools_result(json!(1)));
        let (a, b) = text.split_at(10);
        let mut trailers = HeaderMap::new();
        trailers.insert("x-t", "1".parse().unwrap());
        let inner = Frames(
            vec![
                Frame::data(Bytes::copy_from_slice(a.as_bytes())),
                Frame::data(Bytes::copy_from_slice(b.as_bytes())),
                Frame::trailers(trailers),
            ]
            .into_iter(),
        );
        let body =
            McpResponseBody::event_stream(inner, filter(vec![json!(1)], &["tools/call:echo"]));
        let collected = crate::test_util::now_or_never(body.collect()).unwrap();
        assert_eq!(collected.trailers().unwrap()["x-t"], "1");
        let out = String::from_utf8(collected.to_bytes().to_vec()).unwrap();
        assert!(
            out.contains("\"echo\"") && !out.contains("search_docs"),
            "{out}"
        );
    }
}
