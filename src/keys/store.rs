//! The [`KeyStore`] trait: durable API keys with a lifecycle.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::api_key::{generate_api_key, ApiKeySpec};
use crate::deferred::Deferred;

use super::error::KeysError;
use super::record::{new_key_id, CreatedKey, KeyInfo, KeyRecord};

/// The result of every [`KeyStore`] method; `.await` it.
pub type KeysResult<T> = Deferred<Result<T, KeysError>>;

/// Where API keys live durably, with their lifecycle: [`create`](Self::create) (the plaintext
/// is returned once, only its hash is stored), [`list`](Self::list) (metadata only),
/// [`rotate`](Self::rotate) (a new key; the old one works until a grace deadline),
/// [`revoke`](Self::revoke), expiry and last-used times.
///
/// This is the operator's side. Requests never query it: a [`KeySync`](super::KeySync) task
/// mirrors it into the [`ApiKeyRegistry`](crate::ApiKeyRegistry) that
/// [`ApiKeyLayer`](crate::api_key::ApiKeyLayer) reads (the request-path lookup trait is
/// [`api_key::KeyLookup`](crate::api_key::KeyLookup)).
///
/// | backend | feature | |
/// |---|---|---|
/// | [`MemoryKeyStore`](super::MemoryKeyStore) | `keys` | one process, tests |
/// | `PostgresStore` | `postgres` | table `mcp_auth_api_keys` (migration 2) |
/// | `SqliteStore` | `sqlite` | table `mcp_auth_api_keys` (migration 2) |
/// | `RedisStore` | `redis` | hashes under `<prefix>keys:{api-keys}` |
///
/// A backend implements six primitives (insert, load, revision, revoke, rotation, usage);
/// `create`, `list` and `rotate` are provided on top. Times are the caller's clock.
///
/// ```
/// use std::time::Duration;
/// use tower_mcp_auth::{ApiKeySpec, keys::{KeyStore, MemoryKeyStore}};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = MemoryKeyStore::new();
/// let created = store.create(ApiKeySpec::new("ci").user_id("alice").permissions(["tools/call:*"])).await?;
/// assert!(created.plaintext().starts_with("mcp_"));
///
/// let rotated = store.rotate(&created.info().id, Duration::from_secs(3600)).await?;
/// store.revoke(&created.info().id).await?;
/// let listed = store.list().await?;
/// assert_eq!(listed.len(), 2);
/// assert!(listed.iter().all(|k| k.name == "ci"));
/// # let _ = rotated;
/// # Ok::<(), tower_mcp_auth::keys::KeysError>(())
/// # }).unwrap();
/// ```
pub trait KeyStore: Send + Sync + 'static {
    /// Stores a new record. [`KeysError::Conflict`] if its id or hash exists.
    ///
    /// ```
    /// use std::time::SystemTime;
    /// use tower_mcp_auth::{api_key::KeyHash, keys::{KeyInfo, KeyRecord, KeyStore, MemoryKeyStore}};
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let store = MemoryKeyStore::new();
    /// let record = KeyRecord::new(KeyInfo::new("key_1", "imported", SystemTime::now()), KeyHash::of("k"));
    /// store.insert(record.clone()).await?;
    /// assert!(store.insert(record).await.is_err());
    /// # Ok::<(), tower_mcp_auth::keys::KeysError>(())
    /// # }).unwrap();
    /// ```
    fn insert(&self, record: KeyRecord) -> KeysResult<()>;

    /// Every record, revoked and expired ones included, with its hash (for
    /// [`KeySync`](super::KeySync)).
    ///
    /// ```
    /// use tower_mcp_auth::keys::{KeyStore, MemoryKeyStore};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// assert!(MemoryKeyStore::new().load().await?.is_empty());
    /// # Ok::<(), tower_mcp_auth::keys::KeysError>(())
    /// # }).unwrap();
    /// ```
    fn load(&self) -> KeysResult<Vec<KeyRecord>>;

    /// A number that changes whenever a record is inserted, revoked or rotated (not when
    /// usage is recorded), so a sync can skip [`load`](Self::load) when nothing changed.
    ///
    /// ```
    /// use tower_mcp_auth::{ApiKeySpec, keys::{KeyStore, MemoryKeyStore}};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let store = MemoryKeyStore::new();
    /// let before = store.revision().await?;
    /// store.create(ApiKeySpec::new("ci")).await?;
    /// assert_ne!(store.revision().await?, before);
    /// # Ok::<(), tower_mcp_auth::keys::KeysError>(())
    /// # }).unwrap();
    /// ```
    fn revision(&self) -> KeysResult<u64>;

    /// Revokes key `id` as of `at`. Revoking a revoked key changes nothing.
    /// [`KeysError::NotFound`] for an unknown id.
    ///
    /// ```
    /// use std::time::SystemTime;
    /// use tower_mcp_auth::keys::{KeyStore, KeysError, MemoryKeyStore};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let store = MemoryKeyStore::new();
    /// assert!(matches!(store.revoke_at("key_nope", SystemTime::now()).await, Err(KeysError::NotFound)));
    /// # });
    /// ```
    fn revoke_at(&self, id: &str, at: SystemTime) -> KeysResult<()>;

    /// Atomically stores `successor` (a record built by
    /// [`rotate`](Self::rotate) from the current metadata of `old_id`) and retires `old_id`: its
    /// expiry becomes `deadline` (or stays, if earlier) and `rotated_to` names the successor.
    /// Returns the successor's metadata as stored. [`KeysError::NotFound`] for an unknown id,
    /// [`KeysError::Revoked`] for a revoked one.
    ///
    /// Backends read `old_id`'s metadata themselves, in the same transaction, and copy it
    /// into the successor (name, user, role, permissions, expiry): `successor` only brings
    /// the new id, hash and creation time.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use tower_mcp_auth::{api_key::KeyHash, ApiKeySpec, keys::{KeyInfo, KeyRecord, KeyStore, MemoryKeyStore}};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let store = MemoryKeyStore::new();
    /// let old = store.create(ApiKeySpec::new("ci").user_id("alice")).await?;
    /// let now = SystemTime::now();
    /// let next = KeyRecord::new(KeyInfo::new("key_2", "", now), KeyHash::of("new"));
    /// let info = store.replace(&old.info().id, next, now + Duration::from_secs(60)).await?;
    /// assert_eq!((info.name.as_str(), info.user_id.as_deref()), ("ci", Some("alice")));
    /// # Ok::<(), tower_mcp_auth::keys::KeysError>(())
    /// # }).unwrap();
    /// ```
    fn replace(
        &self,
        old_id: &str,
        successor: KeyRecord,
        deadline: SystemTime,
    ) -> KeysResult<KeyInfo>;

    /// Records when keys were last used, in one batch (written by
    /// [`KeySync`](super::KeySync) every flush interval, never per request). Unknown ids are
    /// ignored. Does not change the [`revision`](Self::revision).
    ///
    /// ```
    /// use std::time::SystemTime;
    /// use tower_mcp_auth::{ApiKeySpec, keys::{KeyStore, MemoryKeyStore}};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let store = MemoryKeyStore::new();
    /// let key = store.create(ApiKeySpec::new("ci")).await?;
    /// store.record_use(vec![(key.info().id.clone(), SystemTime::now())]).await?;
    /// assert!(store.list().await?[0].last_used_at.is_some());
    /// # Ok::<(), tower_mcp_auth::keys::KeysError>(())
    /// # }).unwrap();
    /// ```
    fn record_use(&self, used: Vec<(String, SystemTime)>) -> KeysResult<()>;

    /// Creates a key described by `spec` and returns it: the only time its plaintext exists.
    ///
    /// ```
    /// use tower_mcp_auth::{ApiKeySpec, keys::{KeyStore, MemoryKeyStore}};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let created = MemoryKeyStore::new().create(ApiKeySpec::new("ci")).await?;
    /// assert!(created.info().id.starts_with("key_"));
    /// # Ok::<(), tower_mcp_auth::keys::KeysError>(())
    /// # }).unwrap();
    /// ```
    fn create(&self, spec: ApiKeySpec) -> KeysResult<CreatedKey> {
        let fresh = match fresh_key() {
            Ok(fresh) => fresh,
            Err(e) => return Deferred::ready(Err(e)),
        };
        let (id, key) = fresh;
        let info = KeyInfo::from_spec(id, spec, SystemTime::now());
        let inserting = self.insert(KeyRecord::new(info.clone(), key.hash()));
        Deferred::boxed(async move {
            inserting.await?;
            Ok(CreatedKey::new(info, key))
        })
    }

    /// Replaces key `id` with a new one of the same metadata; the old key keeps working for
    /// `grace` (zero: it stops now), then expires. Returns the new key, plaintext included.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_mcp_auth::{ApiKeySpec, keys::{KeyStore, MemoryKeyStore}};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let store = MemoryKeyStore::new();
    /// let old = store.create(ApiKeySpec::new("ci")).await?;
    /// let new = store.rotate(&old.info().id, Duration::from_secs(3600)).await?;
    /// let listed = store.list().await?;
    /// let retired = listed.iter().find(|k| k.id == old.info().id).unwrap();
    /// assert_eq!(retired.rotated_to.as_deref(), Some(new.info().id.as_str()));
    /// # Ok::<(), tower_mcp_auth::keys::KeysError>(())
    /// # }).unwrap();
    /// ```
    fn rotate(&self, id: &str, grace: Duration) -> KeysResult<CreatedKey> {
        let (new_id, key) = match fresh_key() {
            Ok(fresh) => fresh,
            Err(e) => return Deferred::ready(Err(e)),
        };
        let now = SystemTime::now();
        let deadline = now.checked_add(grace).unwrap_or(now);
        let successor = KeyRecord::new(KeyInfo::new(new_id, "", now), key.hash());
        let replacing = self.replace(id, successor, deadline);
        Deferred::boxed(async move { Ok(CreatedKey::new(replacing.await?, key)) })
    }

    /// Revokes key `id` now (see [`revoke_at`](Self::revoke_at)).
    ///
    /// ```
    /// use tower_mcp_auth::{ApiKeySpec, keys::{KeyStore, MemoryKeyStore}};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let store = MemoryKeyStore::new();
    /// let key = store.create(ApiKeySpec::new("ci")).await?;
    /// store.revoke(&key.info().id).await?;
    /// assert!(store.list().await?[0].revoked_at.is_some());
    /// # Ok::<(), tower_mcp_auth::keys::KeysError>(())
    /// # }).unwrap();
    /// ```
    fn revoke(&self, id: &str) -> KeysResult<()> {
        self.revoke_at(id, SystemTime::now())
    }

    /// Every key's metadata (no hashes), oldest first.
    ///
    /// ```
    /// use tower_mcp_auth::{ApiKeySpec, keys::{KeyStore, MemoryKeyStore}};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let store = MemoryKeyStore::new();
    /// store.create(ApiKeySpec::new("a")).await?;
    /// store.create(ApiKeySpec::new("b")).await?;
    /// let names: Vec<String> = store.list().await?.into_iter().map(|k| k.name).collect();
    /// assert_eq!(names, ["a", "b"]);
    /// # Ok::<(), tower_mcp_auth::keys::KeysError>(())
    /// # }).unwrap();
    /// ```
    fn list(&self) -> KeysResult<Vec<KeyInfo>> {
        let loading = self.load();
        Deferred::boxed(async move {
            let mut infos: Vec<KeyInfo> = loading.await?.into_iter().map(|r| r.info).collect();
            infos.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
            Ok(infos)
        })
    }
}

