//! [`BearerService`].

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Request;
use tower_service::Service;

use crate::authenticate::authenticate;
use crate::credentials::{self, CredentialSources, Parse, Parsed, Presented, Want};
use crate::deferred::Deferred;
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
    sources: CredentialSources,
    parse: Parse,
}

impl<S> BearerService<S> {
    pub(crate) fn new(
        inner: S,
        verifier: Option<Arc<dyn TokenVerifier>>,
        sources: CredentialSources,
        parse: Parse,
    ) -> Self {
        Self {
            inner,
            verifier,
            sources,
            parse,
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

    #[inline]
    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let Some(verifier) = &self.verifier else {
            return BearerFuture::calling(self.inner.call(req));
        };
        let cookie = self.sources.session_cookie_name().is_some();
        // Standalone (or without a lockout) and no cookie: the header is read directly.
        let parsed = match (self.parse, cookie) {
            (Parse::Own, false) => None,
            (mode, _) => Some(Parsed::get(&mut req, &self.sources, mode, Want::Bearer)),
        };
        let token = match &parsed {
            None => match credentials::bearer_raw(req.headers()) {
                Ok(Some(raw)) => {
                    // A cache hit first: those bytes were checked when they were verified,
                    // so only a miss pays for the pass over the token's every byte.
                    if let Some(identity) = verifier.cached(raw) {
                        let lookup = Deferred::ready(Ok(identity));
                        return authenticate(&mut self.inner, req, lookup, token_outcome);
                    }
                    credentials::checked_bearer(raw)
                }
                Ok(None) => Presented::Absent,
                Err(()) => Presented::Malformed,
            },
            Some(parsed) => parsed.bearer(req.headers()),
        };
        let lookup = match (token, parsed) {
            (Presented::Value(token), _) => verifier.verify(&token),
            (Presented::Malformed, _) => return self.malformed(req),
            (Presented::Absent, Some(parsed)) if cookie => {
                let found = parsed.cookies(req.headers());
                match found.candidates() {
                    [] if found.only_malformed() => return self.malformed(req),
                    [] => return BearerFuture::calling(self.inner.call(req)),
                    [token] => verifier.verify(token),
                    several => first_verified(verifier, several),
                }
            }
            (Presented::Absent, _) => return BearerFuture::calling(self.inner.call(req)),
        };
        authenticate(&mut self.inner, req, lookup, token_outcome)
    }
}

impl<S> BearerService<S> {
    fn malformed<ReqBody>(&mut self, mut req: Request<ReqBody>) -> BearerFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        tracing::debug!(reason = %TokenRejection::Malformed, "bearer token rejected");
        req.extensions_mut()
            .insert(BearerOutcome::Rejected(TokenRejection::Malformed));
        BearerFuture::calling(self.inner.call(req))
    }
}

/// Several session cookies of one name (one may have been planted by a sibling subdomain):
/// the first that verifies wins. Otherwise the verifier's "unavailable" if any candidate got
/// it (the good one may be among them), else the first rejection. Only this rare path
/// allocates, and only when the verifier answers asynchronously.
fn first_verified(
    verifier: &Arc<dyn TokenVerifier>,
    tokens: &[&str],
) -> Deferred<Result<Identity, TokenError>> {
    let mut failure: Option<TokenError> = None;
    for (i, token) in tokens.iter().enumerate() {
        match verifier.verify(token).try_into_ready() {
            Ok(Ok(identity)) => return Deferred::ready(Ok(identity)),
            Ok(Err(e)) => keep_failure(&mut failure, e),
            Err(pending) => {
                let rest: Vec<String> = tokens[i + 1..].iter().map(|t| (*t).to_owned()).collect();
                let verifier = Arc::clone(verifier);
                return Deferred::boxed(async move {
                    match pending.await {
                        Ok(identity) => return Ok(identity),
                        Err(e) => keep_failure(&mut failure, e),
                    }
                    for token in rest {
                        match verifier.verify(&token).await {
                            Ok(identity) => return Ok(identity),
                            Err(e) => keep_failure(&mut failure, e),
                        }
                    }
                    Err(failure.unwrap_or(TokenError::Rejected(TokenRejection::Malformed)))
                });
            }
        }
    }
    Deferred::ready(Err(
        failure.unwrap_or(TokenError::Rejected(TokenRejection::Malformed))
    ))
}

fn keep_failure(kept: &mut Option<TokenError>, e: TokenError) {
    match (&*kept, e) {
        (None, e) | (Some(TokenError::Rejected(_)), e @ TokenError::Unavailable(_)) => {
            *kept = Some(e);
        }
        _ => {}
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
