//! [`PostgresStore`] (feature `postgres`).

use std::fmt;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Row};

use super::{map_sqlx, stored_tat, ttl_micros, Class, Migration, Options, Pooled};
use crate::deferred::Deferred;
use crate::store::error::check_ttl;
use crate::store::{Quota, RateDecision, StateStore, StoreError, StoreResult};

#[cfg(feature = "keys")]
mod keys;

const BACKEND: &str = "postgres";

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "state store tables and GCRA function",
        sql: include_str!("../../../migrations/postgres/0001_state_store.sql"),
    },
    Migration {
        version: 2,
        description: "API keys",
        sql: include_str!("../../../migrations/postgres/0002_api_keys.sql"),
    },
];

/// `put`: stores a value and TTL, replacing any previous one.
const UPSERT: &str =
    "INSERT INTO mcp_auth_kv (key, value, expires_at) VALUES ($1, $2, mcp_auth_now_us() + $3) \
     ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at";

/// `insert_if_absent`: [`UPSERT`], but only over an expired row.
const INSERT_IF_ABSENT: &str =
    "INSERT INTO mcp_auth_kv (key, value, expires_at) VALUES ($1, $2, mcp_auth_now_us() + $3) \
     ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at \
     WHERE mcp_auth_kv.expires_at <= mcp_auth_now_us()";

/// Serialises concurrent `migrate()` calls across processes (an arbitrary constant).
const MIGRATION_LOCK: i64 = 0x6d63_705f_6175_7468; // "mcp_auth"

/// A [`StateStore`] in PostgreSQL: durable OAuth state, tokens and sessions, and rate limits
/// shared by every instance, timed by the database server's clock.
///
/// * Tables `mcp_auth_kv` and (unlogged) `mcp_auth_gcra`, plus two functions, created by the
///   migrations shipped in `migrations/postgres/` and applied by [`migrate`](Self::migrate)
///   (recorded in `tower_mcp_auth_migrations`, never in the application's `_sqlx_migrations`).
/// * GCRA is one round trip: a function locks the key's row, reads `clock_timestamp()` and
///   stores the new TAT only when allowed. `take` is one `DELETE ... RETURNING`.
/// * Expired rows are invisible to reads and deleted by a sweep every
///   [`DEFAULT_PURGE_INTERVAL`](crate::store::DEFAULT_PURGE_INTERVAL) ([`PostgresStoreBuilder::purge_interval`]); a store made
///   [`from_pool`](Self::from_pool) leaves [`purge_expired`](Self::purge_expired) to you.
/// * Every operation has a deadline ([`PostgresStoreBuilder::operation_timeout`]).
///
/// Cloning is cheap; clones share the pool.
///
/// ```no_run
/// use std::time::Duration;
/// use tower_mcp_auth::store::{PostgresStore, StateStore};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let store = PostgresStore::connect("postgres://app@db.internal/app").await?;
/// store.put("session:1", b"data".to_vec(), Duration::from_secs(3600)).await?;
/// // From a periodic task:
/// let purged = store.purge_expired().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PostgresStore {
    db: Pooled<PgPool>,
}

/// Configures a [`PostgresStore`]; [`build`](Self::build) connects and migrates.
///
/// ```no_run
/// use std::time::Duration;
/// use tower_mcp_auth::store::PostgresStore;
///
/// # async fn demo() -> Result<(), tower_mcp_auth::store::StoreError> {
/// let store = PostgresStore::builder("postgres://app@db.internal/app")
///     .schema("mcp_auth")
///     .max_connections(20)
///     .acquire_timeout(Duration::from_secs(1))
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
#[must_use]
pub struct PostgresStoreBuilder {
    url: String,
    schema: Option<String>,
    acquire_timeout: Duration,
    options: Options,
}

