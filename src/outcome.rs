//! What the authenticators leave in the request extensions for the policy layer.

use crate::error::{CredentialRejection, TokenRejection};
use crate::identity::Identity;

/// The result of checking one presented credential.
///
/// Authenticators ([`ApiKeyLayer`](crate::api_key::ApiKeyLayer), [`BearerLayer`](crate::bearer::BearerLayer))
/// only *identify*: when a credential of their kind is present they verify it and insert the
/// outcome into the request extensions; when none is present they insert nothing.
/// [`EndpointPolicyLayer`](crate::policy::EndpointPolicyLayer) then *decides*.
///
/// ```
/// use tower_mcp_auth::{api_key::ApiKeyOutcome, CredentialRejection};
///
/// let outcome: ApiKeyOutcome = ApiKeyOutcome::Rejected(CredentialRejection::Expired);
/// assert!(outcome.identity().is_none());
/// ```
#[derive(Clone, Debug)]
pub enum CredentialOutcome<R> {
    /// The credential is valid and belongs to this identity.
    Verified(Identity),
    /// The credential was presented but is not valid.
    Rejected(R),
    /// The credential could not be checked: the key store or identity provider is down.
    Unavailable,
}

impl<R> CredentialOutcome<R> {
    /// The identity, when verified.
    pub fn identity(&self) -> Option<&Identity> {
        match self {
            CredentialOutcome::Verified(id) => Some(id),
            _ => None,
        }
    }
}

/// Outcome of the API key check (inserted by [`ApiKeyLayer`](crate::api_key::ApiKeyLayer)).
pub type ApiKeyOutcome = CredentialOutcome<CredentialRejection>;

/// Outcome of the bearer token check (inserted by [`BearerLayer`](crate::bearer::BearerLayer)).
pub type BearerOutcome = CredentialOutcome<TokenRejection>;
