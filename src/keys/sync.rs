//! [`KeySync`]: mirrors a [`KeyStore`] into an [`ApiKeyRegistry`], every few seconds.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::api_key::{self, ApiKeyRegistry, KeyHash, KeyLookupError, StoredKey};
use crate::deferred::Deferred;
use crate::prehashed::PassThrough;

use super::error::KeysError;
use super::store::KeyStore;
use super::usage::UsageTable;

/// How often [`KeySync`] checks the store for changes unless configured otherwise: the bound
/// within which a revoke (or a new key) made on one instance is effective on every instance.
///
/// ```
/// # use std::time::Duration;
/// assert_eq!(tower_mcp_auth::keys::DEFAULT_SYNC_INTERVAL, Duration::from_secs(2));
/// ```
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(2);

/// How often [`KeySync`] writes last-used times unless configured otherwise.
///
/// ```
/// # use std::time::Duration;
/// assert_eq!(tower_mcp_auth::keys::DEFAULT_USAGE_FLUSH_INTERVAL, Duration::from_secs(30));
/// ```
pub const DEFAULT_USAGE_FLUSH_INTERVAL: Duration = Duration::from_secs(30);

/// Keeps an [`ApiKeyRegistry`] in step with a [`KeyStore`]: the server reads keys from the
/// registry (no store round trip per request), and a Tokio task polls the store's
/// [`revision`](KeyStore::revision) every [`interval`](KeySyncBuilder::interval) (default
/// [`DEFAULT_SYNC_INTERVAL`], 2 s) and, when it changed, loads the keys into the registry
/// through its own mutation methods.
///
/// **Propagation bound**: a key created, rotated or revoked through the store (on any
/// instance, or with `examples/keys.rs`) is accepted or refused by every instance within one
/// interval plus one load. While the store is unreachable the registry keeps the last keys
/// it loaded (and logs a warning each interval).
///
/// Last-used times: [`key_lookup`](Self::key_lookup) gives the request path a lookup that
/// sets a flag per key; every [`usage_flush_interval`](KeySyncBuilder::usage_flush_interval)
/// (default 30 s) the task writes the flagged keys in one [`record_use`](KeyStore::record_use)
/// batch.
///
/// The task stops when the last clone of the `KeySync` and of its
/// [`key_lookup`](Self::key_lookup) is dropped.
///
/// ```
/// use std::time::Duration;
/// use tower_mcp_auth::{ApiKeyRegistry, ApiKeySpec, api_key::{ApiKeyLayer, KeyHash}};
/// use tower_mcp_auth::keys::{KeyStore, KeySync, MemoryKeyStore};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = MemoryKeyStore::new();
/// let created = store.create(ApiKeySpec::new("ci").user_id("alice")).await?;
///
/// let registry = ApiKeyRegistry::builder().build(); // or ApiKeyRegistry::from_env()
/// let sync = KeySync::builder(store.clone(), registry.clone())
///     .interval(Duration::from_secs(1))
///     .start()
///     .await?; // the first load is done here
/// assert!(registry.get(&created.hash()).is_some());
///
/// let layer = ApiKeyLayer::new(sync.key_lookup());
/// # let _ = layer;
/// # Ok::<(), tower_mcp_auth::keys::KeysError>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct KeySync {
    shared: Arc<Running>,
}

