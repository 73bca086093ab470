//! [`MemoryStore`]: the embedded, bounded, sharded store (always available). The behaviour
//! users rely on (bounds, eviction) is documented on the type.
//!
//! # Why `Mutex` shards over a `hashbrown::HashTable` (and not `dashmap`)
//!
//! * One hash per call: the key is hashed once (SipHash-1-3 with a random per-process key,
//!   like `std`'s `HashMap`, because keys are attacker-chosen IPs and identities); bits 32..
//!   pick the shard and the same value drives the table lookup.
//! * Compact entries: a GCRA key costs its string plus 24 bytes (`Box<str>` + TAT) plus one
//!   control byte; no `Arc` or atomic cell per key as in a `dashmap` of states.
//! * Eviction needs a whole-shard view under one lock (find the soonest-to-expire entries),
//!   which a plain `Mutex` gives directly. Critical sections are a few dozen nanoseconds and
//!   never await, so an uncontended futex mutex costs less than a reader-writer lock.

use std::fmt;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use hashbrown::HashTable;

use super::error::check_ttl;
use super::{Clock, Quota, RateDecision, StateStore, StoreError, StoreResult, SystemClock};
use crate::deferred::Deferred;

/// Default cap on stored entries (GCRA keys plus values).
const DEFAULT_MAX_ENTRIES: usize = 1_000_000;
/// Default number of shards: enough that contention is negligible on any common core count
/// and that one shard's eviction pass stays short.
const DEFAULT_SHARDS: usize = 64;
/// Upper bound on shards (more buys nothing but memory).
const MAX_SHARDS: usize = 1 << 16;
/// Buckets of each table examined by the incremental sweep on every insert of a new key.
const SWEEP_STEP: usize = 8;

/// An in-process [`StateStore`]: sharded, bounded, swept on writes, with an injectable clock.
///
/// Cloning is cheap and clones share the same data. Every answer is ready at once (no
/// allocation, no boxed future); a tracked GCRA key costs about 65 bytes of heap plus its
/// string at a million keys.
///
/// # Bounds and eviction
///
/// The cap ([`max_entries`](MemoryStoreBuilder::max_entries), default 1,000,000) is split
/// evenly between shards: each holds at most `max_entries / shards` entries (GCRA keys and
/// values together), so the store never holds more than `max_entries`, whatever the traffic.
/// When an insert finds its shard full:
///
/// 1. every expired entry in the shard is dropped;
/// 2. if that did not free 1/16 of the shard, the live entries closest to expiry are dropped
///    until the shard is 1/16 below its share. A GCRA key's expiry is its TAT, the moment its
///    bucket is full again (evicting it loses the least information); a value's is its TTL.
///    Batching keeps eviction amortised O(1) per insert under a flood of new keys.
///
/// Besides, every insert of a new key sweeps a few hash buckets of its shard (a cursor walks
/// the table), so expired entries are reclaimed steadily without a background thread.
/// [`purge_expired`](Self::purge_expired) drops them all at once.
///
/// ```
/// use std::time::Duration;
/// use tower_mcp_auth::store::{ManualClock, MemoryStore, Quota, StateStore};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let clock = ManualClock::new();
/// let store = MemoryStore::builder().max_entries(10_000).clock(clock.clone()).build()?;
/// let quota = Quota::per_second(1)?;
/// assert!(store.gcra("k", quota, 1).await?.allowed);
/// assert!(!store.gcra("k", quota, 1).await?.allowed);
/// clock.advance(Duration::from_secs(1));
/// assert!(store.gcra("k", quota, 1).await?.allowed);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub struct MemoryStore<C: Clock = SystemClock> {
    inner: Arc<Inner<C>>,
}

impl<C: Clock> Clone for MemoryStore<C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<C> {
    shards: Box<[Shard]>,
    hasher: RandomState,
    shard_mask: u64,
    shard_cap: usize,
    max_entries: usize,
    clock: C,
}

/// One lock per cache line, so shards never share one.
#[repr(align(64))]
struct Shard(Mutex<Tables>);

#[derive(Default)]
struct Tables {
    gcra: HashTable<GcraEntry>,
    values: HashTable<ValueEntry>,
    gcra_cursor: usize,
    values_cursor: usize,
}

struct GcraEntry {
    key: Box<str>,
    /// Theoretical arrival time, in clock nanoseconds. Also the entry's expiry: once it is in
    /// the past the key is indistinguishable from an absent one.
    tat: u64,
}