impl PostgresStore {
    /// Connects with the defaults (10 connections, 5 s acquire timeout, the connection's
    /// default schema) and applies the migrations.
    ///
    /// ```no_run
    /// use tower_mcp_auth::store::PostgresStore;
    /// # async fn demo() -> Result<(), tower_mcp_auth::store::StoreError> {
    /// let store = PostgresStore::connect("postgres://postgres@127.0.0.1/test").await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::builder(url).build().await
    }

    /// Starts configuring a store for a `postgres://` URL.
    ///
    /// ```
    /// use tower_mcp_auth::store::PostgresStore;
    /// let builder = PostgresStore::builder("postgres://postgres@127.0.0.1/test").schema("auth");
    /// ```
    pub fn builder(url: impl Into<String>) -> PostgresStoreBuilder {
        PostgresStoreBuilder {
            url: url.into(),
            schema: None,
            options: Options::new(10),
            acquire_timeout: Duration::from_secs(5),
        }
    }

    /// Uses a pool you already have. Call [`migrate`](Self::migrate) once unless the tables
    /// exist already.
    ///
    /// ```no_run
    /// use tower_mcp_auth::store::PostgresStore;
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = sqlx::PgPool::connect("postgres://postgres@127.0.0.1/test").await?;
    /// let store = PostgresStore::from_pool(pool);
    /// store.migrate().await?;
    /// # Ok(()) }
    /// ```
    pub fn from_pool(pool: PgPool) -> Self {
        Self {
            db: Pooled::from_pool(BACKEND, pool),
        }
    }

    /// Sets the deadline of every operation, pool wait included (default 5 s); past it the
    /// operation fails with [`StoreError::Timeout`].
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use tower_mcp_auth::store::PostgresStore;
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = sqlx::PgPool::connect("postgres://postgres@127.0.0.1/test").await?;
    /// let store = PostgresStore::from_pool(pool).with_operation_timeout(Duration::from_secs(1));
    /// # Ok(()) }
    /// ```
    pub fn with_operation_timeout(mut self, timeout: Duration) -> Self {
        self.db.timeout = timeout;
        self
    }

    /// The underlying pool.
    ///
    /// ```no_run
    /// use tower_mcp_auth::store::PostgresStore;
    /// # async fn demo() -> Result<(), tower_mcp_auth::store::StoreError> {
    /// let store = PostgresStore::connect("postgres://postgres@127.0.0.1/test").await?;
    /// let size = store.pool().size();
    /// # Ok(()) }
    /// ```
    pub fn pool(&self) -> &PgPool {
        &self.db.pool
    }

    /// Applies the shipped migrations that are not applied yet, in one transaction under an
    /// advisory lock (safe to run from several instances at once). Idempotent.
    ///
    /// ```no_run
    /// use tower_mcp_auth::store::PostgresStore;
    /// # async fn demo() -> Result<(), tower_mcp_auth::store::StoreError> {
    /// let store = PostgresStore::connect("postgres://postgres@127.0.0.1/test").await?;
    /// store.migrate().await?; // nothing left to do
    /// # Ok(()) }
    /// ```
    pub async fn migrate(&self) -> Result<(), StoreError> {
        migrate(&self.db.pool, None).await
    }

    /// Deletes expired values and full-again rate-limit rows; returns how many rows went.
    ///
    /// ```no_run
    /// use tower_mcp_auth::store::PostgresStore;
    /// # async fn demo() -> Result<(), tower_mcp_auth::store::StoreError> {
    /// let store = PostgresStore::connect("postgres://postgres@127.0.0.1/test").await?;
    /// let removed: u64 = store.purge_expired().await?;
    /// # Ok(()) }
    /// ```
    pub async fn purge_expired(&self) -> Result<u64, StoreError> {
        purge_expired(&self.db.pool).await
    }

    /// `put` and `insert_if_absent`: runs `sql` (binding key, value and TTL) and reports
    /// the rows it wrote through `done`.
    fn upsert<T: Send + 'static>(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
        sql: &'static str,
        done: fn(u64) -> T,
    ) -> StoreResult<T> {
        if let Err(e) = check_ttl(ttl) {
            return Deferred::ready(Err(e));
        }
        let key = key.to_owned();
        self.db.run(|pool| async move {
            let written = sqlx::query(sql)
                .bind(&key)
                .bind(value)
                .bind(ttl_micros(ttl))
                .execute(&pool)
                .await
                .map_err(map_err)?;
            Ok(done(written.rows_affected()))
        })
    }
}

impl PostgresStoreBuilder {
    /// Keeps every table and function in this schema (created if missing) by setting the
    /// connections' `search_path`. Lowercase letters, digits and `_`, at most 63 bytes,
    /// not starting with a digit.
    ///
    /// ```
    /// use tower_mcp_auth::store::PostgresStore;
    /// let builder = PostgresStore::builder("postgres://postgres@127.0.0.1/test").schema("mcp_auth");
    /// ```
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// Pool size (default 10).
    ///
    /// ```
    /// use tower_mcp_auth::store::PostgresStore;
    /// let builder = PostgresStore::builder("postgres://postgres@127.0.0.1/test").max_connections(4);
    /// ```
    pub fn max_connections(mut self, max: u32) -> Self {
        self.options.max_connections = max;
        self
    }

