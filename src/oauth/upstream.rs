//! Upstream tokens: [`TokenVault`] keeps one token set per (upstream, user), encrypted with
//! AES-256-GCM in the [`StateStore`]; [`OAuthClient::upstream_token`](super::OAuthClient::upstream_token)
//! refreshes it before expiry, one refresh at a time.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::{StateStore, StoreError};

use super::OAuthConfigError;

const VERSION: u8 = 1;
const AAD_PREFIX: &[u8] = b"tower-mcp-auth/upstream-token/v1\0";

/// A 256-bit key for encrypting upstream tokens at rest.
///
/// ```
/// use tower_mcp_auth::oauth::EncryptionKey;
///
/// let key = EncryptionKey::from_base64("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=").unwrap();
/// assert!(EncryptionKey::from_bytes(b"too short").is_err());
/// assert!(!format!("{key:?}").contains("MDEy"));
/// ```
#[derive(Clone)]
pub struct EncryptionKey {
    key: [u8; 32],
    id: [u8; 4],
}

impl EncryptionKey {
    /// A key from exactly 32 bytes.
    ///
    /// # Errors
    ///
    /// [`OAuthConfigError::InvalidKey`] for any other length.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, OAuthConfigError> {
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| OAuthConfigError::InvalidKey("an encryption key is exactly 32 bytes"))?;
        let digest = Sha256::digest(key);
        Ok(Self {
            key,
            id: [digest[0], digest[1], digest[2], digest[3]],
        })
    }

    /// A key from standard or URL-safe base64 of 32 bytes (for example from an environment
    /// variable: `openssl rand -base64 32`).
    ///
    /// # Errors
    ///
    /// [`OAuthConfigError::InvalidKey`] when it is not base64 of 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, OAuthConfigError> {
        let text = text.trim();
        let bytes = STANDARD
            .decode(text)
            .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
            .map_err(|_| OAuthConfigError::InvalidKey("an encryption key must be base64"))?;
        Self::from_bytes(&bytes)
    }

    /// A random key (for tests and throw-away deployments: tokens encrypted with it cannot be
    /// read after a restart).
    pub fn generate() -> Self {
        Self::from_bytes(&super::random_bytes::<32>()).expect("32 bytes")
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "EncryptionKey(id={:02x}{:02x}{:02x}{:02x})",
            self.id[0], self.id[1], self.id[2], self.id[3]
        )
    }
}

/// An upstream token set. `Debug` shows no token.
///
/// ```
/// use std::time::Duration;
/// use tower_mcp_auth::oauth::UpstreamToken;
///
/// let token = UpstreamToken::new("gho_abc").expires_in(Duration::from_secs(3600));
/// assert_eq!(token.access_token(), "gho_abc");
/// assert!(!format!("{token:?}").contains("gho_abc"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct UpstreamToken {
    access_token: String,
    refresh_token: Option<String>,
    /// Unix seconds.
    expires_at: Option<u64>,
    scopes: Vec<String>,
}

/// The encrypted form's plaintext.
#[derive(Serialize, Deserialize)]
struct Stored {
    a: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    r: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    e: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    s: Vec<String>,
}

impl UpstreamToken {
    /// A token without expiry, refresh token or scopes.
    pub fn new(access_token: impl Into<String>) -> Self {
        Self {
            access_token: access_token.into(),
            refresh_token: None,
            expires_at: None,
            scopes: Vec::new(),
        }
    }

    /// Sets the refresh token.
    pub fn refresh_token(mut self, token: impl Into<String>) -> Self {
        self.refresh_token = Some(token.into());
        self
    }

    /// Expires `after` from now.
    pub fn expires_in(mut self, after: Duration) -> Self {
        self.expires_at = Some(unix_now().saturating_add(after.as_secs()));
        self
    }

    /// Sets the granted scopes.
    pub fn scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> Self {
        self.scopes = super::owned_strings(scopes);
        self
    }

    /// The access token, to send upstream as `Authorization: Bearer`.
    pub fn access_token(&self) -> &str {
        &self.access_token
    }

    /// Whether a refresh token is held.
    pub fn has_refresh_token(&self) -> bool {
        self.refresh_token.is_some()
    }

    /// The refresh token, if one is held.
    pub fn refresh_token_secret(&self) -> Option<&str> {
        self.refresh_token.as_deref()
    }

