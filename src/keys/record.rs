//! What a [`KeyStore`](super::KeyStore) holds: [`KeyInfo`] (metadata), [`KeyRecord`]
//! (metadata and hash) and [`CreatedKey`] (what `create` and `rotate` return, once).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::api_key::{ApiKeySpec, GeneratedApiKey, KeyHash, StoredKey};

use super::error::KeysError;

/// An API key's metadata, as [`list`](super::KeyStore::list) shows it: never the key, never
/// its hash.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tower_mcp_auth::keys::KeyInfo;
///
/// let now = SystemTime::now();
/// let mut info = KeyInfo::new("key_0123456789abcdef", "ci", now);
/// assert!(info.is_usable(now));
/// info.expires_at = Some(now + Duration::from_secs(60));
/// assert!(!info.is_usable(now + Duration::from_secs(60)));
/// info.revoked_at = Some(now);
/// assert!(!info.is_usable(now));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyInfo {
    /// The key's identifier (`key_` and 16 hexadecimal digits): what operators name in
    /// `rotate` and `revoke`. Not a secret.
    pub id: String,
    /// Human-readable name (the [`Identity`](crate::Identity) name of requests with this key).
    pub name: String,
    /// Owning user; `None` for a public key.
    pub user_id: Option<String>,
    /// Role.
    pub role: Option<String>,
    /// Permissions (`*` grants all).
    pub permissions: Vec<String>,
    /// When the key was created.
    pub created_at: SystemTime,
    /// When the key stops working. A rotated key gets the grace deadline here.
    pub expires_at: Option<SystemTime>,
    /// When the key was revoked, if it was.
    pub revoked_at: Option<SystemTime>,
    /// The id of the key that replaced this one (set by `rotate`).
    pub rotated_to: Option<String>,
    /// The last time a request used the key, to within the usage flush interval of
    /// [`KeySync`](super::KeySync) (default 30 s). `None` if never seen.
    pub last_used_at: Option<SystemTime>,
}

impl KeyInfo {
    /// A public key `name` with id `id`, created at `created_at`, no permissions.
    pub fn new(id: impl Into<String>, name: impl Into<String>, created_at: SystemTime) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            user_id: None,
            role: None,
            permissions: Vec::new(),
            created_at,
            expires_at: None,
            revoked_at: None,
            rotated_to: None,
            last_used_at: None,
        }
    }

    /// Metadata for a new key described by `spec`.
    pub(crate) fn from_spec(id: String, spec: ApiKeySpec, created_at: SystemTime) -> Self {
        Self {
            id,
            name: spec.name,
            user_id: spec.user_id,
            role: spec.role,
            permissions: spec.permissions,
            created_at,
            expires_at: spec.expires_at,
            revoked_at: None,
            rotated_to: None,
            last_used_at: None,
        }
    }

    /// Whether a request with this key is accepted at `now`: not revoked, not expired.
    pub fn is_usable(&self, now: SystemTime) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| at > now)
    }

    /// What the key's holder gets, as the registry serves it.
    pub(crate) fn to_stored(&self) -> StoredKey {
        let mut spec = ApiKeySpec::new(self.name.clone()).permissions(self.permissions.clone());
        if let Some(user) = &self.user_id {
            spec = spec.user_id(user.clone());
        }
        if let Some(role) = &self.role {
            spec = spec.role(role.clone());
        }
        if let Some(at) = self.expires_at {
            spec = spec.expires_at(at);
        }
        let mut stored = StoredKey::from(spec);
        stored.revoked = self.revoked_at.is_some();
        stored
    }

    /// The successor of this key in a rotation: the same metadata, a new id, a new creation
    /// time, no usage yet.
    pub(crate) fn successor(&self, id: String, created_at: SystemTime) -> Self {
        Self {
            id,
            created_at,
            revoked_at: None,
            rotated_to: None,
            last_used_at: None,
            ..self.clone()
        }
    }

    /// Retires this key in favour of `successor`: it keeps working until `deadline` (or its
    /// own expiry, if earlier).
    ///
    /// # Errors
    ///
    /// [`KeysError::Revoked`] if the key is revoked: a revoked key is never revived.
    pub(crate) fn retire(
        &mut self,
        successor: &str,
        deadline: SystemTime,
    ) -> Result<(), KeysError> {
        if self.revoked_at.is_some() {
            return Err(KeysError::Revoked);
        }
        self.expires_at = Some(self.expires_at.map_or(deadline, |at| at.min(deadline)));
        self.rotated_to = Some(successor.to_owned());
        Ok(())
    }
}

/// A key's metadata and the SHA-256 hash it is found by: what a backend stores and what
/// [`KeySync`](super::KeySync) loads into the registry.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyRecord {
    /// The metadata.
    pub info: KeyInfo,
    /// The hash of the key (its `Debug` shows a short prefix only).
    pub hash: KeyHash,
}

