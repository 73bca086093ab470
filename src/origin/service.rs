//! [`OriginService`].

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{HOST, ORIGIN};
use http::{Request, Response};
use tower_service::Service;

use crate::body::ResponseBody;
use crate::error::{AuthError, ErrorContext, OriginRejection};

use super::future::OriginFuture;
use super::layer::OriginConfig;

/// Service produced by [`OriginLayer`](super::OriginLayer).
#[derive(Clone)]
pub struct OriginService<S> {
    inner: S,
    config: Option<Arc<OriginConfig>>,
}

impl<S> OriginService<S> {
    pub(crate) fn new(inner: S, config: Option<Arc<OriginConfig>>) -> Self {
        Self { inner, config }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for OriginService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = OriginFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        if let Some(config) = &self.config {
            if let Some(rejection) = check(config, &req) {
                tracing::debug!(%rejection, "request refused (DNS-rebinding protection)");
                let res = AuthError::InvalidOrigin(rejection)
                    .to_response(&ErrorContext::new(false, false));
                return OriginFuture::denied(res);
            }
        }
        OriginFuture::allowed(self.inner.call(req))
    }
}

fn check<B>(config: &OriginConfig, req: &Request<B>) -> Option<OriginRejection> {
    let headers = req.headers();
    let mut origins = headers.get_all(ORIGIN).iter();
    if let Some(origin) = origins.next() {
        // A second `Origin` is never sent by a browser: refuse rather than pick one.
        if origins.next().is_some() || !config.origin_allowed(origin.as_bytes()) {
            return Some(OriginRejection::Origin);
        }
    }
    let host = match headers.get(HOST) {
        Some(host) => Some(host.as_bytes()),
        None => req.uri().authority().map(|a| a.as_str().as_bytes()),
    };
    (!config.host_allowed(host)).then_some(OriginRejection::Host)
}

impl<S: fmt::Debug> fmt::Debug for OriginService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OriginService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}
