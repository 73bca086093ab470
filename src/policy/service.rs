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
use super::decision::{Applied, Decision};
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

    #[inline]
    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let config = &*self.config;
        // Refused before any policy: which endpoint the path names depends on the decoder.
        let decoded = match canonical::record(&mut req) {
            Ok(decoded) => decoded,
            Err(reason) => {
                tracing::debug!(path = req.uri().path(), %reason, "malformed request path");
                let error = AuthError::MalformedPath(reason);
                return PolicyFuture::denied(error.to_response(&ErrorContext::new(false, false)));
            }
        };
        let route = config.route(match decoded {
            true => canonical::recorded(req.uri(), req.extensions()),
            false => req.uri().path(),
        });
        let applied = match route {
            Some(i) => Applied::Route(i),
            None if config.resolver.is_some() => {
                // Only a resolver needs the request as `Parts`: taking it apart and putting
                // it back together costs two copies of the request head.
                let (parts, body) = req.into_parts();
                let applied = config.resolve(&parts);
                req = Request::from_parts(parts, body);
                applied
            }
            None => Applied::Default,
        };
        // Looked up once for both writes: one extension lookup per request when not audited.
        let audit = crate::audit::record::find(req.extensions());
        // A shareable `Decision` holds the configuration by reference count: made only when
        // the audit trail or a later layer keeps it, not on every request.
        let kept = (audit.is_some() || config.record_decision)
            .then(|| Decision::new(self.config.clone(), applied.clone()));
        if let (Some(record), Some(decision)) = (&audit, &kept) {
            crate::audit::record::policy_applied(record, req.extensions(), decision);
        }

        match decide(applied.policy(config), req.extensions_mut()) {
            Ok(identity) => {
                if let Some(record) = &audit {
                    crate::audit::record::policy_allowed(record, identity.as_ref());
                }
                if let Some(identity) = identity {
                    req.extensions_mut().insert(identity);
                }
                // Later layers read the decision instead of resolving the policy again.
                if let Some(decision) = kept.filter(|_| config.record_decision) {
                    req.extensions_mut().insert(decision);
                }
                PolicyFuture::allowed(self.inner.call(req))
            }
            Err((error, method)) => {
                tracing::debug!(
                    path = req.uri().path(),
                    error = error.code(),
                    method = method.map(|m| m.as_str()),
                    "request denied"
                );
                let ctx = config.error_context(applied.policy(config), req.uri(), req.headers());
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
