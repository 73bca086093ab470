//! [`RedisStore`] (feature `redis`): the distributed store. See the type's docs.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{ErrorKind, RedisError, Script, ServerErrorKind};

use super::error::check_ttl;
use super::{Quota, RateDecision, StateStore, StoreError, StoreResult};
use crate::deferred::Deferred;

mod keys;

const BACKEND: &str = "redis";
const DEFAULT_PREFIX: &str = "mcp-auth:";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
const GCRA_LUA: &str = include_str!("redis/gcra.lua");
const REFUND_LUA: &str = include_str!("redis/refund.lua");

/// A [`StateStore`] in Redis 6.2+ (or Valkey): the distributed engine once one process is not
/// enough.
///
/// * One [`ConnectionManager`]: a multiplexed connection that reconnects by itself after a
///   Redis restart or a dropped socket; calls made while it is down fail fast with
///   [`StoreError::Unavailable`] / [`StoreError::Timeout`] instead of hanging.
/// * GCRA is one Lua script (`EVALSHA`, loaded again on `NOSCRIPT`) timed by the server's
///   `TIME`, so instances with skewed clocks still share one quota. A rate-limit key expires
///   (`PX`) when its bucket is full again, so idle clients cost no memory.
/// * Single use is `SET NX PX` and `GETDEL`; TTLs are rounded up to whole milliseconds.
/// * Keys are `<prefix>gcra:{<key>}` and `<prefix>kv:{<key>}`: the braces are a Cluster hash
///   tag, so both records of one key live in the same slot and every script touches one slot.
///
/// Cloning is cheap; clones share the connection.
///
/// ```no_run
/// use tower_mcp_auth::store::{Quota, RedisStore, StateStore};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let store = RedisStore::builder("redis://127.0.0.1:6379")
///     .prefix("myapp:auth:")
///     .build()
///     .await?;
/// let decision = store.gcra("user:42", Quota::per_minute(60)?, 1).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    conn: ConnectionManager,
    prefix: Box<str>,
    gcra: Script,
    refund: Script,
}

/// Configures a [`RedisStore`]; [`build`](Self::build) connects.
///
/// ```no_run
/// use std::time::Duration;
/// use tower_mcp_auth::store::RedisStore;
///
/// # async fn demo() -> Result<(), tower_mcp_auth::store::StoreError> {
/// let store = RedisStore::builder("redis://:password@redis.internal:6379/0")
///     .prefix("tenant-a:")
///     .response_timeout(Duration::from_millis(500))
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
#[must_use]
pub struct RedisStoreBuilder {
    url: String,
    prefix: String,
    response_timeout: Duration,
    connection_timeout: Duration,
}

impl RedisStore {
    /// Connects with the default prefix (`mcp-auth:`) and timeouts (2 s).
    ///
    /// ```no_run
    /// use tower_mcp_auth::store::RedisStore;
    /// # async fn demo() -> Result<(), tower_mcp_auth::store::StoreError> {
    /// let store = RedisStore::connect("redis://127.0.0.1:6379").await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::builder(url).build().await
    }

    /// Starts configuring a store for `url` (`redis://`, `rediss://` with a TLS feature of
    /// the `redis` crate, or `unix://`).
    ///
    /// ```
    /// use tower_mcp_auth::store::RedisStore;
    /// let builder = RedisStore::builder("redis://127.0.0.1:6379").prefix("app:");
    /// ```
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: url.into(),
            prefix: DEFAULT_PREFIX.to_owned(),
            response_timeout: DEFAULT_TIMEOUT,
            connection_timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Wraps a connection manager you already have.
    ///
    /// ```no_run
    /// use tower_mcp_auth::store::RedisStore;
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = redis::Client::open("redis://127.0.0.1:6379")?;
    /// let manager = redis::aio::ConnectionManager::new(client).await?;
    /// let store = RedisStore::from_manager(manager, "app:")?;
    /// # Ok(()) }
    /// ```
    pub fn from_manager(manager: ConnectionManager, prefix: &str) -> Result<Self, StoreError> {
        check_prefix(prefix)?;
        Ok(Self {
            inner: Arc::new(Inner {
                conn: manager,
                prefix: prefix.into(),
                gcra: Script::new(GCRA_LUA),
                refund: Script::new(REFUND_LUA),
            }),
        })
    }

    /// The key prefix.
    ///
    /// ```no_run
    /// use tower_mcp_auth::store::RedisStore;
    /// # async fn demo() -> Result<(), tower_mcp_auth::store::StoreError> {
    /// let store = RedisStore::connect("redis://127.0.0.1:6379").await?;
    /// assert_eq!(store.prefix(), "mcp-auth:");
    /// # Ok(()) }
    /// ```
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    fn gcra_key(&self, key: &str) -> String {
        format!("{}gcra:{{{key}}}", self.inner.prefix)
    }

    fn kv_key(&self, key: &str) -> String {
        format!("{}kv:{{{key}}}", self.inner.prefix)
    }
}

