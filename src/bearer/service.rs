//! [`BearerService`].

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Request;
use tower_service::Service;

use crate::authenticate::authenticate;
use crate::credentials::{self, Presented};
use crate::error::TokenRejection;
use crate::identity::Identity;
use crate::outcome::BearerOutcome;

use super::future::BearerFuture;
use super::verifier::{TokenError, TokenVerifier};

/// Service produced by [`BearerLayer`](super::BearerLayer).
#[derive(Clone)]
pub struct BearerService<S> {
    inner: S,
    verifier: Option<Arc<dyn TokenVerifier>>,
    cookie: Option<Arc<str>>,
}

impl<S> BearerService<S> {
    pub(crate) fn new(
        inner: S,
        verifier: Option<Arc<dyn TokenVerifier>>,
        cookie: Option<Arc<str>>,
    ) -> Self {
        Self {
            inner,
            verifier,
            cookie,
        }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, ReqBody> Service<Request<ReqBody>> for BearerService<S>
where
    S: Service<Request<ReqBody>> + Clone,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BearerFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let Some(verifier) = &self.verifier else {
            return BearerFuture::calling(self.inner.call(req));
        };
        let presented = match (credentials::bearer(req.headers()), &self.cookie) {
            (Presented::Absent, Some(name)) => credentials::cookie(req.headers(), name),
            (presented, _) => presented,
        };
        let lookup = match presented {
            Presented::Absent => return BearerFuture::calling(self.inner.call(req)),
            Presented::Value(token) => verifier.verify(&token),
            Presented::Malformed => {
                tracing::debug!(reason = %TokenRejection::Malformed, "bearer token rejected");
                req.extensions_mut()
                    .insert(BearerOutcome::Rejected(TokenRejection::Malformed));
                return BearerFuture::calling(self.inner.call(req));
            }
        };
        authenticate(&mut self.inner, req, lookup, token_outcome)
    }
}

fn token_outcome(verified: Result<Identity, TokenError>) -> BearerOutcome {
    match verified {
        Ok(identity) => BearerOutcome::Verified(identity),
        Err(TokenError::Rejected(reason)) => {
            tracing::debug!(%reason, "bearer token rejected");
            BearerOutcome::Rejected(reason)
        }
        Err(TokenError::Unavailable(message)) => {
            tracing::warn!(%message, "token verifier unavailable");
            BearerOutcome::Unavailable
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for BearerService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}
