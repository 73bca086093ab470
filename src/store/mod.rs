//! Shared state behind one pluggable trait: [`StateStore`].
//!
//! Everything that must be shared between server instances goes through a `StateStore`:
//!
//! * **GCRA rate-limit decisions**: [`gcra`](StateStore::gcra) (atomic check-and-consume),
//!   [`gcra_peek`](StateStore::gcra_peek) (the same decision, nothing consumed) and
//!   [`gcra_refund`](StateStore::gcra_refund) (give consumed cells back: reserve, then refund);
//! * **single-use values** such as OAuth `state`: [`insert_if_absent`](StateStore::insert_if_absent)
//!   and [`take`](StateStore::take) (read and delete atomically);
//! * **plain TTL'd key/value** for tokens and sessions: [`get`](StateStore::get),
//!   [`put`](StateStore::put), [`delete`](StateStore::delete).
//!
//! GCRA state and values live in separate namespaces: `gcra("k", ..)` never touches the
//! value stored under `"k"`.
//!
//! | store | feature | use it for |
//! |---|---|---|
//! | [`MemoryStore`] | always | one process; bounded, sharded, no background thread |
//! | `RedisStore` | `redis` (`redis-cluster` for a Redis Cluster) | several instances; Lua scripts with server time, one key per operation |
//! | `PostgresStore` | `postgres` | durable OAuth state and tokens, server time |
//! | `SqliteStore` | `sqlite` | durable state for one host (WAL, busy timeout) |
//!
//! Every method returns a [`Deferred`]: the memory store answers with a ready value (no
//! allocation, no boxed future), network stores with a boxed future. The trait is object safe
//! and meant to be shared as `Arc<dyn StateStore>`.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use tower_mcp_auth::store::{MemoryStore, Quota, StateStore};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
//!
//! let quota = Quota::per_second(10)?;
//! assert!(store.gcra("user:42", quota, 1).await?.allowed);
//!
//! assert!(store.insert_if_absent("state:abc", b"flow".to_vec(), Duration::from_secs(300)).await?);
//! assert_eq!(store.take("state:abc").await?, Some(b"flow".to_vec()));
//! assert_eq!(store.take("state:abc").await?, None);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod clock;
mod connect;
mod error;
mod memory;
mod quota;
#[cfg(feature = "redis")]
mod redis;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod sql;

use std::sync::Arc;
use std::time::Duration;

use crate::deferred::Deferred;

pub use clock::{Clock, ManualClock, SystemClock};
pub use connect::connect;
#[cfg(feature = "keys")]
pub(crate) use connect::{open, Opened};
pub use error::{BoxError, StoreError};
pub use memory::{MemoryStore, MemoryStoreBuilder};
pub use quota::{Quota, QuotaError, RateDecision, MAX_PERIOD};
#[cfg(feature = "redis")]
pub use redis::{RedisStore, RedisStoreBuilder};
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub use sql::DEFAULT_PURGE_INTERVAL;
#[cfg(feature = "postgres")]
pub use sql::{PostgresStore, PostgresStoreBuilder};
#[cfg(feature = "sqlite")]
pub use sql::{SqliteStore, SqliteStoreBuilder};

/// The result of every [`StateStore`] method: ready at once for the memory store, a boxed
/// future for network stores; `.await` it either way.
///
/// ```
/// use tower_mcp_auth::store::{MemoryStore, StateStore, StoreResult};
///
/// let store = MemoryStore::new();
/// let pending: StoreResult<Option<Vec<u8>>> = store.get("k");
/// // The memory store never needs a runtime:
/// assert_eq!(pending.try_into_ready().ok().unwrap().unwrap(), None);
/// ```
pub type StoreResult<T> = Deferred<Result<T, StoreError>>;

