//! [`RedisStore`] (feature `redis`): the distributed store, on one server or (feature
//! `redis-cluster`) a Redis Cluster. See the type's docs.

#[cfg(feature = "redis-cluster")]
mod cluster;
mod connection;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{ErrorKind, RedisError, Script, ServerErrorKind};

use super::error::check_ttl;
use super::{Quota, RateDecision, StateStore, StoreError, StoreResult};
use crate::deferred::Deferred;
use connection::Connection;

mod keys;

const BACKEND: &str = "redis";
const DEFAULT_PREFIX: &str = "mcp-auth:";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
const GCRA_LUA: &str = include_str!("redis/gcra.lua");
const REFUND_LUA: &str = include_str!("redis/refund.lua");

/// A [`StateStore`] in Redis 6.2+ (or Valkey), on one server or a Redis Cluster: the
/// distributed engine once one process is not enough.
///
/// * One server: one [`ConnectionManager`], a multiplexed connection that reconnects by
///   itself after a Redis restart or a dropped socket; calls made while it is down fail fast
///   with [`StoreError::Unavailable`] / [`StoreError::Timeout`] instead of hanging.
/// * Redis Cluster (feature `redis-cluster`; a `redis+cluster://h1:p1,h2:p2` URL or
///   `RedisStore::cluster_builder`): one async cluster connection that sends each
///   command to the master owning its key's slot, follows `MOVED` / `ASK` and refreshes the
///   slot map after a failover. Every operation touches exactly one key (scripts included),
///   so no command ever spans two slots. Replicas are never read: a replica may lag, and a
///   quota or a single-use value must be decided on one copy.
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
    conn: Connection,
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
    target: Target,
    prefix: String,
    response_timeout: Duration,
    connection_timeout: Duration,
}

/// Where a [`RedisStoreBuilder`] connects.
enum Target {
    /// A URL: one server, or a `redis+cluster://` node list.
    Url(String),
    /// Cluster seed nodes, one URL each.
    #[cfg(feature = "redis-cluster")]
    Nodes(Vec<String>),
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

