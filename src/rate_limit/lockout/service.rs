//! [`FailedAuthLimitService`].

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use crate::body::ResponseBody;
use crate::credentials::{self, Parse, Parsed, Want};

use super::super::gate::Gate;
use super::future::{FailedAuthLimitFuture, Tally};
use super::layer::LockoutConfig;

/// Service produced by [`FailedAuthLimitLayer`](super::FailedAuthLimitLayer).
#[derive(Clone)]
pub struct FailedAuthLimitService<S> {
    inner: S,
    config: Option<Arc<LockoutConfig>>,
}

impl<S> FailedAuthLimitService<S> {
    pub(super) fn new(inner: S, config: Option<Arc<LockoutConfig>>) -> Self {
        Self { inner, config }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: fmt::Debug> fmt::Debug for FailedAuthLimitService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailedAuthLimitService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for FailedAuthLimitService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = FailedAuthLimitFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let Some(config) = self.config.as_deref() else {
            return FailedAuthLimitFuture::unlimited(self.inner.call(req));
        };
        // Without a credential nothing can fail as "invalid": never counted, never locked.
        // A session cookie counts only when one is well-formed: a browser cannot be rid of a
        // garbage cookie planted by a sibling subdomain, so it must not lock its user out.
        let presented = match config.parse {
            // Presence is all the lockout needs; the authenticators validate what they read.
            Parse::Own => credentials::any_presented(req.headers(), req.uri(), &config.sources),
            // The record the layers inside reuse (parsed once for all of them).
            mode => Parsed::get(&mut req, &config.sources, mode, Want::All).any_presented(),
        };
        if !presented {
            return FailedAuthLimitFuture::unlimited(self.inner.call(req));
        }
        let Some(ip) = config.resolver.resolve(req.headers(), req.extensions()) else {
            warn_no_client_addr();
            return FailedAuthLimitFuture::unlimited(self.inner.call(req));
        };
        let tally = Tally {
            store: config.store.clone(),
            key: config.resolver.store_key("fa:ip:", ip),
            quota: config.quota,
        };
        // Reserve one failure before the call (atomic check-and-consume), refunded once the
        // response shows it did not count: concurrent guesses cannot all pass one peek.
        let reserve = config.store.gcra(&tally.key, tally.quota, 1);
        let gate = Gate::start(reserve, req, &mut self.inner, config.fail_mode);
        FailedAuthLimitFuture::gated(gate, tally)
    }
}

/// A lockout without client addresses protects nothing: say so once, loudly.
fn warn_no_client_addr() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        tracing::warn!(
            "FailedAuthLimitLayer sees no client address: serve axum with \
             into_make_service_with_connect_info and the `axum` feature, or insert \
             tower_mcp_auth::rate_limit::ClientAddr into request extensions; requests are not limited"
        );
    });
}
