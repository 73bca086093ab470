//! Where API keys live: the [`KeyLookup`] trait and the in-memory [`ApiKeyRegistry`].

use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::deferred::Deferred;
use crate::identity::{AuthMethod, Identity};
use crate::keyed_tag::KeyedTag;
use crate::prehashed::PassThrough;

use super::verified::VerifiedKeys;

/// Name of the environment variable [`ApiKeyRegistry::from_env`] reads.
pub const MCP_API_KEYS_ENV: &str = "MCP_API_KEYS";

/// SHA-256 of an API key: the only form in which keys are stored.
///
/// Equality is constant time ([`subtle`]), so comparing a presented key's hash with a stored
/// one reveals nothing through timing. `Debug` shows only a short prefix.
///
/// ```
/// use tower_mcp_auth::api_key::KeyHash;
///
/// let h = KeyHash::of("secret");
/// assert_eq!(h, KeyHash::from_hex(&h.to_hex()).unwrap());
/// ```
#[derive(Clone, Copy)]
pub struct KeyHash([u8; 32]);

impl KeyHash {
    /// Hashes a plaintext key.
    pub fn of(key: &str) -> Self {
        KeyHash(Sha256::digest(key.as_bytes()).into())
    }

    /// Wraps raw hash bytes (for example read from a database).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        KeyHash(bytes)
    }

    /// Parses 64 hexadecimal characters.
    pub fn from_hex(hex: &str) -> Option<Self> {
        let hex = hex.as_bytes();
        if hex.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in hex.chunks_exact(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            out[i] = (hi * 16 + lo) as u8;
        }
        Some(KeyHash(out))
    }

    /// Lower-case hexadecimal form.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl PartialEq for KeyHash {
    fn eq(&self, other: &Self) -> bool {
        // Constant time, a word at a time: OR the XOR of the four 64-bit words, then one
        // `subtle` comparison with zero (no data-dependent branch anywhere).
        let mut diff = 0u64;
        for (a, b) in self.0.chunks_exact(8).zip(other.0.chunks_exact(8)) {
            let a = u64::from_le_bytes(a.try_into().expect("8-byte chunk"));
            let b = u64::from_le_bytes(b.try_into().expect("8-byte chunk"));
            diff |= a ^ b;
        }
        diff.ct_eq(&0).into()
    }
}

impl Eq for KeyHash {}

impl Hash for KeyHash {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The value is already a uniform cryptographic hash: its first 8 bytes are a perfect
        // bucket index, and an attacker cannot steer them without breaking SHA-256.
        let mut word = [0u8; 8];
        word.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(word));
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyHash({}…)", &self.to_hex()[..12])
    }
}

/// A stored key: who it identifies and whether it is still usable.
#[derive(Clone, Debug)]
pub struct StoredKey {
    /// The identity a request with this key gets.
    pub identity: Identity,
    /// When the key stops working.
    pub expires_at: Option<SystemTime>,
    /// Revoked keys are rejected as `invalid_credentials`.
    pub revoked: bool,
}

/// A key store failed (database down, timeout). Requests get 503 `temporarily_unavailable`.
#[derive(Debug, thiserror::Error)]
#[error("key store unavailable: {0}")]
pub struct KeyLookupError(pub String);

/// Where [`ApiKeyLayer`](crate::api_key::ApiKeyLayer) looks keys up, by hash.
///
/// Implementations that answer from memory return [`Deferred::ready`] (no allocation);
/// database-backed ones return [`Deferred::boxed`], ideally after a small local cache.
///
/// ```
/// use tower_mcp_auth::{Deferred, api_key::{KeyHash, KeyLookup, KeyLookupError, StoredKey}};
///
/// /// Accepts no key at all (for example while a database is being migrated).
/// struct NoKeys;
///
/// impl KeyLookup for NoKeys {
///     fn find(&self, _hash: &KeyHash) -> Deferred<Result<Option<StoredKey>, KeyLookupError>> {
///         Deferred::ready(Ok(None))
///     }
/// }
/// ```
pub trait KeyLookup: Send + Sync + 'static {
    /// Finds the key with this hash, `Ok(None)` if there is none.
    fn find(&self, hash: &KeyHash) -> Deferred<Result<Option<StoredKey>, KeyLookupError>>;

    /// Finds the key a request presented, in plaintext. This is what
    /// [`ApiKeyLayer`](crate::api_key::ApiKeyLayer) calls; the default hashes the key and
    /// calls [`find`](Self::find). [`ApiKeyRegistry`] answers a key it has seen before from
    /// its verified-key cache instead, without hashing it again. An implementation must not
    /// keep `presented` (nor log it): only its hash may be stored.
    ///
    /// ```
    /// use tower_mcp_auth::{ApiKeyRegistry, ApiKeySpec, api_key::KeyLookup};
    ///
    /// let registry = ApiKeyRegistry::builder().key("k-123", ApiKeySpec::new("ci")).build();
    /// let found = registry.find_key("k-123").try_into_ready().ok().unwrap().unwrap();
    /// assert_eq!(found.unwrap().identity.name(), "ci");
    /// ```
    fn find_key(&self, presented: &str) -> Deferred<Result<Option<StoredKey>, KeyLookupError>> {
        self.find(&KeyHash::of(presented))
    }
}