    /// When the access token expires, if the provider said.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
            .and_then(|s| UNIX_EPOCH.checked_add(Duration::from_secs(s)))
    }

    /// The granted scopes, if the provider said.
    pub fn granted_scopes(&self) -> &[String] {
        &self.scopes
    }

    /// Expired, or expiring within `skew`.
    pub(crate) fn expires_within(&self, skew: Duration) -> bool {
        self.expires_at
            .is_some_and(|at| at <= unix_now().saturating_add(skew.as_secs()))
    }

    pub(crate) fn is_expired(&self) -> bool {
        self.expires_within(Duration::ZERO)
    }

    pub(crate) fn from_parts(
        access_token: String,
        refresh_token: Option<String>,
        expires_in: Option<Duration>,
        scopes: Vec<String>,
    ) -> Self {
        Self {
            access_token,
            refresh_token,
            expires_at: expires_in.map(|d| unix_now().saturating_add(d.as_secs())),
            scopes,
        }
    }
}

impl fmt::Debug for UpstreamToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamToken")
            .field("access_token", &"[redacted]")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("expires_at", &self.expires_at)
            .field("scopes", &self.scopes)
            .finish()
    }
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// Why an upstream token could not be handed out.
///
/// ```
/// use tower_mcp_auth::oauth::UpstreamError;
///
/// let err = UpstreamError::Revoked { upstream: "github-tools".into() };
/// assert!(err.to_string().contains("invalid_grant"));
/// assert_eq!(err.to_response().status(), 403);
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamError {
    /// No upstream with this id is configured.
    #[error("unknown upstream")]
    UnknownUpstream,
    /// The user has not authorized this upstream yet (or the stored token was removed).
    #[error("upstream `{upstream}` is not connected for this user: authorize it first")]
    NotConnected {
        /// The upstream id.
        upstream: String,
    },
    /// The refresh token was refused with `invalid_grant` (revoked, expired, or the user
    /// removed the app). The stored token was deleted.
    #[error("the refresh token for upstream `{upstream}` was revoked or has expired (invalid_grant): the user must authorize again")]
    Revoked {
        /// The upstream id.
        upstream: String,
    },
    /// The access token expired and there is no refresh token.
    #[error("the token for upstream `{upstream}` has expired and cannot be refreshed: the user must authorize again")]
    Expired {
        /// The upstream id.
        upstream: String,
    },
    /// Another instance is refreshing this token and did not finish in time.
    #[error("a refresh of this upstream token is already in progress; retry shortly")]
    RefreshInProgress,
    /// The provider did not answer the refresh in time.
    #[error("the identity provider did not answer in time")]
    ProviderTimeout,
    /// The provider failed in another way.
    #[error("the identity provider failed: {0}")]
    Provider(Cow<'static, str>),
    /// The state store failed.
    #[error("the state store is unavailable")]
    Store(#[source] StoreError),
}

impl UpstreamError {
    /// The HTTP status for this error: 404, 403 (authorize again), 502, 503 or 504.
    pub fn status(&self) -> StatusCode {
        match self {
            UpstreamError::UnknownUpstream => StatusCode::NOT_FOUND,
            UpstreamError::NotConnected { .. }
            | UpstreamError::Revoked { .. }
            | UpstreamError::Expired { .. } => StatusCode::FORBIDDEN,
            UpstreamError::RefreshInProgress | UpstreamError::Store(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            UpstreamError::ProviderTimeout => StatusCode::GATEWAY_TIMEOUT,
            UpstreamError::Provider(_) => StatusCode::BAD_GATEWAY,
        }
    }

    /// The `error` code of the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            UpstreamError::UnknownUpstream => "not_found",
            UpstreamError::NotConnected { .. }
            | UpstreamError::Revoked { .. }
            | UpstreamError::Expired { .. } => "upstream_authorization_required",
            UpstreamError::RefreshInProgress | UpstreamError::Store(_) => "temporarily_unavailable",
            UpstreamError::ProviderTimeout => "provider_timeout",
            UpstreamError::Provider(_) => "provider_error",
        }
    }

    /// A JSON error response (`Cache-Control: no-store`), never a redirect.
    pub fn to_response(&self) -> Response<Full<Bytes>> {
        super::error::json_response(self.status(), self.code(), &self.to_string(), None)
    }
}

impl From<StoreError> for UpstreamError {
    fn from(e: StoreError) -> Self {
        UpstreamError::Store(e)
    }
}

/// Encrypted storage of upstream tokens, one per (upstream, user), in a [`StateStore`].
///
/// Values are AES-256-GCM encrypted with a random 96-bit nonce; the associated data binds
/// each value to its (upstream, user), so a value copied to another user's key does not
/// decrypt. Keys are stored under a hash of (upstream, user). Rotate the key with
/// [`previous_key`](Self::previous_key): new values use the first key, old ones still
/// decrypt.
///
/// ```
/// use std::time::Duration;
/// use tower_mcp_auth::oauth::{EncryptionKey, TokenVault, UpstreamToken};
/// use tower_mcp_auth::store::MemoryStore;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let vault = TokenVault::new(MemoryStore::new(), EncryptionKey::generate());
/// let token = UpstreamToken::new("secret-access").refresh_token("secret-refresh");
/// vault.save("github-tools", "alice", &token).await.unwrap();
/// assert_eq!(vault.load("github-tools", "alice").await.unwrap(), Some(token));
/// assert_eq!(vault.load("github-tools", "bob").await.unwrap(), None);
/// # });
/// ```
#[derive(Clone)]
pub struct TokenVault {
    store: Arc<dyn StateStore>,
    keys: Arc<[EncryptionKey]>,
    prefix: Arc<str>,
    retention: Duration,
}

impl TokenVault {
    /// A vault over `store`, encrypting with `key`.
    pub fn new(store: impl StateStore, key: EncryptionKey) -> Self {
        Self::from_shared(Arc::new(store), key)
    }

    /// A vault over a shared store.
    pub fn from_shared(store: Arc<dyn StateStore>, key: EncryptionKey) -> Self {
        Self {
            store,
            keys: Arc::from(vec![key]),
            prefix: Arc::from("oauth:"),
            retention: Duration::from_secs(30 * 24 * 3600),
        }
    }

    /// Also decrypts values encrypted with `key` (a rotated-out key).
    #[must_use]
    pub fn previous_key(mut self, key: EncryptionKey) -> Self {
        let mut keys = self.keys.to_vec();
        keys.push(key);
        self.keys = keys.into();
        self
    }

    /// Store key prefix (default `oauth:`).
    #[must_use]
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = Arc::from(prefix);
        self
    }

    /// How long a token with a refresh token, or one without expiry, is kept (default 30
    /// days). A token without refresh token is kept until it expires.
    #[must_use]
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention.max(Duration::from_secs(1));
        self
    }

    fn id(upstream: &str, user: &str) -> String {
        let mut h = Sha256::new();
        h.update(upstream.as_bytes());
        h.update([0]);
        h.update(user.as_bytes());
        URL_SAFE_NO_PAD.encode(h.finalize())
    }

    fn key(&self, upstream: &str, user: &str) -> String {
        format!("{}token:{}", self.prefix, Self::id(upstream, user))
    }

    pub(crate) fn lock_key(&self, upstream: &str, user: &str) -> String {
        format!("{}refresh-lock:{}", self.prefix, Self::id(upstream, user))
    }

    pub(crate) fn store(&self) -> &Arc<dyn StateStore> {
        &self.store
    }

    fn aad(upstream: &str, user: &str) -> Vec<u8> {
        let mut aad = AAD_PREFIX.to_vec();
        aad.extend_from_slice(upstream.as_bytes());
        aad.push(0);
        aad.extend_from_slice(user.as_bytes());
        aad
    }

    /// Encrypts and stores `token` for (`upstream`, `user`), replacing any previous one.
    ///
    /// # Errors
    ///
    /// The store's error.
    pub async fn save(
        &self,
        upstream: &str,
        user: &str,
        token: &UpstreamToken,
    ) -> Result<(), StoreError> {
        let plain = serde_json::to_vec(&Stored {
            a: token.access_token.clone(),
            r: token.refresh_token.clone(),
            e: token.expires_at,
            s: token.scopes.clone(),
        })
        .unwrap_or_default();
        let key = &self.keys[0];
        let cipher = Aes256Gcm::new((&key.key).into());
        let nonce = super::random_bytes::<12>();
        let aad = Self::aad(upstream, user);
        let sealed = cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &plain,
                    aad: &aad,
                },
            )
            .map_err(|_| StoreError::InvalidArgument("token encryption failed"))?;
        let mut value = Vec::with_capacity(1 + 4 + 12 + sealed.len());
        value.push(VERSION);
        value.extend_from_slice(&key.id);
        value.extend_from_slice(&nonce);
        value.extend_from_slice(&sealed);
        let ttl = match (&token.refresh_token, token.expires_at) {
            (None, Some(at)) => Duration::from_secs(at.saturating_sub(unix_now()).max(1)),
            _ => self.retention,
        };
        self.store.put(&self.key(upstream, user), value, ttl).await
    }

    /// The token for (`upstream`, `user`), decrypted, as stored (no refresh). A value that
    /// does not decrypt under any configured key is reported as absent (and logged).
    ///
    /// # Errors
    ///
    /// The store's error.
    pub async fn load(
        &self,
        upstream: &str,
        user: &str,
    ) -> Result<Option<UpstreamToken>, StoreError> {
        let Some(value) = self.store.get(&self.key(upstream, user)).await? else {
            return Ok(None);
        };
        let token = self.open(upstream, user, &value);
        if token.is_none() {
            tracing::warn!(
                upstream,
                "a stored upstream token could not be decrypted (was the encryption key changed?)"
            );
        }
        Ok(token)
    }

    fn open(&self, upstream: &str, user: &str, value: &[u8]) -> Option<UpstreamToken> {
        if value.len() < 1 + 4 + 12 + 16 || value[0] != VERSION {
            return None;
        }
        let (id, rest) = value[1..].split_at(4);
        let (nonce, sealed) = rest.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().ok()?;
        let key = self.keys.iter().find(|k| k.id == id)?;
        let cipher = Aes256Gcm::new((&key.key).into());
        let aad = Self::aad(upstream, user);
        let plain = cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .ok()?;
        let stored: Stored = serde_json::from_slice(&plain).ok()?;
        Some(UpstreamToken {
            access_token: stored.a,
            refresh_token: stored.r,
            expires_at: stored.e,
            scopes: stored.s,
        })
    }

    /// Deletes the token for (`upstream`, `user`). Returns whether one was stored.
    ///
    /// # Errors
    ///
    /// The store's error.
    pub async fn remove(&self, upstream: &str, user: &str) -> Result<bool, StoreError> {
        self.store.delete(&self.key(upstream, user)).await
    }
}

