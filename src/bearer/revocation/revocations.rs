//! [`Revocations`]: the shared denylist, its local snapshot and the task that refreshes it.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;

use crate::bearer::verifier::TokenVerifier;
use crate::store::{StateStore, StoreError};

use super::list::{Cutoff, RevocationList};
use super::verifier::RevocationVerifier;

/// How often the local snapshot is refreshed unless configured otherwise: the bound within
/// which a revocation made on one instance is enforced by every instance.
///
/// ```
/// # use std::time::Duration;
/// assert_eq!(tower_mcp_auth::bearer::DEFAULT_REVOCATION_REFRESH, Duration::from_secs(1));
/// ```
pub const DEFAULT_REVOCATION_REFRESH: Duration = Duration::from_secs(1);

/// How long a revocation is kept unless configured otherwise: the longest lifetime of a
/// token the server accepts (after it, every revoked token has expired anyway).
///
/// ```
/// # use std::time::Duration;
/// assert_eq!(tower_mcp_auth::bearer::DEFAULT_MAX_TOKEN_LIFETIME, Duration::from_secs(24 * 3600));
/// ```
pub const DEFAULT_MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// Key prefix of the revocation values in the store unless configured otherwise.
const DEFAULT_PREFIX: &str = "revocation:";
/// How long a writer holds the list's lock at most (a writer that died frees it then).
const LOCK_TTL: Duration = Duration::from_secs(10);
/// How long a writer waits for the lock before giving up with a timeout.
const LOCK_WAIT: Duration = Duration::from_secs(5);
/// Pause between two attempts at the lock.
const LOCK_RETRY: Duration = Duration::from_millis(20);
/// Extra lifetime of the stored list beyond its last entry.
const TTL_MARGIN: Duration = Duration::from_secs(60);

/// Revoked bearer tokens, shared by every instance through a [`StateStore`]: single tokens by
/// `jti` ([`revoke_jti`](Self::revoke_jti)) and kill-switches, every token of a subject
/// issued at or before a time ([`revoke_subject_before`](Self::revoke_subject_before)).
///
/// Wrap the verifier with [`verifier`](Self::verifier) (outside any
/// [`CachedVerifier`](crate::bearer::CachedVerifier), so cache hits are checked too): a
/// revoked token gets 401 `invalid_token` ("The access token has been revoked").
///
/// **Cost and bound.** Requests check a local snapshot (an `arc-swap` load, then nothing at
/// all while the list is empty; a hash lookup or two otherwise): never a store round trip. A
/// Tokio task reads one small generation value from the store every
/// [`refresh`](RevocationsBuilder::refresh) (default 1 s) and the list only when it changed,
/// so a revocation on any instance is enforced everywhere within one refresh. The instance
/// that revokes enforces it at once. While the store is unreachable the last snapshot stays
/// in force.
///
/// **Storage.** The list is one JSON value (`<prefix>list`) beside a generation
/// (`<prefix>gen`); writers take a lock (`<prefix>lock`, insert-if-absent, 10 s TTL) for the
/// read-modify-write, so concurrent revocations on several instances are all kept. Entries
/// are dropped after [`max_token_lifetime`](RevocationsBuilder::max_token_lifetime) (default
/// 24 h): set it to the longest `exp - iat` your issuers use. A revocation cannot be undone;
/// an instance keeps what it has seen even if the store loses the list, and writes it back
/// with its next revocation.
///
/// ```
/// use std::sync::Arc;
/// use std::time::SystemTime;
/// use tower_mcp_auth::bearer::{BearerLayer, CachedVerifier, Revocations};
/// use tower_mcp_auth::store::MemoryStore;
/// use tower_mcp_auth::JwtVerifier;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let revocations = Revocations::builder(Arc::new(MemoryStore::new())).start().await?;
/// let jwt = JwtVerifier::hs256(b"an-hs256-secret-that-is-32-bytes+").build().unwrap();
/// let layer = BearerLayer::new(revocations.verifier(CachedVerifier::new(jwt)));
///
/// revocations.revoke_jti("5f0c0d8e").await?;
/// revocations.revoke_subject_before(Some("https://idp.example.com"), "alice", SystemTime::now()).await?;
/// # let _ = layer;
/// # Ok::<(), tower_mcp_auth::store::StoreError>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct Revocations {
    running: Arc<Running>,
}

