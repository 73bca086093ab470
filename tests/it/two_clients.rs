//! Two clients of one backend (two "instances" of a server sharing a store), isolated from
//! other tests (own SQLite file, PostgreSQL schema or Redis prefix) and cleaned up after.
//! For the multi-instance tests of `key_store` and `revocation`.

#![allow(dead_code)] // each feature combination uses a different subset

use crate::store_common::{self, Cleanup};

/// Two clients `a` and `b` of one store.
pub struct Pair<S> {
    pub a: S,
    pub b: S,
    cleanup: Option<Cleanup>,
}

impl<S> Pair<S> {
    pub async fn cleanup(mut self) {
        drop((self.a, self.b));
        if let Some(cleanup) = self.cleanup.take() {
            cleanup.await;
        }
    }
}

#[cfg(feature = "sqlite")]
pub async fn sqlite() -> Pair<tower_mcp_auth::store::SqliteStore> {
    use tower_mcp_auth::store::SqliteStore;
    let path = store_common::sqlite_path();
    let a = SqliteStore::open(&path).await.unwrap();
    let b = SqliteStore::open(&path).await.unwrap();
    let pools = (a.pool().clone(), b.pool().clone());
    Pair {
        a,
        b,
        cleanup: Some(Box::pin(async move {
            pools.0.close().await;
            pools.1.close().await;
            store_common::remove_sqlite_files(&path);
        })),
    }
}

/// `None` (a skip, or a failure in CI) when PostgreSQL is unreachable.
#[cfg(feature = "postgres")]
pub async fn postgres() -> Option<Pair<tower_mcp_auth::store::PostgresStore>> {
    use tower_mcp_auth::store::PostgresStore;
    let (a, schema) = store_common::postgres_store().await?;
    let b = PostgresStore::builder(store_common::database_url())
        .schema(&schema)
        .max_connections(4)
        .build()
        .await
        .unwrap();
    let pool = a.pool().clone();
    Some(Pair {
        a,
        b,
        cleanup: Some(Box::pin(async move {
            store_common::drop_schema(&pool, &schema).await
        })),
    })
}

/// `None` (a skip, or a failure in CI) when Redis is unreachable.
#[cfg(feature = "redis")]
pub async fn redis() -> Option<Pair<tower_mcp_auth::store::RedisStore>> {
    use tower_mcp_auth::store::RedisStore;
    let prefix = format!("tma-pair:{}:", store_common::random_id());
    let connect = || {
        RedisStore::builder(store_common::redis_url())
            .prefix(&prefix)
            .build()
    };
    let a = match connect().await {
        Ok(a) => a,
        Err(err) => {
            store_common::unreachable("Redis", "REDIS_URL", &err);
            return None;
        }
    };
    let b = connect().await.unwrap();
    Some(Pair {
        a,
        b,
        cleanup: Some(Box::pin(store_common::redis_cleanup(prefix))),
    })
}
