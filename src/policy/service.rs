//! [`EndpointPolicyService`].

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use crate::body::ResponseBody;
use crate::error::{AuthError, ErrorContext};

use super::canonical;
use super::decide::decide;
use super::decision::Decision;
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

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let config = &*self.config;
        let (mut parts, body) = req.into_parts();
        // Refused before any policy: which endpoint the path names depends on the decoder.
        let decoded = match canonical::record(&mut parts) {
            Ok(decoded) => decoded,
            Err(reason) => {
                tracing::debug!(path = parts.uri.path(), %reason, "malformed request path");
                let error = AuthError::MalformedPath(reason);
                return PolicyFuture::denied(error.to_response(&ErrorContext::new(false, false)));
            }
        };
        let path = match decoded {
            true => canonical::recorded(&parts),
            false => parts.uri.path(),
        };
        let applied = config.select(path, &parts);
        let decision = Decision::new(self.config.clone(), applied);

        match decide(decision.policy(), &mut parts.extensions) {
            Ok(identity) => {
                if let Some(identity) = identity {
                    parts.extensions.insert(identity);
                }
                // Later layers read the decision instead of resolving the policy again.
                if config.record_decision {
                    parts.extensions.insert(decision);
                }
                PolicyFuture::allowed(self.inner.call(Request::from_parts(parts, body)))
            }
            Err((error, method)) => {
                tracing::debug!(
                    path = parts.uri.path(),
                    error = error.code(),
                    method = method.map(|m| m.as_str()),
                    "request denied"
                );
                let ctx = decision.error_context(&parts);
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