impl fmt::Debug for TokenVault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenVault")
            .field("keys", &self.keys)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use crate::test_util::now_or_never;

    #[test]
    fn values_are_encrypted_and_bound_to_their_key() {
        let store = Arc::new(MemoryStore::new());
        let shared: Arc<dyn StateStore> = store.clone();
        let vault = TokenVault::from_shared(shared, EncryptionKey::generate());
        let token = UpstreamToken::new("access-secret").refresh_token("refresh-secret");
        now_or_never(vault.save("up", "alice", &token)).unwrap();
        let raw = now_or_never(store.get(&vault.key("up", "alice")))
            .unwrap()
            .unwrap();
        let text = String::from_utf8_lossy(&raw);
        assert!(!text.contains("secret"), "{text}");
        // Copied to another user's key, the value does not decrypt.
        now_or_never(store.put(&vault.key("up", "mallory"), raw, Duration::from_secs(60))).unwrap();
        assert_eq!(now_or_never(vault.load("up", "mallory")).unwrap(), None);
        assert_eq!(
            now_or_never(vault.load("up", "alice")).unwrap(),
            Some(token)
        );
    }

    #[test]
    fn key_rotation_and_garbage() {
        let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
        let old = EncryptionKey::generate();
        let v1 = TokenVault::from_shared(store.clone(), old.clone());
        now_or_never(v1.save("up", "u", &UpstreamToken::new("t"))).unwrap();
        let v2 = TokenVault::from_shared(store.clone(), EncryptionKey::generate());
        assert_eq!(now_or_never(v2.load("up", "u")).unwrap(), None);
        let v3 = v2.clone().previous_key(old);
        assert!(now_or_never(v3.load("up", "u")).unwrap().is_some());
        for junk in [&b""[..], b"\x01", &[1u8; 40], &[2u8; 64]] {
            now_or_never(store.put(&v3.key("up", "j"), junk.to_vec(), Duration::from_secs(9)))
                .unwrap();
            assert_eq!(now_or_never(v3.load("up", "j")).unwrap(), None);
        }
        assert!(EncryptionKey::from_base64("not base64!").is_err());
        assert!(EncryptionKey::from_base64(&STANDARD.encode([1u8; 31])).is_err());
        assert!(EncryptionKey::from_base64(&URL_SAFE_NO_PAD.encode([1u8; 32])).is_ok());
    }

    #[test]
    fn expiry() {
        let t = UpstreamToken::new("a").expires_in(Duration::from_secs(30));
        assert!(!t.is_expired());
        assert!(t.expires_within(Duration::from_secs(60)));
        assert!(!UpstreamToken::new("a").expires_within(Duration::from_secs(60)));
    }
}
