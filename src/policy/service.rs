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
        if let Err(reason) = canonical::record(&mut parts) {
            tracing::debug!(path = parts.uri.path(), %reason, "malformed request path");
            let error = AuthError::MalformedPath(reason);
            return PolicyFuture::denied(error.to_response(&ErrorContext::new(false, false)));
        }
        let applied = config.select(canonical::recorded(&parts), &parts);
        let decision = Decision::new(self.config.clone(), applied);
        crate::audit::record::policy_applied(&parts.extensions, &decision);

        match decide(decision.policy(), &mut parts.extensions) {
            Ok(identity) => {
                crate::audit::record::policy_allowed(&parts.extensions, identity.as_ref());
                if let Some(identity) = identity {
                    parts.extensions.insert(identity);
                }
                // Later layers read the decision instead of resolving the policy again.
                parts.extensions.insert(decision);
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