impl<T: KeyLookup + ?Sized> KeyLookup for Arc<T> {
    fn find(&self, hash: &KeyHash) -> Deferred<Result<Option<StoredKey>, KeyLookupError>> {
        (**self).find(hash)
    }

    fn find_key(&self, presented: &str) -> Deferred<Result<Option<StoredKey>, KeyLookupError>> {
        (**self).find_key(presented)
    }
}

/// One key's description, as in `MCP_API_KEYS`:
/// `{"name", "userId"?, "role"?, "permissions"?, "expiresAt"?}`.
///
/// `userId` absent makes a *public* key, which cannot use private endpoints. `expiresAt` is
/// an RFC 3339 date-time or Unix seconds.
///
/// ```
/// use tower_mcp_auth::ApiKeySpec;
///
/// let spec = ApiKeySpec::new("ChatGPT Connector").user_id("connector-user").permissions(["*"]);
/// assert_eq!(spec.name, "ChatGPT Connector");
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ApiKeySpec {
    /// Human-readable name (shown in logs instead of the key).
    pub name: String,
    /// Owning user; absent for public keys.
    #[serde(default)]
    pub user_id: Option<String>,
    /// Role.
    #[serde(default)]
    pub role: Option<String>,
    /// Permissions (`*` grants all).
    #[serde(default)]
    pub permissions: Vec<String>,
    /// Expiry.
    #[serde(default, deserialize_with = "de_expiry")]
    pub expires_at: Option<SystemTime>,
}

impl ApiKeySpec {
    /// A public key called `name` with no permissions.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            user_id: None,
            role: None,
            permissions: Vec::new(),
            expires_at: None,
        }
    }

    /// Makes the key private to a user.
    pub fn user_id(mut self, user_id: impl Into<String>) -> Self {
        self.user_id = Some(user_id.into());
        self
    }

    /// Sets the role.
    pub fn role(mut self, role: impl Into<String>) -> Self {
        self.role = Some(role.into());
        self
    }

    /// Sets the permissions.
    pub fn permissions<I, P>(mut self, permissions: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<String>,
    {
        self.permissions = permissions.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the expiry.
    pub fn expires_at(mut self, at: SystemTime) -> Self {
        self.expires_at = Some(at);
        self
    }

    fn into_stored(self) -> StoredKey {
        let mut b = Identity::builder(AuthMethod::ApiKey, self.name).permissions(self.permissions);
        if let Some(u) = self.user_id {
            b = b.user_id(u);
        }
        if let Some(r) = self.role {
            b = b.role(r);
        }
        if let Some(at) = self.expires_at {
            b = b.expires_at(at);
        }
        StoredKey {
            identity: b.build(),
            expires_at: self.expires_at,
            revoked: false,
        }
    }
}

/// The registry entry for a spec (not revoked).
///
/// ```
/// use tower_mcp_auth::{ApiKeySpec, api_key::StoredKey};
///
/// let key: StoredKey = ApiKeySpec::new("ci").user_id("alice").into();
/// assert_eq!(key.identity.user_id(), Some("alice"));
/// assert!(!key.revoked);
/// ```
impl From<ApiKeySpec> for StoredKey {
    fn from(spec: ApiKeySpec) -> Self {
        spec.into_stored()
    }
}

fn de_expiry<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(u64),
        Text(String),
    }
    match Option::<Raw>::deserialize(d)? {
        None => Ok(None),
        Some(Raw::Secs(s)) => UNIX_EPOCH
            .checked_add(Duration::from_secs(s))
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom("expiresAt is out of range")),
        Some(Raw::Text(t)) => crate::time::parse_rfc3339(&t).map(Some).ok_or_else(|| {
            serde::de::Error::custom(
                "expiresAt must be RFC 3339 (2026-01-01T00:00:00Z) or Unix seconds",
            )
        }),
    }
}