    /// How long a call may wait for a pooled connection before failing with
    /// [`StoreError::Timeout`] (default 5 s).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_mcp_auth::store::PostgresStore;
    /// let builder = PostgresStore::builder("postgres://postgres@127.0.0.1/test")
    ///     .acquire_timeout(Duration::from_millis(500));
    /// ```
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    shared_builder_options!(
        PostgresStore,
        "PostgresStore::builder(\"postgres://postgres@127.0.0.1/test\")"
    );

    /// Validates, connects and (by default) migrates.
    ///
    /// ```no_run
    /// use tower_mcp_auth::store::PostgresStore;
    /// # async fn demo() -> Result<(), tower_mcp_auth::store::StoreError> {
    /// let store = PostgresStore::builder("postgres://postgres@127.0.0.1/test").build().await?;
    /// # Ok(()) }
    /// ```
    pub async fn build(self) -> Result<PostgresStore, StoreError> {
        self.options.check()?;
        if let Some(schema) = &self.schema {
            check_schema(schema)?;
        }
        // The URL may carry a password: report the parse failure without it.
        let mut options: PgConnectOptions = self
            .url
            .parse()
            .map_err(|_| StoreError::Config("invalid PostgreSQL URL".into()))?;
        if let Some(schema) = &self.schema {
            options = options.options([("search_path", schema.as_str())]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(self.options.max_connections)
            .acquire_timeout(self.acquire_timeout)
            .connect_with(options)
            .await
            .map_err(map_err)?;
        if self.options.migrate {
            migrate(&pool, self.schema.as_deref()).await?;
        }
        let db = Pooled::built(BACKEND, pool, &self.options, |pool| async move {
            purge_expired(&pool).await
        });
        Ok(PostgresStore { db })
    }
}

/// Deletes expired values and full-again GCRA rows; see [`PostgresStore::purge_expired`].
async fn purge_expired(pool: &PgPool) -> Result<u64, StoreError> {
    let removed: i64 = sqlx::query_scalar(
        "WITH kv AS (DELETE FROM mcp_auth_kv WHERE expires_at <= mcp_auth_now_us() RETURNING 1), \
              g AS (DELETE FROM mcp_auth_gcra WHERE tat <= mcp_auth_now_us() RETURNING 1) \
         SELECT (SELECT count(*) FROM kv) + (SELECT count(*) FROM g)",
    )
    .fetch_one(pool)
    .await
    .map_err(map_err)?;
    Ok(u64::try_from(removed).unwrap_or(0))
}

impl StateStore for PostgresStore {
    fn decide(&self, key: &str, quota: Quota, cost: u32, peek: bool) -> StoreResult<RateDecision> {
        let gcra = quota.gcra_micros();
        let key = key.to_owned();
        self.db.run(|pool| async move {
            // Both fit in i64: bounded by MAX_PERIOD in microseconds.
            let row =
                sqlx::query("SELECT out_now, out_tat FROM mcp_auth_gcra_step($1, $2, $3, $4, $5)")
                    .bind(&key)
                    .bind(gcra.interval as i64)
                    .bind(gcra.tau as i64)
                    .bind(i64::from(cost))
                    .bind(!peek && cost > 0)
                    .fetch_one(&pool)
                    .await
                    .map_err(map_err)?;
            let now: i64 = row.try_get(0).map_err(map_err)?;
            let tat: i64 = row.try_get(1).map_err(map_err)?;
            let step = gcra.step(
                Some(stored_tat(BACKEND, tat)?),
                stored_tat(BACKEND, now)?,
                cost,
            );
            Ok(step.decision)
        })
    }

    fn gcra_release(&self, key: &str, quota: Quota, cost: u32) -> StoreResult<()> {
        // Fits in i64: at most the burst's worth, bounded by MAX_PERIOD in microseconds.
        let back = quota.gcra_micros().interval.saturating_mul(u64::from(cost)) as i64;
        let key = key.to_owned();
        // One statement, so the row lock makes it atomic with concurrent gcra() calls; a TAT
        // moved into the past reads as a full bucket.
        self.db.run(|pool| async move {
            sqlx::query("UPDATE mcp_auth_gcra SET tat = GREATEST(tat - $2, 0) WHERE key = $1")
                .bind(&key)
                .bind(back)
                .execute(&pool)
                .await
                .map_err(map_err)?;
            Ok(())
        })
    }

    fn insert_if_absent(&self, key: &str, value: Vec<u8>, ttl: Duration) -> StoreResult<bool> {
        // An expired row counts as absent: overwrite it in the same statement.
        self.upsert(key, value, ttl, INSERT_IF_ABSENT, |rows| rows == 1)
    }

    fn take(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let key = key.to_owned();
        self.db.run(|pool| async move {
            let row = sqlx::query(
                "DELETE FROM mcp_auth_kv WHERE key = $1 RETURNING value, expires_at > mcp_auth_now_us()",
            )
            .bind(&key)
            .fetch_optional(&pool)
            .await
            .map_err(map_err)?;
            live_value(row)
        })
    }

    fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let key = key.to_owned();
        self.db.run(|pool| async move {
            sqlx::query_scalar(
                "SELECT value FROM mcp_auth_kv WHERE key = $1 AND expires_at > mcp_auth_now_us()",
            )
            .bind(&key)
            .fetch_optional(&pool)
            .await
            .map_err(map_err)
        })
    }

    fn put(&self, key: &str, value: Vec<u8>, ttl: Duration) -> StoreResult<()> {
        self.upsert(key, value, ttl, UPSERT, drop)
    }

    fn delete(&self, key: &str) -> StoreResult<bool> {
        let key = key.to_owned();
        self.db.run(|pool| async move {
            let live: Option<bool> = sqlx::query_scalar(
                "DELETE FROM mcp_auth_kv WHERE key = $1 RETURNING expires_at > mcp_auth_now_us()",
            )
            .bind(&key)
            .fetch_optional(&pool)
            .await
            .map_err(map_err)?;
            Ok(live.unwrap_or(false))
        })
    }
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("pool_size", &self.db.pool.size())
            .field("purge_interval", &self.db.purge_interval())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for PostgresStoreBuilder {
    // Never print the URL: it may carry a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("PostgresStoreBuilder");
        d.field("schema", &self.schema);
        self.options
            .debug_fields(&mut d)
            .field("acquire_timeout", &self.acquire_timeout)
            .finish_non_exhaustive()
    }
}

/// `(value, live)` from a `DELETE ... RETURNING`: an expired row is deleted but not returned.
fn live_value(row: Option<sqlx::postgres::PgRow>) -> Result<Option<Vec<u8>>, StoreError> {
    let Some(row) = row else { return Ok(None) };
    let live: bool = row.try_get(1).map_err(map_err)?;
    if live {
        Ok(Some(row.try_get(0).map_err(map_err)?))
    } else {
        Ok(None)
    }
}

async fn migrate(pool: &PgPool, schema: Option<&str>) -> Result<(), StoreError> {
    let mut tx = pool.begin().await.map_err(map_err)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    if let Some(schema) = schema {
        // `schema` was validated by `check_schema`: a plain lowercase identifier.
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE SCHEMA IF NOT EXISTS {schema}"
        )))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    }
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS tower_mcp_auth_migrations (\
             version BIGINT PRIMARY KEY, \
             description TEXT NOT NULL, \
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM tower_mcp_auth_migrations")
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
    for m in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        sqlx::raw_sql(m.sql)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query("INSERT INTO tower_mcp_auth_migrations (version, description) VALUES ($1, $2)")
            .bind(m.version)
            .bind(m.description)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
    }
    tx.commit().await.map_err(map_err)
}