/// The shared state and the refresh task, aborted with the last handle.
struct Running {
    shared: Arc<Shared>,
    task: tokio::task::AbortHandle,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Shared {
    store: Arc<dyn StateStore>,
    snapshot: ArcSwap<RevocationList>,
    /// The generation the snapshot was loaded at.
    generation: Mutex<Option<Vec<u8>>>,
    list_key: String,
    gen_key: String,
    lock_key: String,
    max_lifetime: Duration,
    refresh: Duration,
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn random_token() -> Result<Vec<u8>, StoreError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|_| StoreError::InvalidArgument("no randomness for a revocation generation"))?;
    Ok(bytes.to_vec())
}

impl Shared {
    /// The `drop_after` of an entry made now.
    fn drop_after(&self, now: u64) -> u64 {
        now.saturating_add(self.max_lifetime.as_secs().max(1))
    }

    fn current_generation(&self) -> Option<Vec<u8>> {
        self.generation
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Makes `list` the snapshot, merged with the current one: revocations are never undone,
    /// only expire, so what this instance knows stays even if the store lost it (a restart
    /// without persistence; the next write stores it again) or a slower refresh finishes after
    /// a newer write.
    fn publish(&self, list: RevocationList, generation: Option<Vec<u8>>) {
        let now = unix_secs(SystemTime::now());
        self.snapshot.rcu(|current| {
            let mut next = list.clone();
            next.merge(RevocationList::clone(current));
            next.prune(now);
            next
        });
        *self.generation.lock().unwrap_or_else(|p| p.into_inner()) = generation;
    }

    /// Reloads the list if its generation changed.
    async fn refresh(&self) -> Result<(), StoreError> {
        let generation = self.store.get(&self.gen_key).await?;
        if generation.is_some() && generation == self.current_generation() {
            return Ok(());
        }
        let list = match self.store.get(&self.list_key).await? {
            Some(bytes) => RevocationList::decode(&bytes).unwrap_or_else(|| {
                tracing::warn!("the stored revocation list is not valid; keeping the snapshot");
                RevocationList::default()
            }),
            None => RevocationList::default(),
        };
        self.publish(list, generation);
        Ok(())
    }

    /// Adds `change` to the stored list under the writers' lock and publishes the result.
    async fn update(&self, change: impl FnOnce(&mut RevocationList)) -> Result<(), StoreError> {
        let token = random_token()?;
        let started = Instant::now();
        while !self
            .store
            .insert_if_absent(&self.lock_key, token.clone(), LOCK_TTL)
            .await?
        {
            if started.elapsed() >= LOCK_WAIT {
                return Err(StoreError::Timeout {
                    backend: "revocation lock",
                });
            }
            tokio::time::sleep(LOCK_RETRY).await;
        }
        let written = self.write_locked(change).await;
        // Release even after a failed write; a lost release only delays the next writer by
        // the lock's TTL.
        if let Err(e) = self.store.delete(&self.lock_key).await {
            tracing::warn!(error = %e, "could not release the revocation lock");
        }
        let (list, generation) = written?;
        self.publish(list, Some(generation));
        Ok(())
    }

    async fn write_locked(
        &self,
        change: impl FnOnce(&mut RevocationList),
    ) -> Result<(RevocationList, Vec<u8>), StoreError> {
        let mut list = match self.store.get(&self.list_key).await? {
            Some(bytes) => RevocationList::decode(&bytes).unwrap_or_default(),
            None => RevocationList::default(),
        };
        // What this instance knows is never dropped (for example a list lost by a store
        // restart is rebuilt from the snapshot).
        list.merge(RevocationList::clone(&self.snapshot.load()));
        change(&mut list);
        let now = unix_secs(SystemTime::now());
        list.prune(now);
        let ttl = Duration::from_secs(list.last_drop().saturating_sub(now)) + TTL_MARGIN;
        let generation = random_token()?;
        self.store.put(&self.list_key, list.encode(), ttl).await?;
        self.store
            .put(&self.gen_key, generation.clone(), ttl)
            .await?;
        Ok((list, generation))
    }

    async fn run(self: Arc<Self>) {
        let mut ticks =
            tokio::time::interval_at(tokio::time::Instant::now() + self.refresh, self.refresh);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Err(e) = self.refresh().await {
                tracing::warn!(error = %e, "could not refresh the token revocation list");
            }
        }
    }
}