/// Building a registry failed. Messages never contain a key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// `MCP_API_KEYS` is not set.
    #[error("environment variable {MCP_API_KEYS_ENV} is not set")]
    NotSet,
    /// The JSON is not an object of key specs.
    #[error("{MCP_API_KEYS_ENV} is not valid: {0}")]
    InvalidJson(String),
    /// An entry has an empty name or key.
    #[error("API key entry #{0} has an empty key or name")]
    EmptyEntry(usize),
    /// A `sha256:` entry is not 64 hexadecimal characters.
    #[error("API key entry #{0}: a sha256: key must be 64 hexadecimal characters")]
    BadHash(usize),
}

type KeyMap = HashMap<KeyHash, StoredKey, PassThrough>;

/// Default bound of the verified-key cache of an [`ApiKeyRegistry`]
/// ([`ApiKeyRegistryBuilder::verified_key_cache`]).
///
/// ```
/// assert_eq!(tower_mcp_auth::api_key::DEFAULT_VERIFIED_KEYS, 10_000);
/// ```
pub const DEFAULT_VERIFIED_KEYS: usize = 10_000;

/// In-memory [`KeyLookup`]: keys held as hashes, built from `MCP_API_KEYS` or in code.
///
/// Lookups take no lock: they read an immutable snapshot of the key map (swapped with
/// `arc-swap`). The mutation methods ([`insert`](Self::insert), [`remove`](Self::remove),
/// [`revoke`](Self::revoke), [`apply`](Self::apply)) build a new snapshot and publish it at
/// once; every clone of the registry shares it, so a layer built from a clone sees them on its
/// next request. They are meant for a few changes at a time (an operator revoking a key, the
/// periodic key sync of the `keys` feature): each one copies the map.
///
/// ## The verified-key cache
///
/// A key is hashed (SHA-256) the first time it is presented; the registry then remembers
/// the entry it found under a keyed 128-bit SipHash-2-4 tag of the presented key (random
/// per-process key, constant-time comparison), so the next requests with that key cost one
/// SipHash and one shard lookup instead of a SHA-256. The key itself is never kept (only
/// its tag and its hash, the form the registry stores), only keys the registry holds are cached (guesses never fill it), and it is
/// bounded ([`ApiKeyRegistryBuilder::verified_key_cache`]).
///
/// **Every change made through the registry's methods invalidates the cache** (they all go
/// through [`apply`](Self::apply), which bumps a generation that every cached entry is
/// checked against): a revoked, removed or replaced key is looked up again on its next use,
/// including by a request that raced the change. Code that keeps the registry in step with a
/// database (a sync task) changes it only through these methods; there is no other way to
/// reach the keys. Expiry and revocation are checked on every request, for cached entries
/// as well.
///
/// ```
/// use tower_mcp_auth::{ApiKeyRegistry, ApiKeySpec, api_key::{KeyHash, KeyLookup}};
///
/// let registry = ApiKeyRegistry::from_json(r#"{
///     "connector-key": {"name": "ChatGPT Connector", "userId": "connector-user",
///                       "role": "user", "permissions": ["*"]}
/// }"#).unwrap();
/// assert_eq!(registry.len(), 1);
///
/// let registry = ApiKeyRegistry::builder()
///     .key("k-123", ApiKeySpec::new("ci").permissions(["tools/list"]))
///     .build();
/// assert!(format!("{registry:?}").contains("keys: 1"));
///
/// // Revoked at run time: the next request with the key is refused.
/// assert!(registry.revoke(&KeyHash::of("k-123")));
/// let found = registry.find_key("k-123").try_into_ready().ok().unwrap().unwrap();
/// assert!(found.unwrap().revoked);
/// ```
#[derive(Clone)]
pub struct ApiKeyRegistry {
    shared: Arc<Shared>,
}