fn check_schema(schema: &str) -> Result<(), StoreError> {
    let mut bytes = schema.bytes();
    let valid = schema.len() <= 63
        && bytes
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(StoreError::Config(
            "PostgreSQL schema must be a lowercase identifier ([a-z_][a-z0-9_]*, at most 63 bytes)"
                .into(),
        ))
    }
}

fn map_err(err: sqlx::Error) -> StoreError {
    map_sqlx(BACKEND, err, classify)
}

/// SQLSTATE classes that mean "the database is not usable right now".
fn classify(code: &str) -> Option<Class> {
    match code {
        // query_canceled (statement_timeout), lock_not_available (lock_timeout)
        "57014" | "55P03" => Some(Class::Timeout),
        // admin / crash shutdown, cannot connect now, read-only standby
        "57P01" | "57P02" | "57P03" | "25006" => Some(Class::Unavailable),
        // connection exceptions, insufficient resources
        c if c.starts_with("08") || c.starts_with("53") => Some(Class::Unavailable),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert!(check_schema("mcp_auth_1").is_ok());
        assert!(check_schema("_x").is_ok());
        assert!(check_schema("").is_err());
        assert!(check_schema("1abc").is_err());
        assert!(check_schema("Auth").is_err());
        assert!(check_schema("a; DROP TABLE x").is_err());
        assert!(check_schema(&"a".repeat(64)).is_err());
    }
}