impl Revocations {
    /// Starts configuring revocations kept in `store` (shared by every instance).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tower_mcp_auth::{bearer::Revocations, store::MemoryStore};
    /// let builder = Revocations::builder(Arc::new(MemoryStore::new()));
    /// ```
    pub fn builder(store: Arc<dyn StateStore>) -> RevocationsBuilder {
        RevocationsBuilder {
            store,
            prefix: DEFAULT_PREFIX.to_owned(),
            max_lifetime: DEFAULT_MAX_TOKEN_LIFETIME,
            refresh: DEFAULT_REVOCATION_REFRESH,
        }
    }

    /// Revokes the token whose `jti` claim is `jti`, on every instance (within one refresh).
    ///
    /// # Errors
    ///
    /// The store's error, or a timeout waiting for another writer; nothing was revoked.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use std::sync::Arc;
    /// use tower_mcp_auth::{bearer::Revocations, store::MemoryStore};
    /// let revocations = Revocations::builder(Arc::new(MemoryStore::new())).start().await?;
    /// revocations.revoke_jti("0b6f4c1e").await?;
    /// assert!(!revocations.is_empty());
    /// # Ok::<(), tower_mcp_auth::store::StoreError>(())
    /// # }).unwrap();
    /// ```
    pub async fn revoke_jti(&self, jti: &str) -> Result<(), StoreError> {
        let shared = &self.running.shared;
        let drop_after = shared.drop_after(unix_secs(SystemTime::now()));
        shared.update(|list| list.add_jti(jti, drop_after)).await
    }

    /// The kill-switch: revokes every token of `subject` (its `sub`, as issued by `issuer`,
    /// its `iss`; `None` for tokens without `iss`) issued at or before `before` (`iat`, whole
    /// seconds: tokens issued in that same second are revoked too). Tokens of the subject
    /// without `iat` are revoked whatever their age. Tokens issued later are accepted.
    ///
    /// # Errors
    ///
    /// The store's error, or a timeout waiting for another writer; nothing was revoked.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use std::sync::Arc;
    /// use std::time::SystemTime;
    /// use tower_mcp_auth::{bearer::Revocations, store::MemoryStore};
    /// let revocations = Revocations::builder(Arc::new(MemoryStore::new())).start().await?;
    /// revocations.revoke_subject_before(Some("https://idp.example.com"), "alice", SystemTime::now()).await?;
    /// # Ok::<(), tower_mcp_auth::store::StoreError>(())
    /// # }).unwrap();
    /// ```
    pub async fn revoke_subject_before(
        &self,
        issuer: Option<&str>,
        subject: &str,
        before: SystemTime,
    ) -> Result<(), StoreError> {
        let shared = &self.running.shared;
        let before = unix_secs(before);
        let cutoff = Cutoff {
            issuer: issuer.map(str::to_owned),
            before,
            drop_after: shared.drop_after(before),
        };
        shared.update(|list| list.add_cutoff(subject, cutoff)).await
    }

    /// Reloads the list from the store now (if it changed) instead of at the next refresh.
    ///
    /// # Errors
    ///
    /// The store's error; the snapshot is kept.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use std::sync::Arc;
    /// use tower_mcp_auth::{bearer::Revocations, store::MemoryStore};
    /// let revocations = Revocations::builder(Arc::new(MemoryStore::new())).start().await?;
    /// revocations.refresh_now().await?;
    /// # Ok::<(), tower_mcp_auth::store::StoreError>(())
    /// # }).unwrap();
    /// ```
    pub async fn refresh_now(&self) -> Result<(), StoreError> {
        self.running.shared.refresh().await
    }

    /// Whether nothing is revoked in the local snapshot (then requests pay nothing but one
    /// atomic load).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use std::sync::Arc;
    /// use tower_mcp_auth::{bearer::Revocations, store::MemoryStore};
    /// let revocations = Revocations::builder(Arc::new(MemoryStore::new())).start().await?;
    /// assert!(revocations.is_empty());
    /// # Ok::<(), tower_mcp_auth::store::StoreError>(())
    /// # }).unwrap();
    /// ```
    pub fn is_empty(&self) -> bool {
        self.running.shared.snapshot.load().is_empty()
    }