struct Shared {
    keys: ArcSwap<KeyMap>,
    /// Bumped by every change, after the new snapshot is published; a cached entry counts
    /// only in the generation it was read in.
    generation: AtomicU64,
    verified: VerifiedKeys,
}

impl ApiKeyRegistry {
    /// Starts a registry built in code.
    pub fn builder() -> ApiKeyRegistryBuilder {
        ApiKeyRegistryBuilder {
            keys: KeyMap::default(),
            verified_keys: DEFAULT_VERIFIED_KEYS,
        }
    }

    /// Reads `MCP_API_KEYS` (see [`from_json`](Self::from_json)).
    ///
    /// # Errors
    ///
    /// [`RegistryError::NotSet`] when the variable is missing, or a parse error.
    pub fn from_env() -> Result<Self, RegistryError> {
        let raw = std::env::var(MCP_API_KEYS_ENV).map_err(|_| RegistryError::NotSet)?;
        Self::from_json(&raw)
    }

    /// Parses `{"<key>": {"name", "userId"?, "role"?, "permissions"?, "expiresAt"?}}`.
    ///
    /// A key written as `sha256:<64 hex>` is taken as an already-hashed key, so the
    /// configuration need not contain plaintext keys at all.
    ///
    /// # Errors
    ///
    /// On invalid JSON or entries; the error never quotes a key.
    pub fn from_json(json: &str) -> Result<Self, RegistryError> {
        let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(json)
            .map_err(|e| RegistryError::InvalidJson(describe_json_error(&e)))?;
        let mut builder = Self::builder();
        for (index, (key, value)) in map.into_iter().enumerate() {
            let spec: ApiKeySpec = serde_json::from_value(value).map_err(|e| {
                RegistryError::InvalidJson(format!("entry #{index}: {}", describe_json_error(&e)))
            })?;
            if key.is_empty() || spec.name.is_empty() {
                return Err(RegistryError::EmptyEntry(index));
            }
            let hash = match key.strip_prefix("sha256:") {
                Some(hex) => KeyHash::from_hex(hex).ok_or(RegistryError::BadHash(index))?,
                None => KeyHash::of(&key),
            };
            builder = builder.hashed_key(hash, spec);
        }
        Ok(builder.build())
    }

    /// Number of keys (revoked ones included).
    pub fn len(&self) -> usize {
        self.shared.keys.load().len()
    }

    /// Whether the registry holds no key.
    pub fn is_empty(&self) -> bool {
        self.shared.keys.load().is_empty()
    }

    /// Looks up a hash synchronously (a clone of the entry: an `Arc` increment).
    ///
    /// ```
    /// use tower_mcp_auth::{ApiKeyRegistry, ApiKeySpec, api_key::KeyHash};
    ///
    /// let registry = ApiKeyRegistry::builder().key("k-1", ApiKeySpec::new("ci")).build();
    /// assert_eq!(registry.get(&KeyHash::of("k-1")).unwrap().identity.name(), "ci");
    /// assert!(registry.get(&KeyHash::of("k-2")).is_none());
    /// ```
    pub fn get(&self, hash: &KeyHash) -> Option<StoredKey> {
        self.shared.keys.load().get(hash).cloned()
    }

    /// The entry for a presented (plaintext) key, with the hash it is stored under: from the
    /// verified-key cache when the key was seen since the last change, otherwise hashed,
    /// looked up and remembered. This is what [`KeyLookup::find_key`] answers with; a
    /// [`KeyLookup`] that wraps the registry and needs the hash (to record which keys are
    /// used) calls this instead of hashing the key again.
    ///
    /// ```
    /// use tower_mcp_auth::{ApiKeyRegistry, ApiKeySpec, api_key::KeyHash};
    ///
    /// let registry = ApiKeyRegistry::builder().key("k-1", ApiKeySpec::new("ci")).build();
    /// let (hash, key) = registry.find_presented("k-1").unwrap();
    /// assert_eq!((hash, key.identity.name()), (KeyHash::of("k-1"), "ci"));
    /// assert!(registry.find_presented("k-2").is_none());
    /// ```
    pub fn find_presented(&self, presented: &str) -> Option<(KeyHash, StoredKey)> {
        let shared = &*self.shared;
        let tag = KeyedTag::of(presented);
        // Read before the keys: a change bumps it after publishing its keys, so an entry
        // read from old keys is always stamped with an old generation.
        let generation = shared.generation.load(Ordering::Acquire);
        if let Some(found) = shared.verified.get(&tag, generation) {
            return Some(found);
        }
        let hash = KeyHash::of(presented);
        let key = self.get(&hash)?;
        shared.verified.insert(tag, hash, key.clone(), generation);
        Some((hash, key))
    }

