//! [`RevocationVerifier`].

use std::fmt;
use std::sync::Arc;

use crate::bearer::verifier::{TokenError, TokenVerifier};
use crate::deferred::Deferred;
use crate::error::TokenRejection;
use crate::identity::Identity;

use super::revocations::Revocations;

/// A [`TokenVerifier`] that refuses revoked tokens; made by [`Revocations::verifier`].
///
/// The inner verifier runs first (a cache hit included); an identity it accepts is then
/// checked against the local revocation snapshot: [`TokenRejection::Revoked`] if listed.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::sync::Arc;
/// use tower_mcp_auth::{bearer::Revocations, store::MemoryStore, JwtVerifier, TokenVerifier};
/// let revocations = Revocations::builder(Arc::new(MemoryStore::new())).start().await?;
/// let jwt = JwtVerifier::hs256(b"an-hs256-secret-that-is-32-bytes+").build().unwrap();
/// let verifier = revocations.verifier(jwt);
/// assert!(verifier.verify("not-a-token").await.is_err());
/// # Ok::<(), tower_mcp_auth::store::StoreError>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct RevocationVerifier {
    inner: Arc<dyn TokenVerifier>,
    revocations: Revocations,
}

impl RevocationVerifier {
    pub(super) fn new(inner: Arc<dyn TokenVerifier>, revocations: Revocations) -> Self {
        Self { inner, revocations }
    }
}

fn check(
    revocations: &Revocations,
    verified: Result<Identity, TokenError>,
) -> Result<Identity, TokenError> {
    match verified {
        Ok(identity) if revocations.revokes(&identity) => {
            Err(TokenError::Rejected(TokenRejection::Revoked))
        }
        other => other,
    }
}

impl TokenVerifier for RevocationVerifier {
    fn verify(&self, token: &str) -> Deferred<Result<Identity, TokenError>> {
        match self.inner.verify(token).try_into_ready() {
            Ok(verified) => Deferred::ready(check(&self.revocations, verified)),
            Err(pending) => {
                let revocations = self.revocations.clone();
                Deferred::boxed(async move { check(&revocations, pending.await) })
            }
        }
    }

    /// A hit of the inner cache, unless revoked (then `verify` gives the rejection).
    fn cached(&self, token: &[u8]) -> Option<Identity> {
        let identity = self.inner.cached(token)?;
        (!self.revocations.revokes(&identity)).then_some(identity)
    }
}

impl fmt::Debug for RevocationVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevocationVerifier")
            .field("revocations", &self.revocations)
            .finish_non_exhaustive()
    }
}
