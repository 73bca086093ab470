//! [`McpPermissionsService`].

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{Method, Request, Response};
use http_body::Body;
use tower_service::Service;

use crate::identity::Identity;

use super::body::{McpRequestBody, McpResponseBody};
use super::future::McpPermissionsFuture;
use super::layer::McpConfig;

/// Boxed error of the bodies this service reads.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Service produced by [`McpPermissionsLayer`](super::McpPermissionsLayer).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use bytes::Bytes;
/// use http::Request;
/// use http_body_util::Full;
/// use tower::{ServiceBuilder, ServiceExt};
/// use tower_mcp_auth::{AuthMethod, Identity, mcp::{McpPermissionsLayer, McpRequestBody}};
///
/// let svc = ServiceBuilder::new()
///     .layer(McpPermissionsLayer::new())
///     .service_fn(|_req: Request<McpRequestBody<Full<Bytes>>>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from("ran"))))
///     });
///
/// let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"rm"}}"#;
/// let mut req = Request::post("/mcp").body(Full::new(Bytes::from(call))).unwrap();
/// // What `EndpointPolicyLayer` leaves for the layers after it:
/// req.extensions_mut().insert(
///     Identity::builder(AuthMethod::ApiKey, "bot").permissions(["tools/call:echo"]).build(),
/// );
/// let res = svc.oneshot(req).await.unwrap();
/// assert_eq!(res.status(), 403);
/// # }
/// ```
#[derive(Clone)]
pub struct McpPermissionsService<S> {
    inner: S,
    config: Arc<McpConfig>,
}

impl<S> McpPermissionsService<S> {
    pub(crate) fn new(inner: S, config: Arc<McpConfig>) -> Self {
        Self { inner, config }
    }

    /// The wrapped service.
    ///
    /// ```
    /// use tower_layer::Layer;
    /// use tower_mcp_auth::mcp::McpPermissionsLayer;
    ///
    /// let svc = McpPermissionsLayer::new().layer("inner");
    /// assert_eq!(*svc.get_ref(), "inner");
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The identity to check the request for, or `None` when it passes uninspected.
    fn inspected<B>(&self, req: &Request<B>) -> Option<Identity> {
        if req.method() != Method::POST {
            return None;
        }
        // Fail closed: every POST is inspected wherever the service is mounted (a nest strips
        // its prefix, and serves `/mcp/` and `/mcp/x` too), unless explicitly excluded.
        if self.config.is_excluded(req.uri().path()) {
            return None;
        }
        req.extensions().get::<Identity>().cloned()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for McpPermissionsService<S>
where
    S: Service<Request<McpRequestBody<ReqBody>>, Response = Response<ResBody>> + Clone,
    ReqBody: Body<Data = Bytes>,
    ReqBody::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes>,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<McpResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = McpPermissionsFuture<S, ReqBody, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let Some(identity) = self.inspected(&req) else {
            return McpPermissionsFuture::passthrough(
                self.inner.call(req.map(McpRequestBody::streaming)),
            );
        };
        let limit = self.config.max_body_bytes;
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit as u64) {
            // Refused before reading a byte.
            crate::audit::record::mcp_refused(req.extensions(), "payload_too_large", |_| true);
            return McpPermissionsFuture::refused(super::refusal::too_large(limit));
        }
        // The body must be read before the inner service is called: take the service that
        // `poll_ready` readied and leave a clone in its place (tower's usual pattern).
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        McpPermissionsFuture::reading(req, inner, identity, self.config.clone())
    }
}

impl<S: fmt::Debug> fmt::Debug for McpPermissionsService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("McpPermissionsService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}