    /// Adds a key, or replaces the entry with the same hash. Visible to every clone of the
    /// registry from the next lookup on.
    ///
    /// ```
    /// use tower_mcp_auth::{ApiKeyRegistry, ApiKeySpec, api_key::KeyHash};
    ///
    /// let registry = ApiKeyRegistry::builder().build();
    /// let serving = registry.clone(); // for example inside an ApiKeyLayer
    /// registry.insert(KeyHash::of("k-1"), ApiKeySpec::new("ci").into());
    /// assert!(serving.get(&KeyHash::of("k-1")).is_some());
    /// ```
    pub fn insert(&self, hash: KeyHash, key: StoredKey) {
        self.apply([(hash, key)], []);
    }

    /// Removes a key: it becomes unknown (`invalid_credentials`). Returns whether it was there.
    ///
    /// ```
    /// use tower_mcp_auth::{ApiKeyRegistry, ApiKeySpec, api_key::KeyHash};
    ///
    /// let registry = ApiKeyRegistry::builder().key("k-1", ApiKeySpec::new("ci")).build();
    /// assert!(registry.remove(&KeyHash::of("k-1")));
    /// assert!(!registry.remove(&KeyHash::of("k-1")));
    /// ```
    pub fn remove(&self, hash: &KeyHash) -> bool {
        let present = self.shared.keys.load().contains_key(hash);
        if present {
            self.apply([], [*hash]);
        }
        present
    }

    /// Marks a key revoked (it is rejected as `invalid_credentials`, and stays listed as
    /// revoked). Returns whether the registry holds that key.
    ///
    /// ```
    /// use tower_mcp_auth::{ApiKeyRegistry, ApiKeySpec, api_key::KeyHash};
    ///
    /// let registry = ApiKeyRegistry::builder().key("k-1", ApiKeySpec::new("ci")).build();
    /// assert!(registry.revoke(&KeyHash::of("k-1")));
    /// assert!(registry.get(&KeyHash::of("k-1")).unwrap().revoked);
    /// ```
    pub fn revoke(&self, hash: &KeyHash) -> bool {
        let Some(mut key) = self.get(hash) else {
            return false;
        };
        key.revoked = true;
        self.apply([(*hash, key)], []);
        true
    }

    /// Applies several changes as one: the upserts are added (or replace the entries with
    /// the same hash), then the removals removed, and lookups see either none or all of them.
    /// Concurrent calls are applied one after the other (none is lost). Every mutation goes
    /// through here, and here the verified-key cache is invalidated.
    ///
    /// ```
    /// use tower_mcp_auth::{ApiKeyRegistry, ApiKeySpec, api_key::KeyHash};
    ///
    /// let registry = ApiKeyRegistry::builder().key("old", ApiKeySpec::new("ci")).build();
    /// registry.apply([(KeyHash::of("new"), ApiKeySpec::new("ci").into())], [KeyHash::of("old")]);
    /// assert!(registry.get(&KeyHash::of("new")).is_some());
    /// assert!(registry.get(&KeyHash::of("old")).is_none());
    /// ```
    pub fn apply<U, R>(&self, upserts: U, removals: R)
    where
        U: IntoIterator<Item = (KeyHash, StoredKey)>,
        R: IntoIterator<Item = KeyHash>,
    {
        let upserts: Vec<(KeyHash, StoredKey)> = upserts.into_iter().collect();
        let removals: Vec<KeyHash> = removals.into_iter().collect();
        if upserts.is_empty() && removals.is_empty() {
            return;
        }
        let shared = &*self.shared;
        // `rcu` retries the closure if another writer published in between.
        shared.keys.rcu(|current| {
            let mut next = KeyMap::clone(current);
            next.extend(upserts.iter().cloned());
            for hash in &removals {
                next.remove(hash);
            }
            next
        });
        // After the publication: a lookup that reads this generation or a later one reads
        // the new keys (see `find_key`), so an entry read from the old keys is stamped with an
        // older generation and never hits again.
        shared.generation.fetch_add(1, Ordering::AcqRel);
        shared.verified.clear();
    }
}