struct ValueEntry {
    key: Box<str>,
    value: Box<[u8]>,
    expires_at: u64,
}

impl MemoryStore<SystemClock> {
    /// A store with the default cap (1,000,000 entries), 64 shards and the system clock.
    ///
    /// ```
    /// use tower_mcp_auth::store::MemoryStore;
    /// let store = MemoryStore::new();
    /// assert_eq!(store.max_entries(), 1_000_000);
    /// ```
    pub fn new() -> Self {
        Self::builder()
            .build()
            .unwrap_or_else(|_| unreachable!("the default configuration is valid"))
    }

    /// Starts configuring a store.
    ///
    /// ```
    /// use tower_mcp_auth::store::MemoryStore;
    /// let store = MemoryStore::builder().max_entries(50_000).shards(16).build()?;
    /// assert_eq!(store.max_entries(), 50_000);
    /// # Ok::<(), tower_mcp_auth::store::StoreError>(())
    /// ```
    pub fn builder() -> MemoryStoreBuilder {
        MemoryStoreBuilder {
            max_entries: DEFAULT_MAX_ENTRIES,
            shards: None,
            clock: SystemClock,
        }
    }
}

impl Default for MemoryStore<SystemClock> {
    fn default() -> Self {
        Self::new()
    }
}

/// Configures a [`MemoryStore`]; [`build`](Self::build) validates.
///
/// ```
/// use tower_mcp_auth::store::{ManualClock, MemoryStore};
///
/// let store = MemoryStore::builder()
///     .max_entries(100_000)
///     .shards(32)
///     .clock(ManualClock::new())
///     .build()?;
/// # Ok::<(), tower_mcp_auth::store::StoreError>(())
/// ```
#[derive(Debug)]
#[must_use]
pub struct MemoryStoreBuilder<C = SystemClock> {
    max_entries: usize,
    shards: Option<usize>,
    clock: C,
}

impl<C: Clock> MemoryStoreBuilder<C> {
    /// Cap on stored entries, GCRA keys and values together (default 1,000,000). Must be at
    /// least 1.
    ///
    /// ```
    /// use tower_mcp_auth::store::MemoryStore;
    /// assert!(MemoryStore::builder().max_entries(0).build().is_err());
    /// ```
    pub fn max_entries(mut self, max_entries: usize) -> Self {
        self.max_entries = max_entries;
        self
    }

    /// Number of shards, rounded up to a power of two (default 64, lowered to fit a small
    /// `max_entries`). Must be between 1 and 65,536 and at most `max_entries`.
    ///
    /// ```
    /// use tower_mcp_auth::store::MemoryStore;
    /// assert_eq!(MemoryStore::builder().shards(10).build()?.shard_count(), 16);
    /// assert!(MemoryStore::builder().max_entries(4).shards(8).build().is_err());
    /// # Ok::<(), tower_mcp_auth::store::StoreError>(())
    /// ```
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// The time source (default [`SystemClock`]); tests pass a
    /// [`ManualClock`](super::ManualClock).
    ///
    /// ```
    /// use tower_mcp_auth::store::{ManualClock, MemoryStore};
    /// let store = MemoryStore::builder().clock(ManualClock::new()).build()?;
    /// # Ok::<(), tower_mcp_auth::store::StoreError>(())
    /// ```
    pub fn clock<C2: Clock>(self, clock: C2) -> MemoryStoreBuilder<C2> {
        MemoryStoreBuilder {
            max_entries: self.max_entries,
            shards: self.shards,
            clock,
        }
    }

    /// Validates the configuration and builds the store.
    ///
    /// ```
    /// use tower_mcp_auth::store::MemoryStore;
    /// let store = MemoryStore::builder().max_entries(10).build()?;
    /// assert!(store.shard_count() <= 10);
    /// # Ok::<(), tower_mcp_auth::store::StoreError>(())
    /// ```
    pub fn build(self) -> Result<MemoryStore<C>, StoreError> {
        let max_entries = self.max_entries;
        if max_entries == 0 {
            return Err(StoreError::Config("max_entries must be at least 1".into()));
        }
        let shards = match self.shards {
            Some(0) => return Err(StoreError::Config("shards must be at least 1".into())),
            Some(n) if n > MAX_SHARDS => {
                return Err(StoreError::Config("shards must be at most 65536".into()))
            }
            Some(n) if n.next_power_of_two() > max_entries => {
                return Err(StoreError::Config(
                    "shards (rounded up to a power of two) must not exceed max_entries".into(),
                ))
            }
            Some(n) => n.next_power_of_two(),
            // Largest power of two <= max_entries, so every shard can hold at least one entry.
            None => DEFAULT_SHARDS.min(1 << max_entries.ilog2()),
        };
        // Pay the clock's one-time set-up (SystemClock calibrates) now, not on a request.
        self.clock.now_nanos();
        let shards_vec: Vec<Shard> = (0..shards)
            .map(|_| Shard(Mutex::new(Tables::default())))
            .collect();
        Ok(MemoryStore {
            inner: Arc::new(Inner {
                shards: shards_vec.into_boxed_slice(),
                hasher: RandomState::new(),
                shard_mask: shards as u64 - 1,
                shard_cap: max_entries / shards,
                max_entries,
                clock: self.clock,
            }),
        })
    }
}