/// The sync's state and its task; dropping the last holder stops the task.
struct Running {
    worker: Arc<Worker>,
    task: tokio::task::AbortHandle,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the task and [`KeySync::sync_now`] share.
struct Worker {
    store: Arc<dyn KeyStore>,
    registry: ApiKeyRegistry,
    usage: UsageTable,
    state: tokio::sync::Mutex<Synced>,
    interval: Duration,
    flush_interval: Duration,
}

/// What the last load brought.
#[derive(Default)]
struct Synced {
    revision: Option<u64>,
    hashes: HashSet<KeyHash, PassThrough>,
}

impl Worker {
    /// Loads the store into the registry if its revision changed. Returns whether it did.
    async fn sync(&self) -> Result<bool, KeysError> {
        let mut synced = self.state.lock().await;
        let revision = self.store.revision().await?;
        if synced.revision == Some(revision) {
            return Ok(false);
        }
        let records = self.store.load().await?;
        let hashes: HashSet<KeyHash, PassThrough> = records.iter().map(|r| r.hash).collect();
        let gone: Vec<KeyHash> = synced.hashes.difference(&hashes).copied().collect();
        let upserts: Vec<(KeyHash, StoredKey)> = records
            .iter()
            .map(|r| (r.hash, r.info.to_stored()))
            .collect();
        self.registry.apply(upserts, gone);
        self.usage.reload(&records);
        tracing::debug!(
            keys = records.len(),
            revision,
            "API keys synced from the key store"
        );
        *synced = Synced {
            revision: Some(revision),
            hashes,
        };
        Ok(true)
    }

    /// Writes the keys used since the last flush.
    async fn flush(&self) -> Result<usize, KeysError> {
        let used = self.usage.take_used();
        if used.is_empty() {
            return Ok(0);
        }
        let batch = UsageTable::batch(&used, SystemTime::now());
        match self.store.record_use(batch).await {
            Ok(()) => Ok(used.len()),
            Err(e) => {
                UsageTable::restore(&used);
                Err(e)
            }
        }
    }

    async fn run(self: Arc<Self>) {
        let mut ticks =
            tokio::time::interval_at(tokio::time::Instant::now() + self.interval, self.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut flushed = Instant::now();
        loop {
            ticks.tick().await;
            if let Err(e) = self.sync().await {
                tracing::warn!(error = %e, "could not sync API keys; serving the last loaded keys");
            }
            if flushed.elapsed() >= self.flush_interval {
                flushed = Instant::now();
                if let Err(e) = self.flush().await {
                    tracing::warn!(error = %e, "could not record API key usage; will retry");
                }
            }
        }
    }
}

impl KeySync {
    /// Starts configuring a sync of `store` into `registry` (which may already hold keys,
    /// for example from `MCP_API_KEYS`: the sync adds, changes and removes only the keys it
    /// loaded).
    ///
    /// ```
    /// use tower_mcp_auth::{ApiKeyRegistry, keys::{KeySync, MemoryKeyStore}};
    /// let builder = KeySync::builder(MemoryKeyStore::new(), ApiKeyRegistry::builder().build());
    /// ```
    pub fn builder(store: impl KeyStore, registry: ApiKeyRegistry) -> KeySyncBuilder {
        Self::builder_shared(Arc::new(store), registry)
    }

    /// [`builder`](Self::builder) for a store shared with other parts of the application.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tower_mcp_auth::{ApiKeyRegistry, keys::{KeyStore, KeySync, MemoryKeyStore}};
    /// let store: Arc<dyn KeyStore> = Arc::new(MemoryKeyStore::new());
    /// let builder = KeySync::builder_shared(store, ApiKeyRegistry::builder().build());
    /// ```
    pub fn builder_shared(store: Arc<dyn KeyStore>, registry: ApiKeyRegistry) -> KeySyncBuilder {
        KeySyncBuilder {
            store,
            registry,
            interval: DEFAULT_SYNC_INTERVAL,
            flush_interval: DEFAULT_USAGE_FLUSH_INTERVAL,
        }
    }

    /// The registry kept in step.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use tower_mcp_auth::{ApiKeyRegistry, keys::{KeySync, MemoryKeyStore}};
    /// let sync = KeySync::builder(MemoryKeyStore::new(), ApiKeyRegistry::builder().build()).start().await?;
    /// assert!(sync.registry().is_empty());
    /// # Ok::<(), tower_mcp_auth::keys::KeysError>(())
    /// # }).unwrap();
    /// ```
    pub fn registry(&self) -> &ApiKeyRegistry {
        &self.shared.worker.registry
    }