/// Shared state for rate limiting, single-use values and TTL'd key/value data.
///
/// A backend implements one GCRA decision primitive, [`decide`](Self::decide), and
/// its refund, [`gcra_release`](Self::gcra_release); [`gcra`](Self::gcra),
/// [`gcra_peek`](Self::gcra_peek) and [`gcra_refund`](Self::gcra_refund) are provided on top
/// and check their input once for every backend.
///
/// Implementations must make [`decide`](Self::decide),
/// [`insert_if_absent`](Self::insert_if_absent) and [`take`](Self::take) atomic across every client of the same backend: that is what makes
/// a quota global and a single-use value usable once. A TTL must be non-zero
/// ([`StoreError::InvalidArgument`] otherwise); backends round it up to their resolution
/// (1 ms for Redis, 1 µs for SQL). An expired value behaves exactly like an absent one.
///
/// ```
/// use std::sync::Arc;
/// use tower_mcp_auth::store::{MemoryStore, StateStore};
///
/// fn shared(store: impl StateStore) -> Arc<dyn StateStore> {
///     Arc::new(store)
/// }
/// let _store = shared(MemoryStore::new());
/// ```
pub trait StateStore: Send + Sync + 'static {
    /// The one GCRA decision a backend implements: decides a request of `cost` cells
    /// against `quota` for `key` and, if it is allowed and `peek` is `false`, consumes
    /// them, atomically. Callers use [`gcra`](Self::gcra) and
    /// [`gcra_peek`](Self::gcra_peek), which validate the input and then call this.
    ///
    /// Only ever called with `cost <= quota.burst_size()`. A cost of 0, or `peek == true`,
    /// must leave the key's state untouched.
    ///
    /// ```
    /// use tower_mcp_auth::store::{MemoryStore, Quota, StateStore};
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// let quota = Quota::per_minute(1)?;
    /// assert!(store.decide("k", quota, 1, true).await?.allowed); // a peek
    /// assert!(store.decide("k", quota, 1, false).await?.allowed); // consumed
    /// assert!(!store.decide("k", quota, 1, true).await?.allowed);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    fn decide(&self, key: &str, quota: Quota, cost: u32, peek: bool) -> StoreResult<RateDecision>;

    /// The refund a backend implements: moves `key`'s theoretical arrival time back by
    /// `cost` emission intervals of `quota`, atomically, never below a full bucket. Callers
    /// use [`gcra_refund`](Self::gcra_refund), which validates the input and then calls this.
    ///
    /// Only ever called with `1 <= cost <= quota.burst_size()`.
    ///
    /// ```
    /// use tower_mcp_auth::store::{MemoryStore, Quota, StateStore};
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// let quota = Quota::per_minute(1)?;
    /// assert!(store.gcra("k", quota, 1).await?.allowed);
    /// store.gcra_release("k", quota, 1).await?;
    /// assert!(store.gcra("k", quota, 1).await?.allowed);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    fn gcra_release(&self, key: &str, quota: Quota, cost: u32) -> StoreResult<()>;

    /// Checks a request of `cost` cells against `quota` for `key` and, if it is allowed,
    /// consumes them, atomically.
    ///
    /// A `cost` larger than the quota's burst can never be allowed and fails with
    /// [`StoreError::CostExceedsBurst`] without touching the backend. A cost of 0 consumes
    /// nothing and reports the current state.
    ///
    /// ```
    /// use tower_mcp_auth::store::{MemoryStore, Quota, StateStore, StoreError};
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// let quota = Quota::per_minute(2)?;
    /// assert!(store.gcra("ip:203.0.113.7", quota, 1).await?.allowed);
    /// assert!(store.gcra("ip:203.0.113.7", quota, 1).await?.allowed);
    /// let denied = store.gcra("ip:203.0.113.7", quota, 1).await?;
    /// assert!(!denied.allowed);
    /// assert!(denied.retry_after > std::time::Duration::from_secs(29));
    ///
    /// let too_big = store.gcra("ip:203.0.113.7", quota, 3).await;
    /// assert!(matches!(too_big, Err(StoreError::CostExceedsBurst { cost: 3, burst: 2 })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    #[inline]
    fn gcra(&self, key: &str, quota: Quota, cost: u32) -> StoreResult<RateDecision> {
        match quota.check_cost(cost) {
            Ok(()) => self.decide(key, quota, cost, false),
            Err(e) => Deferred::ready(Err(e)),
        }
    }

    /// The decision [`gcra`](Self::gcra) would make right now, without consuming anything.
    ///
    /// ```
    /// use tower_mcp_auth::store::{MemoryStore, Quota, StateStore};
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// let quota = Quota::per_minute(1)?;
    /// assert!(store.gcra_peek("k", quota, 1).await?.allowed);
    /// assert!(store.gcra_peek("k", quota, 1).await?.allowed); // still there
    /// assert!(store.gcra("k", quota, 1).await?.allowed);
    /// assert!(!store.gcra_peek("k", quota, 1).await?.allowed);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    #[inline]
    fn gcra_peek(&self, key: &str, quota: Quota, cost: u32) -> StoreResult<RateDecision> {
        match quota.check_cost(cost) {
            Ok(()) => self.decide(key, quota, cost, true),
            Err(e) => Deferred::ready(Err(e)),
        }
    }

    /// Gives back `cost` cells that an allowed [`gcra`](Self::gcra) call consumed for `key`
    /// under the same `quota`, atomically: the key's theoretical arrival time moves back by
    /// `cost` emission intervals. A bucket never holds more than its burst: a refund into a
    /// bucket that has refilled in the meantime (or was never used) changes nothing.
    ///
    /// This is how a limiter *reserves* before an outcome is known (consume, then refund when
    /// the request turns out not to count), so that concurrent requests cannot all pass one
    /// [`gcra_peek`](Self::gcra_peek). Refund only what an allowed `gcra` consumed: refunding
    /// cells that were never taken grants credit that later requests can spend.
    ///
    /// A `cost` larger than the burst fails with [`StoreError::CostExceedsBurst`]; a cost of
    /// 0 does nothing.
    ///
    /// ```
    /// use tower_mcp_auth::store::{MemoryStore, Quota, StateStore};
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// let quota = Quota::per_minute(1)?;
    /// assert!(store.gcra("fa:ip:203.0.113.7", quota, 1).await?.allowed); // reserve
    /// assert!(!store.gcra_peek("fa:ip:203.0.113.7", quota, 1).await?.allowed);
    /// store.gcra_refund("fa:ip:203.0.113.7", quota, 1).await?; // it did not count
    /// assert!(store.gcra_peek("fa:ip:203.0.113.7", quota, 1).await?.allowed);
    /// // Never more than the burst:
    /// store.gcra_refund("fa:ip:203.0.113.7", quota, 1).await?;
    /// assert!(store.gcra("fa:ip:203.0.113.7", quota, 1).await?.allowed);
    /// assert!(!store.gcra("fa:ip:203.0.113.7", quota, 1).await?.allowed);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    fn gcra_refund(&self, key: &str, quota: Quota, cost: u32) -> StoreResult<()> {
        match quota.check_cost(cost) {
            Ok(()) if cost == 0 => Deferred::ready(Ok(())),
            Ok(()) => self.gcra_release(key, quota, cost),
            Err(e) => Deferred::ready(Err(e)),
        }
    }

    /// Stores `value` under `key` for `ttl` unless a live value is already there. Returns
    /// `true` if this call stored it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_mcp_auth::store::{MemoryStore, StateStore};
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// let ttl = Duration::from_secs(300);
    /// assert!(store.insert_if_absent("nonce:1", b"a".to_vec(), ttl).await?);
    /// assert!(!store.insert_if_absent("nonce:1", b"b".to_vec(), ttl).await?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    fn insert_if_absent(&self, key: &str, value: Vec<u8>, ttl: Duration) -> StoreResult<bool>;

    /// Removes the value under `key` and returns it, atomically: of many concurrent callers,
    /// at most one gets `Some`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_mcp_auth::store::{MemoryStore, StateStore};
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// store.put("code:xyz", b"grant".to_vec(), Duration::from_secs(60)).await?;
    /// assert_eq!(store.take("code:xyz").await?, Some(b"grant".to_vec()));
    /// assert_eq!(store.take("code:xyz").await?, None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    fn take(&self, key: &str) -> StoreResult<Option<Vec<u8>>>;

    /// The live value under `key`, if any.
    ///
    /// ```
    /// use tower_mcp_auth::store::{MemoryStore, StateStore};
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// assert_eq!(MemoryStore::new().get("missing").await?, None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>>;

    /// Stores `value` under `key` for `ttl`, replacing any previous value and TTL.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_mcp_auth::store::{MemoryStore, StateStore};
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// store.put("session:1", b"v1".to_vec(), Duration::from_secs(60)).await?;
    /// store.put("session:1", b"v2".to_vec(), Duration::from_secs(60)).await?;
    /// assert_eq!(store.get("session:1").await?, Some(b"v2".to_vec()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    fn put(&self, key: &str, value: Vec<u8>, ttl: Duration) -> StoreResult<()>;

    /// Removes the value under `key`. Returns `true` if a live value was removed.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_mcp_auth::store::{MemoryStore, StateStore};
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// store.put("token:1", b"t".to_vec(), Duration::from_secs(60)).await?;
    /// assert!(store.delete("token:1").await?);
    /// assert!(!store.delete("token:1").await?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    fn delete(&self, key: &str) -> StoreResult<bool>;
}