/// serde_json errors quote the offending input, which may be a key; keep only the position.
fn describe_json_error(e: &serde_json::Error) -> String {
    let kind = match e.classify() {
        serde_json::error::Category::Io => "I/O error",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected value or missing field",
        serde_json::error::Category::Eof => "unexpected end of input",
    };
    format!("{kind} at line {} column {}", e.line(), e.column())
}

impl KeyLookup for ApiKeyRegistry {
    fn find(&self, hash: &KeyHash) -> Deferred<Result<Option<StoredKey>, KeyLookupError>> {
        Deferred::ready(Ok(self.get(hash)))
    }

    /// From the verified-key cache when this key was seen in the current generation,
    /// otherwise hashed, looked up and remembered (see the [type docs](ApiKeyRegistry)).
    fn find_key(&self, presented: &str) -> Deferred<Result<Option<StoredKey>, KeyLookupError>> {
        Deferred::ready(Ok(self.find_presented(presented).map(|(_, key)| key)))
    }
}

impl fmt::Debug for ApiKeyRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ApiKeyRegistry {{ keys: {}, verified_key_cache: {} }}",
            self.len(),
            self.shared.verified.capacity()
        )
    }
}

/// Builds an [`ApiKeyRegistry`]; see [`ApiKeyRegistry::builder`].
#[must_use]
pub struct ApiKeyRegistryBuilder {
    keys: KeyMap,
    verified_keys: usize,
}

impl fmt::Debug for ApiKeyRegistryBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeyRegistryBuilder {{ keys: {} }}", self.keys.len())
    }
}

impl ApiKeyRegistryBuilder {
    /// Adds a plaintext key (hashed immediately; the plaintext is not kept).
    pub fn key(self, plaintext: &str, spec: ApiKeySpec) -> Self {
        self.hashed_key(KeyHash::of(plaintext), spec)
    }

    /// Adds a key by its hash.
    pub fn hashed_key(mut self, hash: KeyHash, spec: ApiKeySpec) -> Self {
        self.keys.insert(hash, spec.into_stored());
        self
    }

    /// Adds a key by hash and marks it revoked (it will be rejected).
    pub fn revoked_key(mut self, hash: KeyHash, spec: ApiKeySpec) -> Self {
        let mut stored = spec.into_stored();
        stored.revoked = true;
        self.keys.insert(hash, stored);
        self
    }

    /// Bounds the verified-key cache to `max_entries` keys (default
    /// [`DEFAULT_VERIFIED_KEYS`]); `0` turns it off, so every request hashes its key.
    ///
    /// ```
    /// use tower_mcp_auth::ApiKeyRegistry;
    ///
    /// let registry = ApiKeyRegistry::builder().verified_key_cache(0).build();
    /// assert!(format!("{registry:?}").contains("verified_key_cache: 0"));
    /// ```
    pub fn verified_key_cache(mut self, max_entries: usize) -> Self {
        self.verified_keys = max_entries;
        self
    }

