//! [`ApiKeyService`].

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use http::Request;
use tower_service::Service;

use crate::authenticate::authenticate;
use crate::credentials::{self, Parse, Parsed, Presented, Want};
use crate::error::CredentialRejection;
use crate::outcome::ApiKeyOutcome;

use super::future::ApiKeyFuture;
use super::keygen::generated_checksum_ok;
use super::layer::ApiKeyConfig;
use super::registry::{KeyLookupError, StoredKey};

/// Service produced by [`ApiKeyLayer`](super::ApiKeyLayer).
#[derive(Clone)]
pub struct ApiKeyService<S> {
    inner: S,
    config: Arc<ApiKeyConfig>,
}

impl<S> ApiKeyService<S> {
    pub(crate) fn new(inner: S, config: Arc<ApiKeyConfig>) -> Self {
        Self { inner, config }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, ReqBody> Service<Request<ReqBody>> for ApiKeyService<S>
where
    S: Service<Request<ReqBody>> + Clone,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ApiKeyFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let Some(store) = &self.config.store else {
            return ApiKeyFuture::calling(self.inner.call(req));
        };
        let presented = match self.config.parse {
            // Standalone or without a lockout: this layer is the only reader of the key.
            Parse::Own => {
                let query = self.config.sources.query_param_enabled();
                credentials::api_key(req.headers(), req.uri(), query)
            }
            mode => Parsed::get(&mut req, &self.config.sources, mode, Want::ApiKey)
                .api_key(req.headers(), req.uri()),
        };
        let lookup = match presented {
            Presented::Absent => return ApiKeyFuture::calling(self.inner.call(req)),
            Presented::Malformed => None,
            // A generated key with a wrong checksum is a typo: reject it without a lookup.
            Presented::Value(key) => match generated_checksum_ok(&key) {
                Some(false) => None,
                _ => Some(store.find_key(&key)),
            },
        };
        let Some(lookup) = lookup else {
            tracing::debug!(reason = "malformed", "API key rejected");
            req.extensions_mut()
                .insert(ApiKeyOutcome::Rejected(CredentialRejection::Malformed));
            return ApiKeyFuture::calling(self.inner.call(req));
        };
        authenticate(&mut self.inner, req, lookup, key_outcome)
    }
}

fn key_outcome(found: Result<Option<StoredKey>, KeyLookupError>) -> ApiKeyOutcome {
    match found {
        Ok(Some(key)) if key.revoked => rejected(CredentialRejection::Revoked, &key),
        Ok(Some(key)) if key.expires_at.is_some_and(|at| at <= SystemTime::now()) => {
            rejected(CredentialRejection::Expired, &key)
        }
        Ok(Some(key)) => ApiKeyOutcome::Verified(key.identity),
        Ok(None) => {
            tracing::debug!(reason = "unknown", "API key rejected");
            ApiKeyOutcome::Rejected(CredentialRejection::Unknown)
        }
        Err(e) => {
            tracing::warn!(error = %e, "API key store unavailable");
            ApiKeyOutcome::Unavailable
        }
    }
}

fn rejected(reason: CredentialRejection, key: &StoredKey) -> ApiKeyOutcome {
    tracing::debug!(key_name = key.identity.name(), %reason, "API key rejected");
    ApiKeyOutcome::Rejected(reason)
}

impl<S: fmt::Debug> fmt::Debug for ApiKeyService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyService")
            .field("inner", &self.inner)
            .field("credential_sources", &self.config.sources)
            .finish_non_exhaustive()
    }
}
