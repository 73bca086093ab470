//! [`EndpointPolicyService`].

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use crate::body::ResponseBody;

use super::decide::decide;
use super::endpoint::EndpointPolicy;
use super::future::PolicyFuture;
use super::layer::PolicyConfig;

/// Service produced by [`EndpointPolicyLayer`](super::EndpointPolicyLayer).
#[derive(Clone)]
pub struct EndpointPolicyService<S> {
    inner: S,
    config: Arc<PolicyConfig>,
}

impl<S> EndpointPolicyService<S> {
    pub(crate) fn new(inner: S, config: Arc<PolicyConfig>) -> Self {
        Self { inner, config }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for EndpointPolicyService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = PolicyFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let config = &*self.config;
        let policy: Cow<'_, EndpointPolicy> = match config
            .routes
            .iter()
            .find(|(pattern, _)| pattern.matches(req.uri().path()))
        {
            Some((_, policy)) => Cow::Borrowed(policy),
            None => match &config.resolver {
                Some(resolver) => {
                    let (parts, body) = req.into_parts();
                    let resolved = resolver(&parts);
                    req = Request::from_parts(parts, body);
                    resolved.map_or(Cow::Borrowed(&config.default), Cow::Owned)
                }
                None => Cow::Borrowed(&config.default),
            },
        };

        match decide(&policy, req.extensions_mut()) {
            Ok(Some(identity)) => {
                req.extensions_mut().insert(identity);
                PolicyFuture::allowed(self.inner.call(req))
            }
            Ok(None) => PolicyFuture::allowed(self.inner.call(req)),
            Err((error, method)) => {
                tracing::debug!(
                    path = req.uri().path(),
                    error = error.code(),
                    method = method.map(|m| m.as_str()),
                    "request denied"
                );
                let ctx = config.error_context(&policy, req.uri(), req.headers());
                PolicyFuture::denied(error.to_response_for(&ctx, method))
            }
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for EndpointPolicyService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointPolicyService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}