    /// Finishes the registry.
    pub fn build(self) -> ApiKeyRegistry {
        ApiKeyRegistry {
            shared: Arc::new(Shared {
                keys: ArcSwap::from_pointee(self.keys),
                generation: AtomicU64::new(0),
                verified: VerifiedKeys::new(self.verified_keys),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_format() {
        let r = ApiKeyRegistry::from_json(
            r#"{"k1": {"name": "A", "userId": "alice", "role": "admin", "permissions": ["*"],
                       "expiresAt": "2030-01-01T00:00:00Z"},
                "k2": {"name": "B", "expiresAt": 1893456000}}"#,
        )
        .unwrap();
        let a = r.get(&KeyHash::of("k1")).unwrap();
        assert_eq!(a.identity.user_id(), Some("alice"));
        assert_eq!(a.identity.role(), Some("admin"));
        assert!(a.identity.has_permission("anything"));
        let b = r.get(&KeyHash::of("k2")).unwrap();
        assert_eq!(b.identity.user_id(), None);
        assert_eq!(a.expires_at, b.expires_at);
    }

    #[test]
    fn hashed_entries_and_errors_never_quote_keys() {
        let h = KeyHash::of("plain");
        let r =
            ApiKeyRegistry::from_json(&format!(r#"{{"sha256:{}": {{"name": "h"}}}}"#, h.to_hex()))
                .unwrap();
        assert!(r.get(&h).is_some());

        let err = ApiKeyRegistry::from_json(r#"{"super-secret-key": {"nom": "x"}}"#).unwrap_err();
        assert!(!err.to_string().contains("super-secret-key"), "{err}");
        let err = ApiKeyRegistry::from_json(r#"{"super-secret-key": 5"#).unwrap_err();
        assert!(!err.to_string().contains("super-secret"), "{err}");
        assert!(matches!(
            ApiKeyRegistry::from_json(r#"{"sha256:zz": {"name": "x"}}"#),
            Err(RegistryError::BadHash(0))
        ));
        assert!(matches!(
            ApiKeyRegistry::from_json(r#"{"k": {"name": "x", "expiresAt": "tomorrow"}}"#),
            Err(RegistryError::InvalidJson(_))
        ));
    }

    fn found(r: &ApiKeyRegistry, key: &str) -> Option<StoredKey> {
        r.find_key(key)
            .try_into_ready()
            .expect("in-memory lookups are ready")
            .expect("never unavailable")
    }

    #[test]
    fn verified_key_cache_holds_known_keys_only_and_follows_every_change() {
        let r = ApiKeyRegistry::builder()
            .key("k1", ApiKeySpec::new("one"))
            .build();
        for _ in 0..3 {
            assert!(found(&r, "guess").is_none());
        }
        assert_eq!(r.shared.verified.len(), 0, "unknown keys are not cached");
        assert_eq!(found(&r, "k1").unwrap().identity.name(), "one");
        assert_eq!(r.shared.verified.len(), 1);
        assert_eq!(found(&r, "k1").unwrap().identity.name(), "one");

        let h = KeyHash::of("k1");
        assert!(r.revoke(&h));
        assert!(
            found(&r, "k1").unwrap().revoked,
            "revoke reaches a cached key"
        );
        r.insert(h, ApiKeySpec::new("two").into());
        assert_eq!(found(&r, "k1").unwrap().identity.name(), "two");
        // A clone shares keys and cache.
        let clone = r.clone();
        assert!(clone.remove(&h));
        assert!(found(&r, "k1").is_none(), "remove reaches a cached key");
        r.apply([(h, ApiKeySpec::new("three").into())], []);
        assert_eq!(found(&r, "k1").unwrap().identity.name(), "three");
        r.apply([], [h]);
        assert!(found(&r, "k1").is_none());
        assert!(!r.revoke(&h));
    }

    #[test]
    fn an_entry_read_before_a_change_never_hits_after_it() {
        // A lookup that read the keys before a change caches with the old generation.
        let r = ApiKeyRegistry::builder()
            .key("k1", ApiKeySpec::new("one"))
            .build();
        let old_generation = r.shared.generation.load(Ordering::Acquire);
        let stale = r.get(&KeyHash::of("k1")).unwrap();
        assert!(r.revoke(&KeyHash::of("k1")));
        r.shared
            .verified
            .insert(KeyedTag::of("k1"), KeyHash::of("k1"), stale, old_generation);
        assert!(found(&r, "k1").unwrap().revoked);
    }

    #[test]
    fn without_the_cache_every_lookup_reads_the_keys() {
        let r = ApiKeyRegistry::builder()
            .key("k1", ApiKeySpec::new("one"))
            .verified_key_cache(0)
            .build();
        assert!(found(&r, "k1").is_some());
        assert_eq!(r.shared.verified.len(), 0);
        assert!(r.revoke(&KeyHash::of("k1")));
        assert!(found(&r, "k1").unwrap().revoked);
    }

    #[test]
    fn equal_hashes_compare_equal() {
        assert_eq!(KeyHash::of("a"), KeyHash::of("a"));
        assert_ne!(KeyHash::of("a"), KeyHash::of("b"));
        assert!(format!("{:?}", KeyHash::of("a")).len() < 30);
    }
}