    /// Wraps `verifier`: tokens it accepts are refused (`invalid_token`) when revoked. Wrap
    /// the outermost verifier (around a [`CachedVerifier`](crate::bearer::CachedVerifier)),
    /// so cached tokens are checked too.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use std::sync::Arc;
    /// use tower_mcp_auth::{bearer::{BearerLayer, Revocations}, store::MemoryStore, JwtVerifier};
    /// let revocations = Revocations::builder(Arc::new(MemoryStore::new())).start().await?;
    /// let jwt = JwtVerifier::hs256(b"an-hs256-secret-that-is-32-bytes+").build().unwrap();
    /// let layer = BearerLayer::new(revocations.verifier(jwt));
    /// # let _ = layer;
    /// # Ok::<(), tower_mcp_auth::store::StoreError>(())
    /// # }).unwrap();
    /// ```
    pub fn verifier(&self, verifier: impl TokenVerifier) -> RevocationVerifier {
        RevocationVerifier::new(Arc::new(verifier), self.clone())
    }

    /// Whether `identity` (a verified token) is revoked, by the local snapshot.
    pub(super) fn revokes(&self, identity: &crate::Identity) -> bool {
        let snapshot = self.running.shared.snapshot.load();
        !snapshot.is_empty() && snapshot.revokes(identity)
    }
}

impl fmt::Debug for Revocations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = &self.running.shared;
        f.debug_struct("Revocations")
            .field("empty", &shared.snapshot.load().is_empty())
            .field("refresh", &shared.refresh)
            .field("max_token_lifetime", &shared.max_lifetime)
            .finish_non_exhaustive()
    }
}

/// Configures [`Revocations`]; see [`Revocations::builder`].
#[must_use]
pub struct RevocationsBuilder {
    store: Arc<dyn StateStore>,
    prefix: String,
    max_lifetime: Duration,
    refresh: Duration,
}

impl RevocationsBuilder {
    /// How long revocations are kept (default [`DEFAULT_MAX_TOKEN_LIFETIME`], 24 h): at least
    /// the longest lifetime of the tokens you accept. Zero is taken as 1 s.
    ///
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use tower_mcp_auth::{bearer::Revocations, store::MemoryStore};
    /// let builder = Revocations::builder(Arc::new(MemoryStore::new()))
    ///     .max_token_lifetime(Duration::from_secs(3600));
    /// ```
    pub fn max_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_lifetime = lifetime.max(Duration::from_secs(1));
        self
    }

    /// How often the local snapshot is refreshed (default [`DEFAULT_REVOCATION_REFRESH`],
    /// 1 s): the bound on how long a revocation takes to reach this instance. Zero is taken
    /// as 1 ms.
    ///
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use tower_mcp_auth::{bearer::Revocations, store::MemoryStore};
    /// let builder = Revocations::builder(Arc::new(MemoryStore::new()))
    ///     .refresh(Duration::from_millis(250));
    /// ```
    pub fn refresh(mut self, every: Duration) -> Self {
        self.refresh = every.max(Duration::from_millis(1));
        self
    }

    /// Prefix of the store keys (default `revocation:`), to keep several deployments apart
    /// in one store.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tower_mcp_auth::{bearer::Revocations, store::MemoryStore};
    /// let builder = Revocations::builder(Arc::new(MemoryStore::new())).key_prefix("tenant-a:revocation:");
    /// ```
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Loads the list once, then spawns the refresh task on the current Tokio runtime.
    ///
    /// # Errors
    ///
    /// The store's error from the first load.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use std::sync::Arc;
    /// use tower_mcp_auth::{bearer::Revocations, store::MemoryStore};
    /// let revocations = Revocations::builder(Arc::new(MemoryStore::new())).start().await?;
    /// # let _ = revocations;
    /// # Ok::<(), tower_mcp_auth::store::StoreError>(())
    /// # }).unwrap();
    /// ```
    pub async fn start(self) -> Result<Revocations, StoreError> {
        let p = &self.prefix;
        let shared = Arc::new(Shared {
            store: self.store,
            snapshot: ArcSwap::from_pointee(RevocationList::default()),
            generation: Mutex::new(None),
            list_key: format!("{p}list"),
            gen_key: format!("{p}gen"),
            lock_key: format!("{p}lock"),
            max_lifetime: self.max_lifetime,
            refresh: self.refresh,
        });
        shared.refresh().await?;
        let task = tokio::spawn(Arc::clone(&shared).run()).abort_handle();
        Ok(Revocations {
            running: Arc::new(Running { shared, task }),
        })
    }
}

impl fmt::Debug for RevocationsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevocationsBuilder")
            .field("prefix", &self.prefix)
            .field("max_token_lifetime", &self.max_lifetime)
            .field("refresh", &self.refresh)
            .finish_non_exhaustive()
    }
}