impl RedisStoreBuilder {
    /// Prefix for every key this store writes (default `mcp-auth:`). Stores sharing a prefix
    /// share their quotas and values; use distinct prefixes for tenants or environments.
    /// Must not contain `{` or `}` (they would change the Cluster hash tag).
    ///
    /// ```
    /// use tower_mcp_auth::store::RedisStore;
    /// let builder = RedisStore::builder("redis://127.0.0.1").prefix("staging:auth:");
    /// ```
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long to wait for any reply before failing with [`StoreError::Timeout`]
    /// (default 2 s).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_mcp_auth::store::RedisStore;
    /// let builder = RedisStore::builder("redis://127.0.0.1")
    ///     .response_timeout(Duration::from_millis(250));
    /// ```
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// How long each (re)connection attempt may take (default 2 s).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_mcp_auth::store::RedisStore;
    /// let builder = RedisStore::builder("redis://127.0.0.1")
    ///     .connection_timeout(Duration::from_secs(1));
    /// ```
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// Validates the configuration, connects and returns the store. Fails with
    /// [`StoreError::Unavailable`] if Redis cannot be reached now.
    ///
    /// ```no_run
    /// use tower_mcp_auth::store::RedisStore;
    /// # async fn demo() -> Result<(), tower_mcp_auth::store::StoreError> {
    /// let store = RedisStore::builder("redis://127.0.0.1:6379").build().await?;
    /// # Ok(()) }
    /// ```
    pub async fn build(self) -> Result<RedisStore, StoreError> {
        check_prefix(&self.prefix)?;
        // The URL may carry a password: report the parse failure without it.
        let client = ::redis::Client::open(self.url.as_str())
            .map_err(|_| StoreError::Config("invalid Redis URL".into()))?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(self.response_timeout))
            .set_connection_timeout(Some(self.connection_timeout));
        let manager = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(map_err)?;
        RedisStore::from_manager(manager, &self.prefix)
    }
}

impl StateStore for RedisStore {
    fn decide(&self, key: &str, quota: Quota, cost: u32, peek: bool) -> StoreResult<RateDecision> {
        let gcra = quota.gcra_micros();
        let key = self.gcra_key(key);
        let inner = Arc::clone(&self.inner);
        Deferred::boxed(async move {
            let mut conn = inner.conn.clone();
            let (verdict, now, tat): (i64, i64, i64) = inner
                .gcra
                .key(key)
                .arg(gcra.interval)
                .arg(gcra.tau)
                .arg(cost)
                .arg(if peek { "0" } else { "1" })
                .invoke_async(&mut conn)
                .await
                .map_err(map_err)?;
            if verdict < 0 || now < 0 || tat < 0 {
                return Err(not_a_timestamp());
            }
            // Cannot truncate: both were checked non-negative.
            let step = gcra.step(Some(tat as u64), now as u64, cost);
            // The script applied the same inequality; a disagreement would be a bug here.
            debug_assert_eq!(step.decision.allowed, verdict == 1);
            Ok(step.decision)
        })
    }

    fn gcra_release(&self, key: &str, quota: Quota, cost: u32) -> StoreResult<()> {
        let back = quota.gcra_micros().interval.saturating_mul(u64::from(cost));
        let key = self.gcra_key(key);
        let inner = Arc::clone(&self.inner);
        Deferred::boxed(async move {
            let mut conn = inner.conn.clone();
            let ok: i64 = inner
                .refund
                .key(key)
                .arg(back)
                .invoke_async(&mut conn)
                .await
                .map_err(map_err)?;
            if ok < 0 {
                return Err(not_a_timestamp());
            }
            Ok(())
        })
    }