impl<C: Clock> MemoryStore<C> {
    /// Entries currently held, GCRA keys and values together, including expired ones not yet
    /// swept. Never more than [`max_entries`](Self::max_entries).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_mcp_auth::store::{MemoryStore, StateStore};
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// store.put("a", vec![1], Duration::from_secs(1)).await?;
    /// assert_eq!(store.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn len(&self) -> usize {
        self.inner.shards.iter().map(|s| lock(s).len()).sum()
    }

    /// `true` when no entry is held.
    ///
    /// ```
    /// use tower_mcp_auth::store::MemoryStore;
    /// assert!(MemoryStore::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The configured cap on entries.
    ///
    /// ```
    /// use tower_mcp_auth::store::MemoryStore;
    /// assert_eq!(MemoryStore::builder().max_entries(64).build()?.max_entries(), 64);
    /// # Ok::<(), tower_mcp_auth::store::StoreError>(())
    /// ```
    pub fn max_entries(&self) -> usize {
        self.inner.max_entries
    }

    /// The number of shards.
    ///
    /// ```
    /// use tower_mcp_auth::store::MemoryStore;
    /// assert_eq!(MemoryStore::new().shard_count(), 64);
    /// ```
    pub fn shard_count(&self) -> usize {
        self.inner.shards.len()
    }

    /// Drops every expired entry now (one shard lock at a time) and returns how many went.
    /// Never required: inserts sweep incrementally. Useful before measuring or snapshotting.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_mcp_auth::store::{ManualClock, MemoryStore, StateStore};
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let clock = ManualClock::new();
    /// let store = MemoryStore::builder().clock(clock.clone()).build()?;
    /// store.put("a", vec![1], Duration::from_secs(1)).await?;
    /// clock.advance(Duration::from_secs(2));
    /// assert_eq!(store.purge_expired(), 1);
    /// assert!(store.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn purge_expired(&self) -> usize {
        let now = self.inner.clock.now_nanos();
        self.inner.shards.iter().map(|s| lock(s).purge(now)).sum()
    }

    #[inline]
    fn hash(&self, key: &str) -> u64 {
        hash_key(&self.inner.hasher, key)
    }

    /// The shard for a hash. Bits 32.. are independent of the bits hashbrown uses (the low
    /// bits pick the bucket, the top 7 are the control byte) at any realistic shard size.
    #[inline]
    fn shard(&self, hash: u64) -> MutexGuard<'_, Tables> {
        // Cannot truncate: the mask is below the shard count, a usize.
        lock(&self.inner.shards[((hash >> 32) & self.inner.shard_mask) as usize])
    }

    fn expiry(&self, now: u64, ttl: Duration) -> u64 {
        now.saturating_add(u64::try_from(ttl.as_nanos()).unwrap_or(u64::MAX))
    }
}

impl<C: Clock> StateStore for MemoryStore<C> {
    #[inline]
    fn gcra_apply(
        &self,
        key: &str,
        quota: Quota,
        cost: u32,
        commit: bool,
    ) -> StoreResult<RateDecision> {
        let gcra = quota.gcra_nanos();
        let hash = self.hash(key);
        let now = self.inner.clock.now_nanos();
        let mut tables = self.shard(hash);
        if let Some(entry) = tables.gcra.find_mut(hash, |e| key_eq(&e.key, key)) {
            let step = gcra.step(Some(entry.tat), now, cost);
            if let (true, Some(tat)) = (commit, step.new_tat) {
                entry.tat = tat;
            }
            return Deferred::ready(Ok(step.decision));
        }
        let step = gcra.step(None, now, cost);
        if let (true, Some(tat)) = (commit, step.new_tat) {
            tables.make_room(now, self.inner.shard_cap);
            let entry = GcraEntry {
                key: key.into(),
                tat,
            };
            tables
                .gcra
                .insert_unique(hash, entry, |e| hash_key(&self.inner.hasher, &e.key));
        }
        Deferred::ready(Ok(step.decision))
    }