impl KeyRecord {
    /// Pairs metadata with a hash (for example read back from a database).
    ///
    /// ```
    /// use std::time::SystemTime;
    /// use tower_mcp_auth::{api_key::KeyHash, keys::{KeyInfo, KeyRecord}};
    ///
    /// let record = KeyRecord::new(KeyInfo::new("key_1", "ci", SystemTime::now()), KeyHash::of("k"));
    /// assert_eq!(record.info.name, "ci");
    /// ```
    pub fn new(info: KeyInfo, hash: KeyHash) -> Self {
        Self { info, hash }
    }
}

/// A key just created or rotated in: its metadata and its plaintext, which exists only here.
/// Show [`plaintext`](Self::plaintext) to its owner once; the store keeps only the hash.
///
/// `Debug` redacts the plaintext.
///
/// ```
/// use tower_mcp_auth::{api_key::KeyHash, ApiKeySpec, keys::{KeyStore, MemoryKeyStore}};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let created = MemoryKeyStore::new().create(ApiKeySpec::new("ci")).await?;
/// assert_eq!(created.hash(), KeyHash::of(created.plaintext()));
/// assert_eq!(created.info().name, "ci");
/// assert!(!format!("{created:?}").contains(created.plaintext()));
/// # Ok::<(), tower_mcp_auth::keys::KeysError>(())
/// # }).unwrap();
/// ```
pub struct CreatedKey {
    info: KeyInfo,
    key: GeneratedApiKey,
}

impl CreatedKey {
    pub(crate) fn new(info: KeyInfo, key: GeneratedApiKey) -> Self {
        Self { info, key }
    }

    /// The new key's metadata.
    pub fn info(&self) -> &KeyInfo {
        &self.info
    }

    /// The key to hand to its owner. Never log it.
    pub fn plaintext(&self) -> &str {
        self.key.plaintext()
    }

    /// The hash the store keeps.
    pub fn hash(&self) -> KeyHash {
        self.key.hash()
    }
}

impl fmt::Debug for CreatedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedKey")
            .field("info", &self.info)
            .field("plaintext", &"<redacted>")
            .finish()
    }
}

/// A new key id: `key_` and 16 hexadecimal digits (64 random bits).
pub(crate) fn new_key_id() -> Result<String, KeysError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| KeysError::Random(e.to_string()))?;
    let mut id = String::with_capacity(20);
    id.push_str("key_");
    for b in bytes {
        id.push_str(&format!("{b:02x}"));
    }
    Ok(id)
}

/// A time as whole microseconds since the Unix epoch, as the SQL and Redis backends store it.
pub(crate) fn to_micros(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

/// The inverse of [`to_micros`]; negative values (not written by this crate) are the epoch.
pub(crate) fn from_micros(us: i64) -> SystemTime {
    let us = u64::try_from(us).unwrap_or(0);
    UNIX_EPOCH
        .checked_add(Duration::from_micros(us))
        .unwrap_or(UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retiring_keeps_the_earlier_deadline_and_never_revives() {
        let now = SystemTime::now();
        let mut info = KeyInfo::new("key_a", "ci", now);
        info.retire("key_b", now + Duration::from_secs(60)).unwrap();
        assert_eq!(info.expires_at, Some(now + Duration::from_secs(60)));
        info.retire("key_c", now + Duration::from_secs(600))
            .unwrap();
        assert_eq!(info.expires_at, Some(now + Duration::from_secs(60)));
        assert_eq!(info.rotated_to.as_deref(), Some("key_c"));
        info.revoked_at = Some(now);
        assert!(matches!(info.retire("key_d", now), Err(KeysError::Revoked)));
    }

    #[test]
    fn ids_are_prefixed_hex_and_micros_round_trip() {
        let id = new_key_id().unwrap();
        assert_eq!(id.len(), 20);
        assert!(id[4..].bytes().all(|b| b.is_ascii_hexdigit()));
        let t = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        assert_eq!(from_micros(to_micros(t)), t);
        assert_eq!(from_micros(-5), UNIX_EPOCH);
    }

    #[test]
    fn stored_key_follows_the_metadata() {
        let now = SystemTime::now();
        let mut info = KeyInfo::new("key_a", "ci", now);
        info.user_id = Some("alice".into());
        info.permissions = vec!["tools/call:*".into()];
        let stored = info.to_stored();
        assert_eq!(stored.identity.user_id(), Some("alice"));
        assert!(stored.identity.has_permission("tools/call:search"));
        assert!(!stored.revoked);
        info.revoked_at = Some(now);
        assert!(info.to_stored().revoked);
        assert!(!format!(
            "{:?}",
            CreatedKey::new(info, crate::api_key::generate_api_key().unwrap())
        )
        .contains("mcp_"));
    }
}
