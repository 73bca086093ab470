//! What the authorization server keeps in the [`StateStore`]: clients, pending
//! authorizations, consent tickets, codes, refresh tokens (by hash only) and their families,
//! remembered consents. Every instance sharing the store serves every flow.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::errors::ServerError;
use crate::store::StateStore;

/// A registered client.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ClientRecord {
    pub(crate) client_id: String,
    /// SHA-256 of the secret, for confidential clients.
    #[serde(default)]
    pub(crate) secret_hash: Option<String>,
    pub(crate) redirect_uris: Vec<String>,
    #[serde(default)]
    pub(crate) name: Option<String>,
    /// `authorization_code` and/or `refresh_token`.
    #[serde(default = "both_grants")]
    pub(crate) grant_types: Vec<String>,
}

pub(crate) fn both_grants() -> Vec<String> {
    vec!["authorization_code".to_owned(), "refresh_token".to_owned()]
}

/// An authorization request waiting for the upstream login.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Pending {
    pub(crate) client_id: String,
    pub(crate) client_name: Option<String>,
    pub(crate) redirect_uri: String,
    pub(crate) challenge: String,
    pub(crate) state: Option<String>,
    pub(crate) scope: String,
}

/// A pending authorization after login, waiting for the person's decision.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Ticket {
    pub(crate) request: Pending,
    pub(crate) sub: String,
    /// SHA-256 of the anti-CSRF token in the form and cookie.
    pub(crate) csrf_hash: String,
}

/// An issued authorization code (stored under its hash).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Code {
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) challenge: String,
    pub(crate) scope: String,
    pub(crate) sub: String,
}

/// A live refresh token (stored under its hash).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Refresh {
    pub(crate) family: String,
    pub(crate) client_id: String,
    pub(crate) scope: String,
    pub(crate) sub: String,
}

/// base64url(SHA-256(s)): how secrets are keyed and kept.
pub(crate) fn hash(s: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(s.as_bytes()))
}

/// A fresh 256-bit random token.
pub(crate) fn token() -> String {
    URL_SAFE_NO_PAD.encode(crate::oauth::random_bytes::<32>())
}

/// The store with this server's key prefix and JSON records.
#[derive(Clone)]
pub(crate) struct Records {
    pub(crate) store: Arc<dyn StateStore>,
    pub(crate) prefix: String,
}

impl Records {
    fn key(&self, kind: &str, id: &str) -> String {
        format!("{}{kind}:{id}", self.prefix)
    }

    pub(crate) async fn put<T: Serialize>(
        &self,
        kind: &str,
        id: &str,
        value: &T,
        ttl: Duration,
    ) -> Result<(), ServerError> {
        let bytes = serde_json::to_vec(value).unwrap_or_default();
        Ok(self.store.put(&self.key(kind, id), bytes, ttl).await?)
    }

    /// Stores unless present; `false` when something was there.
    pub(crate) async fn insert<T: Serialize>(
        &self,
        kind: &str,
        id: &str,
        value: &T,
        ttl: Duration,
    ) -> Result<bool, ServerError> {
        let bytes = serde_json::to_vec(value).unwrap_or_default();
        Ok(self
            .store
            .insert_if_absent(&self.key(kind, id), bytes, ttl)
            .await?)
    }

    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        kind: &str,
        id: &str,
    ) -> Result<Option<T>, ServerError> {
        let raw = self.store.get(&self.key(kind, id)).await?;
        Ok(raw.and_then(|r| serde_json::from_slice(&r).ok()))
    }

    /// Removes and returns, atomically: of concurrent callers at most one gets it.
    pub(crate) async fn take<T: DeserializeOwned>(
        &self,
        kind: &str,
        id: &str,
    ) -> Result<Option<T>, ServerError> {
        let raw = self.store.take(&self.key(kind, id)).await?;
        Ok(raw.and_then(|r| serde_json::from_slice(&r).ok()))
    }

    pub(crate) async fn delete(&self, kind: &str, id: &str) -> Result<(), ServerError> {
        self.store.delete(&self.key(kind, id)).await?;
        Ok(())
    }
}