    fn gcra_release(&self, key: &str, quota: Quota, cost: u32) -> StoreResult<()> {
        let back = quota.gcra_nanos().interval.saturating_mul(u64::from(cost));
        let hash = self.hash(key);
        let mut tables = self.shard(hash);
        // An absent key is a full bucket: nothing to give back. A TAT moved into the past
        // is a full bucket too, and is swept like any other.
        if let Some(entry) = tables.gcra.find_mut(hash, |e| key_eq(&e.key, key)) {
            entry.tat = entry.tat.saturating_sub(back);
        }
        Deferred::ready(Ok(()))
    }

    fn insert_if_absent(&self, key: &str, value: Vec<u8>, ttl: Duration) -> StoreResult<bool> {
        Deferred::ready(self.store_value(key, value, ttl, true))
    }

    fn take(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let hash = self.hash(key);
        let now = self.inner.clock.now_nanos();
        let mut tables = self.shard(hash);
        let taken = match tables.values.find_entry(hash, |e| key_eq(&e.key, key)) {
            Ok(entry) => {
                let (entry, _) = entry.remove();
                (entry.expires_at > now).then(|| entry.value.into_vec())
            }
            Err(_) => None,
        };
        Deferred::ready(Ok(taken))
    }

    fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let hash = self.hash(key);
        let now = self.inner.clock.now_nanos();
        let mut tables = self.shard(hash);
        let found = match tables.values.find_entry(hash, |e| key_eq(&e.key, key)) {
            Ok(entry) if entry.get().expires_at > now => Some(entry.get().value.to_vec()),
            // Expired: reclaim it now, we hold the lock anyway.
            Ok(entry) => {
                entry.remove();
                None
            }
            Err(_) => None,
        };
        Deferred::ready(Ok(found))
    }

    fn put(&self, key: &str, value: Vec<u8>, ttl: Duration) -> StoreResult<()> {
        Deferred::ready(self.store_value(key, value, ttl, false).map(drop))
    }

    fn delete(&self, key: &str) -> StoreResult<bool> {
        let hash = self.hash(key);
        let now = self.inner.clock.now_nanos();
        let mut tables = self.shard(hash);
        let removed = match tables.values.find_entry(hash, |e| key_eq(&e.key, key)) {
            Ok(entry) => entry.remove().0.expires_at > now,
            Err(_) => false,
        };
        Deferred::ready(Ok(removed))
    }
}

impl<C: Clock> MemoryStore<C> {
    /// `put` (`if_absent == false`) and `insert_if_absent`: stores `value` unless
    /// `if_absent` and a live value is there. Returns whether it stored.
    fn store_value(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
        if_absent: bool,
    ) -> Result<bool, StoreError> {
        check_ttl(ttl)?;
        let hash = self.hash(key);
        let now = self.inner.clock.now_nanos();
        let expires_at = self.expiry(now, ttl);
        let mut tables = self.shard(hash);
        if let Some(entry) = tables.values.find_mut(hash, |e| key_eq(&e.key, key)) {
            // An expired value counts as absent.
            if if_absent && entry.expires_at > now {
                return Ok(false);
            }
            entry.value = value.into_boxed_slice();
            entry.expires_at = expires_at;
            return Ok(true);
        }
        self.insert_value(&mut tables, hash, key, value, expires_at, now);
        Ok(true)
    }

    fn insert_value(
        &self,
        tables: &mut Tables,
        hash: u64,
        key: &str,
        value: Vec<u8>,
        expires_at: u64,
        now: u64,
    ) {
        tables.make_room(now, self.inner.shard_cap);
        let entry = ValueEntry {
            key: key.into(),
            value: value.into_boxed_slice(),
            expires_at,
        };
        tables
            .values
            .insert_unique(hash, entry, |e| hash_key(&self.inner.hasher, &e.key));
    }
}

impl<C: Clock> fmt::Debug for MemoryStore<C> {
    // Never prints keys or values: they can be token hashes or OAuth state.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("len", &self.len())
            .field("max_entries", &self.inner.max_entries)
            .field("shards", &self.inner.shards.len())
            .finish_non_exhaustive()
    }
}