    fn insert_if_absent(&self, key: &str, value: Vec<u8>, ttl: Duration) -> StoreResult<bool> {
        if let Err(e) = check_ttl(ttl) {
            return Deferred::ready(Err(e));
        }
        let mut cmd = ::redis::cmd("SET");
        cmd.arg(self.kv_key(key))
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(ttl_millis(ttl));
        let mut conn = self.inner.conn.clone();
        Deferred::boxed(async move {
            let reply: Option<String> = cmd.query_async(&mut conn).await.map_err(map_err)?;
            Ok(reply.is_some())
        })
    }

    fn take(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let mut cmd = ::redis::cmd("GETDEL");
        cmd.arg(self.kv_key(key));
        let mut conn = self.inner.conn.clone();
        Deferred::boxed(async move { cmd.query_async(&mut conn).await.map_err(map_err) })
    }

    fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let mut cmd = ::redis::cmd("GET");
        cmd.arg(self.kv_key(key));
        let mut conn = self.inner.conn.clone();
        Deferred::boxed(async move { cmd.query_async(&mut conn).await.map_err(map_err) })
    }

    fn put(&self, key: &str, value: Vec<u8>, ttl: Duration) -> StoreResult<()> {
        if let Err(e) = check_ttl(ttl) {
            return Deferred::ready(Err(e));
        }
        let mut cmd = ::redis::cmd("SET");
        cmd.arg(self.kv_key(key))
            .arg(value)
            .arg("PX")
            .arg(ttl_millis(ttl));
        let mut conn = self.inner.conn.clone();
        Deferred::boxed(async move {
            let _: () = cmd.query_async(&mut conn).await.map_err(map_err)?;
            Ok(())
        })
    }

    fn delete(&self, key: &str) -> StoreResult<bool> {
        let mut cmd = ::redis::cmd("DEL");
        cmd.arg(self.kv_key(key));
        let mut conn = self.inner.conn.clone();
        Deferred::boxed(async move {
            let removed: u64 = cmd.query_async(&mut conn).await.map_err(map_err)?;
            Ok(removed > 0)
        })
    }
}

impl fmt::Debug for RedisStore {
    // The connection manager's Debug would print the client's connection info.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for RedisStoreBuilder {
    // Never print the URL: it may carry a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStoreBuilder")
            .field("prefix", &self.prefix)
            .field("response_timeout", &self.response_timeout)
            .field("connection_timeout", &self.connection_timeout)
            .finish_non_exhaustive()
    }
}

/// A GCRA key holding something else than a TAT.
fn not_a_timestamp() -> StoreError {
    StoreError::Corrupt {
        backend: BACKEND,
        detail: "GCRA key does not hold a timestamp",
    }
}

fn check_prefix(prefix: &str) -> Result<(), StoreError> {
    if prefix.contains(['{', '}']) {
        Err(StoreError::Config(
            "Redis key prefix must not contain '{' or '}'".into(),
        ))
    } else {
        Ok(())
    }
}

/// Redis expiries have millisecond resolution: round up so a value never outlives its TTL
/// by less than asked, and never gets `PX 0` (an error).
fn ttl_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

fn map_err(err: RedisError) -> StoreError {
    if err.is_timeout() {
        return StoreError::Timeout { backend: BACKEND };
    }
    let unavailable = err.is_io_error()
        || err.is_connection_refusal()
        || err.is_connection_dropped()
        || matches!(
            err.kind(),
            ErrorKind::Server(
                ServerErrorKind::BusyLoading
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::ClusterDown
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::ReadOnly
            ) | ErrorKind::ClusterConnectionNotFound
        );
    if unavailable {
        return StoreError::unavailable(BACKEND, err);
    }
    if err.code() == Some("WRONGTYPE")
        || matches!(
            err.kind(),
            ErrorKind::UnexpectedReturnType | ErrorKind::Parse
        )
    {
        return StoreError::Corrupt {
            backend: BACKEND,
            detail: "unexpected reply type",
        };
    }
    StoreError::backend(BACKEND, err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_rounds_up_to_milliseconds() {
        assert_eq!(ttl_millis(Duration::from_nanos(1)), 1);
        assert_eq!(ttl_millis(Duration::from_millis(1500)), 1500);
        assert_eq!(ttl_millis(Duration::from_micros(1500)), 2);
    }

    #[test]
    fn prefix_cannot_change_the_hash_tag() {
        assert!(check_prefix("app:").is_ok());
        assert!(check_prefix("{app}:").is_err());
    }
}