macro_rules! forward_state_store {
    ($($ptr:ident),*) => {$(
        /// Forwards to the pointed-to store, so `Arc<dyn StateStore>` is itself a store.
        impl<S: StateStore + ?Sized> StateStore for $ptr<S> {
            #[inline]
            fn decide(
                &self,
                key: &str,
                quota: Quota,
                cost: u32,
                peek: bool,
            ) -> StoreResult<RateDecision> {
                (**self).decide(key, quota, cost, peek)
            }
            #[inline]
            fn gcra_release(&self, key: &str, quota: Quota, cost: u32) -> StoreResult<()> {
                (**self).gcra_release(key, quota, cost)
            }
            // The provided methods are forwarded too, so a store that overrides them keeps
            // its behaviour behind a pointer.
            #[inline]
            fn gcra(&self, key: &str, quota: Quota, cost: u32) -> StoreResult<RateDecision> {
                (**self).gcra(key, quota, cost)
            }
            #[inline]
            fn gcra_peek(&self, key: &str, quota: Quota, cost: u32) -> StoreResult<RateDecision> {
                (**self).gcra_peek(key, quota, cost)
            }
            #[inline]
            fn gcra_refund(&self, key: &str, quota: Quota, cost: u32) -> StoreResult<()> {
                (**self).gcra_refund(key, quota, cost)
            }
            #[inline]
            fn insert_if_absent(&self, key: &str, value: Vec<u8>, ttl: Duration) -> StoreResult<bool> {
                (**self).insert_if_absent(key, value, ttl)
            }
            #[inline]
            fn take(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
                (**self).take(key)
            }
            #[inline]
            fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
                (**self).get(key)
            }
            #[inline]
            fn put(&self, key: &str, value: Vec<u8>, ttl: Duration) -> StoreResult<()> {
                (**self).put(key, value, ttl)
            }
            #[inline]
            fn delete(&self, key: &str) -> StoreResult<bool> {
                (**self).delete(key)
            }
        }
    )*};
}

forward_state_store!(Arc, Box);