/// The key's bytes in one `write` (`str`'s own `Hash` adds a second call for a terminator,
/// which only matters for composite keys; equal hashes are always confirmed by comparing the
/// keys).
#[inline]
fn hash_key(hasher: &RandomState, key: &str) -> u64 {
    let mut h = hasher.build_hasher();
    h.write(key.as_bytes());
    h.finish()
}

/// Key equality without a `memcmp` call: the comparison runs once per lookup (hashbrown's
/// control bytes filter out other keys first), and for the short keys rate limiting uses
/// (IPs, ids, hashes) word-sized compares inline beat the library call.
#[inline]
fn key_eq(stored: &str, key: &str) -> bool {
    let (a, b) = (stored.as_bytes(), key.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let (a_words, a_tail) = a.as_chunks::<8>();
    let (b_words, b_tail) = b.as_chunks::<8>();
    a_words
        .iter()
        .zip(b_words)
        .all(|(x, y)| u64::from_ne_bytes(*x) == u64::from_ne_bytes(*y))
        && a_tail.iter().zip(b_tail).all(|(x, y)| x == y)
}

/// A poisoned shard is still consistent (no operation can panic half-way through a table
/// update), so recover it rather than propagate a panic into request handling.
#[inline]
fn lock(shard: &Shard) -> MutexGuard<'_, Tables> {
    shard.0.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Tables {
    fn len(&self) -> usize {
        self.gcra.len() + self.values.len()
    }

    /// Called before inserting a new key: one incremental sweep step, then eviction if the
    /// shard is at its cap.
    fn make_room(&mut self, now: u64, cap: usize) {
        self.sweep_step(now);
        if self.len() >= cap {
            self.evict(now, cap);
        }
    }

    /// Examines the next [`SWEEP_STEP`] buckets of each table and drops expired entries.
    fn sweep_step(&mut self, now: u64) {
        self.gcra_cursor = sweep(&mut self.gcra, self.gcra_cursor, |e| e.tat <= now);
        self.values_cursor = sweep(&mut self.values, self.values_cursor, |e| {
            e.expires_at <= now
        });
    }

    fn purge(&mut self, now: u64) -> usize {
        let before = self.len();
        self.gcra.retain(|e| e.tat > now);
        self.values.retain(|e| e.expires_at > now);
        before - self.len()
    }

    /// The eviction rule from the module docs: drop expired entries; if that freed less than
    /// 1/16 of the shard, drop the soonest-to-expire until the shard is 1/16 below its cap.
    #[cold]
    fn evict(&mut self, now: u64, cap: usize) {
        let target = cap - (cap / 16).max(1);
        // One read pass: the expiries of the live entries (expired ones go regardless).
        let live: Vec<u64> = self
            .gcra
            .iter()
            .map(|e| e.tat)
            .chain(self.values.iter().map(|e| e.expires_at))
            .filter(|&expiry| expiry > now)
            .collect();
        let excess = live.len().saturating_sub(target);
        let (threshold, mut ties) = match excess {
            0 => (0, 0),
            _ => {
                let mut live = live;
                let (below, &mut threshold, _) = live.select_nth_unstable(excess - 1);
                // Everything strictly before the threshold goes; ties at the threshold go
                // until `excess` live entries are gone in total.
                let before = below.iter().filter(|&&e| e < threshold).count();
                (threshold, excess - before)
            }
        };
        // One write pass per table.
        let mut keep = |expiry: u64| {
            if expiry <= now || expiry < threshold {
                false
            } else if expiry == threshold && ties > 0 {
                ties -= 1;
                false
            } else {
                true
            }
        };
        self.gcra.retain(|e| keep(e.tat));
        self.values.retain(|e| keep(e.expires_at));
    }
}

/// One sweep step over `table` from bucket `cursor`; returns the next cursor.
fn sweep<T>(table: &mut HashTable<T>, mut cursor: usize, expired: impl Fn(&T) -> bool) -> usize {
    let buckets = table.num_buckets();
    for _ in 0..SWEEP_STEP.min(buckets) {
        if cursor >= buckets {
            cursor = 0;
        }
        if let Ok(entry) = table.get_bucket_entry(cursor) {
            if expired(entry.get()) {
                entry.remove();
            }
        }
        cursor += 1;
    }
    cursor
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ManualClock;

    fn ready<T>(d: Deferred<T>) -> T {
        match d.try_into_ready() {
            Ok(v) => v,
            Err(_) => panic!("memory store must answer synchronously"),
        }
    }

    fn store(max: usize, shards: usize) -> (MemoryStore<ManualClock>, ManualClock) {
        let clock = ManualClock::new();
        let s = MemoryStore::builder()
            .max_entries(max)
            .shards(shards)
            .clock(clock.clone())
            .build()
            .unwrap();
        (s, clock)
    }

    #[test]
    fn answers_are_ready_without_a_runtime() {
        let (s, _) = store(100, 1);
        let q = Quota::per_second(2).unwrap();
        assert!(ready(s.gcra("k", q, 1)).unwrap().allowed);
        assert!(ready(s.insert_if_absent("k", vec![1], Duration::from_secs(1))).unwrap());
        assert_eq!(ready(s.take("k")).unwrap(), Some(vec![1]));
    }

    #[test]
    fn eviction_drops_the_soonest_to_expire() {
        let (s, _) = store(16, 1);
        // Expiries 100 s .. 115 s; the shard is full at 16.
        for i in 0..16u64 {
            let ttl = Duration::from_secs(100 + i);
            ready(s.put(&format!("k{i}"), vec![0], ttl)).unwrap();
        }
        assert_eq!(s.len(), 16);
        ready(s.put("new", vec![0], Duration::from_secs(1000))).unwrap();
        // cap 16 -> target 15: exactly one evicted (k0, the soonest), then "new" inserted.
        assert_eq!(s.len(), 16);
        assert_eq!(ready(s.get("k0")).unwrap(), None);
        assert!(ready(s.get("k1")).unwrap().is_some());
        assert!(ready(s.get("new")).unwrap().is_some());
    }

    #[test]
    fn eviction_prefers_expired_entries() {
        let (s, clock) = store(16, 1);
        for i in 0..8u64 {
            ready(s.put(&format!("short{i}"), vec![0], Duration::from_secs(1))).unwrap();
            ready(s.put(&format!("long{i}"), vec![0], Duration::from_secs(60))).unwrap();
        }
        clock.advance(Duration::from_secs(2));
        ready(s.put("new", vec![0], Duration::from_secs(60))).unwrap();
        assert!(s.len() <= 16);
        assert!(ready(s.get("new")).unwrap().is_some());
        for i in 0..8u64 {
            assert!(ready(s.get(&format!("long{i}"))).unwrap().is_some());
        }
    }

    #[test]
    fn incremental_sweep_reclaims_expired_entries() {
        let (s, clock) = store(1 << 20, 1);
        for i in 0..1000 {
            ready(s.put(&format!("old{i}"), vec![0], Duration::from_secs(1))).unwrap();
        }
        clock.advance(Duration::from_secs(2));
        for i in 0..1000 {
            ready(s.put(&format!("new{i}"), vec![0], Duration::from_secs(60))).unwrap();
        }
        // 1000 inserts x 8 buckets walk the table several times: (almost) every old entry is
        // gone. Not exactly all: a resize in between reshuffles buckets behind the cursor.
        assert!(s.len() < 1100, "{} entries left", s.len());
    }

    #[test]
    fn gcra_key_expires_when_its_bucket_is_full_again() {
        let (s, clock) = store(100, 1);
        let q = Quota::per_second(10).unwrap();
        ready(s.gcra("k", q, 5)).unwrap();
        clock.advance(Duration::from_millis(500));
        assert_eq!(s.purge_expired(), 1);
    }

    #[test]
    fn key_eq_matches_str_eq() {
        let keys = [
            "",
            "a",
            "ab",
            "abcdefg",
            "abcdefgh",
            "abcdefghi",
            "user:0000001",
            "user:0000002",
        ];
        for a in keys {
            for b in keys {
                assert_eq!(key_eq(a, b), a == b, "{a:?} vs {b:?}");
            }
        }
        assert!(!key_eq("ключ", "ключи"));
    }

    #[test]
    fn builder_validation() {
        assert!(MemoryStore::builder().max_entries(0).build().is_err());
        assert!(MemoryStore::builder().shards(0).build().is_err());
        assert!(MemoryStore::builder()
            .shards(MAX_SHARDS + 1)
            .build()
            .is_err());
        let s = MemoryStore::builder().max_entries(5).build().unwrap();
        assert_eq!(s.shard_count(), 4);
        let s = MemoryStore::builder().max_entries(1).build().unwrap();
        assert_eq!(s.shard_count(), 1);
    }

    #[test]
    fn zero_ttl_is_rejected() {
        let (s, _) = store(10, 1);
        assert!(matches!(
            ready(s.put("k", vec![], Duration::ZERO)),
            Err(StoreError::InvalidArgument(_))
        ));
    }
}