/// A new id and key.
fn fresh_key() -> Result<(String, crate::api_key::GeneratedApiKey), KeysError> {
    let id = new_key_id()?;
    let key = generate_api_key().map_err(|e| KeysError::Random(e.to_string()))?;
    Ok((id, key))
}

macro_rules! forward_key_store {
    ($($ptr:ident),*) => {$(
        /// Forwards to the pointed-to store, so `Arc<dyn KeyStore>` is itself a store.
        impl<S: KeyStore + ?Sized> KeyStore for $ptr<S> {
            fn insert(&self, record: KeyRecord) -> KeysResult<()> {
                (**self).insert(record)
            }
            fn load(&self) -> KeysResult<Vec<KeyRecord>> {
                (**self).load()
            }
            fn revision(&self) -> KeysResult<u64> {
                (**self).revision()
            }
            fn revoke_at(&self, id: &str, at: SystemTime) -> KeysResult<()> {
                (**self).revoke_at(id, at)
            }
            fn replace(
                &self,
                old_id: &str,
                successor: KeyRecord,
                deadline: SystemTime,
            ) -> KeysResult<KeyInfo> {
                (**self).replace(old_id, successor, deadline)
            }
            fn record_use(&self, used: Vec<(String, SystemTime)>) -> KeysResult<()> {
                (**self).record_use(used)
            }
        }
    )*};
}

forward_key_store!(Arc, Box);
