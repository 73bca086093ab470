//! Fixtures for the StateStore conformance suite: one `Backend` per store, each isolated
//! (own Redis key prefix, own PostgreSQL schema, own SQLite file) and cleaned up afterwards.
//!
//! An unreachable service is a skip locally and a failure when `CI=true`.

#![allow(dead_code)] // each feature combination uses a different subset

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tower_mcp_auth::store::{ManualClock, MemoryStore, StateStore};

#[cfg(feature = "redis")]
mod redis_server;
#[cfg(feature = "redis-cluster")]
pub use redis_server::RedisCluster;
#[cfg(feature = "redis")]
pub use redis_server::{free_port, RedisServer};

pub type Cleanup = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A store under test, plus how to move its time forward and how to clean it up.
pub struct Backend {
    pub name: &'static str,
    pub store: Arc<dyn StateStore>,
    /// `Some` for the memory store: time only moves when the test says so, and every
    /// duration is exact. Real backends sleep instead and allow `slack`.
    pub clock: Option<ManualClock>,
    cleanup: Option<Box<dyn FnOnce() -> Cleanup + Send + Sync>>,
}

impl Backend {
    /// Moves time forward: exactly for the memory store, by sleeping for the others.
    pub async fn advance(&self, by: Duration) {
        match &self.clock {
            Some(clock) => clock.advance(by),
            None => tokio::time::sleep(by).await,
        }
    }

    /// How much real time may pass between the calls of one test case.
    pub fn slack(&self) -> Duration {
        if self.clock.is_some() {
            Duration::ZERO
        } else {
            Duration::from_millis(500)
        }
    }

    pub async fn cleanup(mut self) {
        if let Some(cleanup) = self.cleanup.take() {
            cleanup().await;
        }
    }
}

/// Runs `case` against a backend, always cleans up, then re-raises a failure.
pub async fn run<F, Fut>(backend: Option<Backend>, case: F)
where
    F: FnOnce(Arc<Backend>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(backend) = backend else { return };
    let backend = Arc::new(backend);
    let outcome = tokio::spawn(case(Arc::clone(&backend))).await;
    match Arc::try_unwrap(backend) {
        Ok(backend) => backend.cleanup().await,
        Err(_) => eprintln!("a test task still holds the backend; skipping cleanup"),
    }
    if let Err(err) = outcome {
        if err.is_panic() {
            std::panic::resume_unwind(err.into_panic());
        }
        panic!("test task failed: {err}");
    }
}

/// A skip locally, a failure in CI.
pub fn unreachable(service: &str, env: &str, err: &dyn std::error::Error) -> Option<Backend> {
    let mut cause = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        cause.push_str(": ");
        cause.push_str(&s.to_string());
        source = s.source();
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{service} is unreachable (set {env}; CI=true makes this a failure): {cause}");
    }
    eprintln!("SKIPPED: {service} is unreachable ({env}): {cause}");
    None
}

/// A random lowercase hex id for prefixes, schema and file names.
pub fn random_id() -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("OS randomness");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub async fn memory() -> Option<Backend> {
    let clock = ManualClock::new();
    let store = MemoryStore::builder()
        .max_entries(100_000)
        .clock(clock.clone())
        .build()
        .expect("valid memory store");
    Some(Backend {
        name: "memory",
        store: Arc::new(store),
        clock: Some(clock),
        cleanup: None,
    })
}

#[cfg(feature = "redis")]
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

#[cfg(feature = "redis")]
pub async fn redis() -> Option<Backend> {
    use tower_mcp_auth::store::RedisStore;
    let prefix = format!("tma-test:{}:", random_id());
    let store = match RedisStore::builder(redis_url())
        .prefix(&prefix)
        .build()
        .await
    {
        Ok(store) => store,
        Err(err) => return unreachable("Redis", "REDIS_URL", &err),
    };
    Some(Backend {
        name: "redis",
        store: Arc::new(store),
        clock: None,
        cleanup: Some(Box::new(move || Box::pin(redis_cleanup(prefix)))),
    })
}

/// A store with a fresh prefix on `cluster` (the cluster is torn down by its owner).
#[cfg(feature = "redis-cluster")]
pub async fn redis_cluster(cluster: &RedisCluster) -> Option<Backend> {
    use tower_mcp_auth::store::RedisStore;
    let store = RedisStore::builder(cluster.url())
        .prefix(format!("tma-test:{}:", random_id()))
        .build()
        .await
        .expect("the local cluster is up");
    assert!(store.is_cluster());
    Some(Backend {
        name: "redis-cluster",
        store: Arc::new(store),
        clock: None,
        cleanup: None,
    })
}

/// Deletes every key under `prefix`.
#[cfg(feature = "redis")]
pub async fn redis_cleanup(prefix: String) {
    let Ok(client) = ::redis::Client::open(redis_url()) else {
        return;
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return;
    };
    let mut cursor: u64 = 0;
    loop {
        let page: Result<(u64, Vec<String>), _> = ::redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await;
        let Ok((next, keys)) = page else { return };
        if !keys.is_empty() {
            let _: Result<u64, _> = ::redis::cmd("DEL").arg(keys).query_async(&mut conn).await;
        }
        if next == 0 {
            return;
        }
        cursor = next;
    }
}

#[cfg(feature = "postgres")]
pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

#[cfg(feature = "postgres")]
pub async fn postgres() -> Option<Backend> {
    let (store, schema) = postgres_store().await?;
    let pool = store.pool().clone();
    Some(Backend {
        name: "postgres",
        store: Arc::new(store),
        clock: None,
        cleanup: Some(Box::new(move || {
            Box::pin(async move { drop_schema(&pool, &schema).await })
        })),
    })
}

/// A store in a fresh schema; the caller drops the schema.
#[cfg(feature = "postgres")]
pub async fn postgres_store() -> Option<(tower_mcp_auth::store::PostgresStore, String)> {
    use tower_mcp_auth::store::PostgresStore;
    let schema = format!("tma_test_{}", random_id());
    let built = PostgresStore::builder(database_url())
        .schema(&schema)
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(10))
        .build()
        .await;
    match built {
        Ok(store) => Some((store, schema)),
        Err(err) => {
            unreachable("PostgreSQL", "DATABASE_URL", &err);
            None
        }
    }
}

#[cfg(feature = "postgres")]
pub async fn drop_schema(pool: &sqlx::PgPool, schema: &str) {
    let sql = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
    if let Err(err) = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(pool).await {
        eprintln!("could not drop test schema {schema}: {err}");
    }
    pool.close().await;
}

#[cfg(feature = "sqlite")]
pub fn sqlite_path() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("tma-test-{}.db", random_id()))
}

#[cfg(feature = "sqlite")]
pub async fn sqlite() -> Option<Backend> {
    use tower_mcp_auth::store::SqliteStore;
    let path = sqlite_path();
    let store = SqliteStore::open(&path)
        .await
        .expect("a temp-file SQLite store always opens");
    let pool = store.pool().clone();
    Some(Backend {
        name: "sqlite",
        store: Arc::new(store),
        clock: None,
        cleanup: Some(Box::new(move || {
            Box::pin(async move {
                pool.close().await;
                remove_sqlite_files(&path);
            })
        })),
    })
}

#[cfg(feature = "sqlite")]
pub fn remove_sqlite_files(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
}