    /// The lookup to give [`ApiKeyLayer`](crate::api_key::ApiKeyLayer): the registry, plus
    /// the last-used flag of each key the store holds. Keeps the sync running while held.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use tower_mcp_auth::{ApiKeyRegistry, api_key::ApiKeyLayer, keys::{KeySync, MemoryKeyStore}};
    /// let sync = KeySync::builder(MemoryKeyStore::new(), ApiKeyRegistry::builder().build()).start().await?;
    /// let layer = ApiKeyLayer::new(sync.key_lookup());
    /// # let _ = layer;
    /// # Ok::<(), tower_mcp_auth::keys::KeysError>(())
    /// # }).unwrap();
    /// ```
    pub fn key_lookup(&self) -> SyncedKeys {
        SyncedKeys {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Checks the store now instead of waiting for the next interval (after an operator
    /// change made in this process, or in tests). Returns whether keys were loaded.
    ///
    /// # Errors
    ///
    /// The store's error; the registry is left as it was.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use tower_mcp_auth::{ApiKeyRegistry, ApiKeySpec, keys::{KeyStore, KeySync, MemoryKeyStore}};
    /// let store = MemoryKeyStore::new();
    /// let sync = KeySync::builder(store.clone(), ApiKeyRegistry::builder().build()).start().await?;
    /// store.create(ApiKeySpec::new("ci")).await?;
    /// assert!(sync.sync_now().await?);
    /// assert!(!sync.sync_now().await?, "nothing changed since");
    /// # Ok::<(), tower_mcp_auth::keys::KeysError>(())
    /// # }).unwrap();
    /// ```
    pub async fn sync_now(&self) -> Result<bool, KeysError> {
        self.shared.worker.sync().await
    }

    /// Writes the last-used times collected so far now (for example at shutdown). Returns
    /// how many keys were written.
    ///
    /// # Errors
    ///
    /// The store's error; the flags are kept for the next flush.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use tower_mcp_auth::{ApiKeyRegistry, keys::{KeySync, MemoryKeyStore}};
    /// let sync = KeySync::builder(MemoryKeyStore::new(), ApiKeyRegistry::builder().build()).start().await?;
    /// assert_eq!(sync.flush_usage().await?, 0);
    /// # Ok::<(), tower_mcp_auth::keys::KeysError>(())
    /// # }).unwrap();
    /// ```
    pub async fn flush_usage(&self) -> Result<usize, KeysError> {
        self.shared.worker.flush().await
    }
}

impl fmt::Debug for KeySync {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = &self.shared.worker;
        f.debug_struct("KeySync")
            .field("registry", &w.registry)
            .field("interval", &w.interval)
            .field("usage_flush_interval", &w.flush_interval)
            .finish_non_exhaustive()
    }
}

/// Configures a [`KeySync`]; see [`KeySync::builder`].
#[must_use]
pub struct KeySyncBuilder {
    store: Arc<dyn KeyStore>,
    registry: ApiKeyRegistry,
    interval: Duration,
    flush_interval: Duration,
}

impl KeySyncBuilder {
    /// How often the store's revision is checked (default [`DEFAULT_SYNC_INTERVAL`]): the
    /// bound on how long a revoke takes to reach this instance. Zero is taken as 1 ms.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_mcp_auth::{ApiKeyRegistry, keys::{KeySync, MemoryKeyStore}};
    /// let builder = KeySync::builder(MemoryKeyStore::new(), ApiKeyRegistry::builder().build())
    ///     .interval(Duration::from_millis(500));
    /// ```
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval.max(Duration::from_millis(1));
        self
    }

    /// How often last-used times are written (default [`DEFAULT_USAGE_FLUSH_INTERVAL`]),
    /// checked at each sync tick: the resolution of [`KeyInfo::last_used_at`](super::KeyInfo::last_used_at).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_mcp_auth::{ApiKeyRegistry, keys::{KeySync, MemoryKeyStore}};
    /// let builder = KeySync::builder(MemoryKeyStore::new(), ApiKeyRegistry::builder().build())
    ///     .usage_flush_interval(Duration::from_secs(60));
    /// ```
    pub fn usage_flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = interval;
        self
    }

