//! [`connect`]: a store from a URL, for configuration by environment variable.

use std::sync::Arc;

use super::{MemoryStore, StateStore, StoreError};

/// Opens the store a URL names, so deployments switch backends with one setting
/// (`STATE_STORE` in the examples):
///
/// | URL | store | feature |
/// |---|---|---|
/// | `memory` (or empty) | [`MemoryStore`] | — |
/// | `redis://…`, `rediss://…` | `RedisStore` | `redis` |
/// | `redis+cluster://h1:p1,h2:p2`, `rediss+cluster://…` | `RedisStore` on a Redis Cluster | `redis-cluster` |
/// | `postgres://…`, `postgresql://…` | `PostgresStore` (migrations run) | `postgres` |
/// | `sqlite:path` | `SqliteStore` (WAL, migrations run) | `sqlite` |
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = tower_mcp_auth::store::connect("memory").await.unwrap();
/// # let _ = store;
/// assert!(tower_mcp_auth::store::connect("ftp://nope").await.is_err());
/// # });
/// ```
///
/// # Errors
///
/// [`StoreError::Config`] for an unknown scheme or one whose feature is not enabled, or the
/// backend's connection error.
pub async fn connect(url: &str) -> Result<Arc<dyn StateStore>, StoreError> {
    Ok(match open(url).await? {
        Opened::Memory => Arc::new(MemoryStore::new()),
        #[cfg(feature = "redis")]
        Opened::Redis(store) => Arc::new(store),
        #[cfg(feature = "postgres")]
        Opened::Postgres(store) => Arc::new(store),
        #[cfg(feature = "sqlite")]
        Opened::Sqlite(store) => Arc::new(store),
    })
}

/// The backend a URL names, opened; shared by [`connect`] and `keys::connect`.
pub(crate) enum Opened {
    /// `memory` or empty: each caller makes its own in-memory store.
    Memory,
    #[cfg(feature = "redis")]
    Redis(super::RedisStore),
    #[cfg(feature = "postgres")]
    Postgres(super::PostgresStore),
    #[cfg(feature = "sqlite")]
    Sqlite(super::SqliteStore),
}

/// Opens the backend `url` names (see [`connect`]).
pub(crate) async fn open(url: &str) -> Result<Opened, StoreError> {
    let url = url.trim();
    let scheme = url.split(':').next().unwrap_or_default();
    match scheme {
        "" | "memory" => Ok(Opened::Memory),
        "redis" | "rediss" | "redis+cluster" | "rediss+cluster" => redis(url).await,
        "postgres" | "postgresql" => postgres(url).await,
        "sqlite" => sqlite(url).await,
        _ => Err(StoreError::Config(
            "unknown store URL: use memory, redis://, redis+cluster://, postgres:// or sqlite:"
                .into(),
        )),
    }
}

#[cfg(feature = "redis")]
async fn redis(url: &str) -> Result<Opened, StoreError> {
    Ok(Opened::Redis(super::RedisStore::connect(url).await?))
}

#[cfg(not(feature = "redis"))]
async fn redis(_: &str) -> Result<Opened, StoreError> {
    Err(missing_feature("redis"))
}

#[cfg(feature = "postgres")]
async fn postgres(url: &str) -> Result<Opened, StoreError> {
    Ok(Opened::Postgres(super::PostgresStore::connect(url).await?))
}

#[cfg(not(feature = "postgres"))]
async fn postgres(_: &str) -> Result<Opened, StoreError> {
    Err(missing_feature("postgres"))
}

#[cfg(feature = "sqlite")]
async fn sqlite(url: &str) -> Result<Opened, StoreError> {
    let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
    Ok(Opened::Sqlite(super::SqliteStore::open(path).await?))
}

#[cfg(not(feature = "sqlite"))]
async fn sqlite(_: &str) -> Result<Opened, StoreError> {
    Err(missing_feature("sqlite"))
}

#[allow(dead_code)] // unused when every backend feature is on
fn missing_feature(feature: &'static str) -> StoreError {
    StoreError::Config(format!("this store needs the `{feature}` cargo feature").into())
}