    /// Starts configuring a store for `url`: one server (`redis://`, `rediss://` with a TLS
    /// feature of the `redis` crate, or `unix://`), or with feature `redis-cluster` a Redis
    /// Cluster, `redis+cluster://[user:password@]host:port,host:port,...` (`rediss+cluster://`
    /// for TLS): the seed nodes, each given the same credentials; the rest of the cluster is
    /// discovered. Without that feature a cluster URL fails [`build`](RedisStoreBuilder::build)
    /// with [`StoreError::Config`].
    ///
    /// ```
    /// use tower_mcp_auth::store::RedisStore;
    /// let builder = RedisStore::builder("redis://127.0.0.1:6379").prefix("app:");
    /// let cluster = RedisStore::builder("redis+cluster://10.0.0.1:7000,10.0.0.2:7000");
    /// ```
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder::new(Target::Url(url.into()))
    }

    /// Starts configuring a store on the Redis Cluster reached through `nodes` (seed node
    /// URLs, `redis://host:port` or `rediss://…`; one reachable node is enough, the others
    /// are discovered).
    ///
    /// ```no_run
    /// use tower_mcp_auth::store::RedisStore;
    /// # async fn demo() -> Result<(), tower_mcp_auth::store::StoreError> {
    /// let store = RedisStore::cluster_builder(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"])
    ///     .prefix("app:")
    ///     .build()
    ///     .await?;
    /// assert!(store.is_cluster());
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "redis-cluster")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis-cluster")))]
    pub fn cluster_builder<I>(nodes: I) -> RedisStoreBuilder
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        RedisStoreBuilder::new(Target::Nodes(nodes.into_iter().map(Into::into).collect()))
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
        Self::from_connection(Connection::Single(manager), prefix)
    }

    /// Wraps a Redis Cluster connection you already have.
    ///
    /// ```no_run
    /// use tower_mcp_auth::store::RedisStore;
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = redis::cluster::ClusterClient::new(["redis://10.0.0.1:7000"])?;
    /// let conn = client.get_async_connection().await?;
    /// let store = RedisStore::from_cluster_connection(conn, "app:")?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "redis-cluster")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis-cluster")))]
    pub fn from_cluster_connection(
        conn: ::redis::cluster_async::ClusterConnection,
        prefix: &str,
    ) -> Result<Self, StoreError> {
        Self::from_connection(Connection::Cluster(conn), prefix)
    }

    fn from_connection(conn: Connection, prefix: &str) -> Result<Self, StoreError> {
        check_prefix(prefix)?;
        Ok(Self {
            inner: Arc::new(Inner {
                conn,
                prefix: prefix.into(),
                gcra: Script::new(GCRA_LUA),
                refund: Script::new(REFUND_LUA),
            }),
        })
    }

    /// Whether this store talks to a Redis Cluster.
    ///
    /// ```no_run
    /// use tower_mcp_auth::store::RedisStore;
    /// # async fn demo() -> Result<(), tower_mcp_auth::store::StoreError> {
    /// let store = RedisStore::connect("redis://127.0.0.1:6379").await?;
    /// assert!(!store.is_cluster());
    /// # Ok(()) }
    /// ```
    pub fn is_cluster(&self) -> bool {
        match self.inner.conn {
            Connection::Single(_) => false,
            #[cfg(feature = "redis-cluster")]
            Connection::Cluster(_) => true,
        }
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
    fn new(target: Target) -> Self {
        Self {
            target,
            prefix: DEFAULT_PREFIX.to_owned(),
            response_timeout: DEFAULT_TIMEOUT,
            connection_timeout: DEFAULT_TIMEOUT,
        }
    }

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
    /// (default 2 s). On a cluster this bounds the whole command, redirections and the
    /// retries during a failover included.
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
    /// [`StoreError::Unavailable`] if Redis cannot be reached now (on a cluster: no seed
    /// node answers), [`StoreError::Config`] for a bad URL or prefix.
    ///
    /// ```no_run
    /// use tower_mcp_auth::store::RedisStore;
    /// # async fn demo() -> Result<(), tower_mcp_auth::store::StoreError> {
    /// let store = RedisStore::builder("redis://127.0.0.1:6379").build().await?;
    /// # Ok(()) }
    /// ```
    pub async fn build(self) -> Result<RedisStore, StoreError> {
        check_prefix(&self.prefix)?;
        let conn = match &self.target {
            Target::Url(url) => self.connect_url(url).await?,
            #[cfg(feature = "redis-cluster")]
            Target::Nodes(nodes) => self.connect_cluster(nodes).await?,
        };
        RedisStore::from_connection(conn, &self.prefix)
    }

    async fn connect_url(&self, url: &str) -> Result<Connection, StoreError> {
        #[cfg(feature = "redis-cluster")]
        if let Some(nodes) = cluster::node_urls(url) {
            return self.connect_cluster(&nodes?).await;
        }
        #[cfg(not(feature = "redis-cluster"))]
        if is_cluster_url(url) {
            return Err(StoreError::Config(
                "a redis+cluster:// URL needs the `redis-cluster` cargo feature".into(),
            ));
        }
        // The URL may carry a password: report the parse failure without it.
        let client = ::redis::Client::open(url)
            .map_err(|_| StoreError::Config("invalid Redis URL".into()))?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(self.response_timeout))
            .set_connection_timeout(Some(self.connection_timeout));
        let manager = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(map_err)?;
        Ok(Connection::Single(manager))
    }

    #[cfg(feature = "redis-cluster")]
    async fn connect_cluster(&self, nodes: &[String]) -> Result<Connection, StoreError> {
        let conn = cluster::connect(nodes, self.response_timeout, self.connection_timeout).await?;
        Ok(Connection::Cluster(conn))
    }
}

/// `redis+cluster://…` / `rediss+cluster://…`, recognised even without the feature so the
/// error says what is missing.
#[cfg(not(feature = "redis-cluster"))]
fn is_cluster_url(url: &str) -> bool {
    url.split_once("://")
        .is_some_and(|(scheme, _)| scheme.to_ascii_lowercase().ends_with("+cluster"))
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
            .field("cluster", &self.is_cluster())
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

    #[cfg(not(feature = "redis-cluster"))]
    #[tokio::test]
    async fn a_cluster_url_without_the_feature_says_what_is_missing() {
        assert!(is_cluster_url("REDIS+CLUSTER://a:1,b:2"));
        assert!(!is_cluster_url("redis://a:1"));
        let err = RedisStore::connect("rediss+cluster://:secret@a:1,b:2")
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Config(_)), "{err:?}");
        assert!(err.to_string().contains("redis-cluster"), "{err}");
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn prefix_cannot_change_the_hash_tag() {
        assert!(check_prefix("app:").is_ok());
        assert!(check_prefix("{app}:").is_err());
    }
}