    /// Loads the keys once (so the server starts with them), then spawns the sync task on
    /// the current Tokio runtime.
    ///
    /// # Errors
    ///
    /// The store's error from the first load: a server should not start without its keys.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use tower_mcp_auth::{ApiKeyRegistry, keys::{KeySync, MemoryKeyStore}};
    /// let sync = KeySync::builder(MemoryKeyStore::new(), ApiKeyRegistry::builder().build()).start().await?;
    /// # let _ = sync;
    /// # Ok::<(), tower_mcp_auth::keys::KeysError>(())
    /// # }).unwrap();
    /// ```
    pub async fn start(self) -> Result<KeySync, KeysError> {
        let worker = Arc::new(Worker {
            store: self.store,
            registry: self.registry,
            usage: UsageTable::default(),
            state: tokio::sync::Mutex::new(Synced::default()),
            interval: self.interval,
            flush_interval: self.flush_interval,
        });
        worker.sync().await?;
        let task = tokio::spawn(Arc::clone(&worker).run()).abort_handle();
        Ok(KeySync {
            shared: Arc::new(Running { worker, task }),
        })
    }
}

impl fmt::Debug for KeySyncBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySyncBuilder")
            .field("interval", &self.interval)
            .field("usage_flush_interval", &self.flush_interval)
            .finish_non_exhaustive()
    }
}

/// The request-path lookup of a [`KeySync`]: answers from its registry (ready, no
/// allocation) and flags the key used. See [`KeySync::key_lookup`].
///
/// ```
/// use tower_mcp_auth::{ApiKeyRegistry, ApiKeySpec, api_key::KeyLookup as _};
/// use tower_mcp_auth::keys::{KeyStore, KeySync, MemoryKeyStore};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = MemoryKeyStore::new();
/// let key = store.create(ApiKeySpec::new("ci")).await?;
/// let sync = KeySync::builder(store, ApiKeyRegistry::builder().build()).start().await?;
/// let lookup = sync.key_lookup();
/// assert!(lookup.find(&key.hash()).await.unwrap().is_some());
/// assert_eq!(sync.flush_usage().await?, 1, "the lookup flagged the key used");
/// # Ok::<(), tower_mcp_auth::keys::KeysError>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct SyncedKeys {
    shared: Arc<Running>,
}

impl SyncedKeys {
    /// Flags `key` used if it will be accepted (the clock is read only for keys that
    /// expire).
    fn mark_if_usable(&self, hash: &KeyHash, key: Option<&StoredKey>) {
        let usable =
            |k: &StoredKey| !k.revoked && k.expires_at.is_none_or(|at| at > SystemTime::now());
        if key.is_some_and(usable) {
            self.shared.worker.usage.mark(hash);
        }
    }
}

impl api_key::KeyLookup for SyncedKeys {
    fn find(&self, hash: &KeyHash) -> Deferred<Result<Option<StoredKey>, KeyLookupError>> {
        let found = self.shared.worker.registry.get(hash);
        self.mark_if_usable(hash, found.as_ref());
        Deferred::ready(Ok(found))
    }

    /// Through the registry's verified-key cache: no SHA-256 for a key seen since the last
    /// sync that changed something.
    fn find_key(&self, presented: &str) -> Deferred<Result<Option<StoredKey>, KeyLookupError>> {
        let found = self.shared.worker.registry.find_presented(presented);
        Deferred::ready(Ok(found.map(|(hash, key)| {
            self.mark_if_usable(&hash, Some(&key));
            key
        })))
    }
}

impl fmt::Debug for SyncedKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncedKeys")
            .field("registry", &self.shared.worker.registry)
            .finish()
    }
}
