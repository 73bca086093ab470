//! [`SqliteStore`] (feature `sqlite`).

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::Row;

use super::{map_sqlx, stored_tat, tat_to_i64, ttl_micros, Class, Migration, Options, Pooled};
use crate::deferred::Deferred;
use crate::store::error::check_ttl;
use crate::store::{Quota, RateDecision, StateStore, StoreError, StoreResult};

#[cfg(feature = "keys")]
mod keys;

const BACKEND: &str = "sqlite";

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "state store tables",
        sql: include_str!("../../../migrations/sqlite/0001_state_store.sql"),
    },
    Migration {
        version: 2,
        description: "API keys",
        sql: include_str!("../../../migrations/sqlite/0002_api_keys.sql"),
    },
];

/// `put`: stores a value and its expiry, replacing any previous one.
const UPSERT: &str = "INSERT INTO mcp_auth_kv (key, value, expires_at) VALUES (?1, ?2, ?3) \
     ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at";

/// `insert_if_absent`: [`UPSERT`], but only over a row expired at `?4` (now).
const INSERT_IF_ABSENT: &str =
    "INSERT INTO mcp_auth_kv (key, value, expires_at) VALUES (?1, ?2, ?3) \
     ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at \
     WHERE mcp_auth_kv.expires_at <= ?4";

/// A [`StateStore`] in a SQLite file: durable state for a single host, shared by every
/// process on it. WAL mode (readers never block the writer) and a busy timeout (writers wait
/// for each other instead of failing); GCRA runs in `BEGIN IMMEDIATE` transactions. Time is
/// the host's wall clock.
///
/// Tables `mcp_auth_kv` and `mcp_auth_gcra` come from the migrations shipped in
/// `migrations/sqlite/`, applied by [`migrate`](Self::migrate). `take` is one
/// `DELETE ... RETURNING`; expired rows are invisible to reads and deleted by a sweep every
/// [`DEFAULT_PURGE_INTERVAL`](crate::store::DEFAULT_PURGE_INTERVAL) ([`SqliteStoreBuilder::purge_interval`]); a store made
/// [`from_pool`](Self::from_pool) leaves [`purge_expired`](Self::purge_expired) to you.
///
/// Cloning is cheap; clones share the pool.
///
/// ```no_run
/// use std::time::Duration;
/// use tower_mcp_auth::store::{SqliteStore, StateStore};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let store = SqliteStore::open("/var/lib/myapp/auth-state.db").await?;
/// assert!(store.insert_if_absent("state:abc", b"flow".to_vec(), Duration::from_secs(300)).await?);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SqliteStore {
    db: Pooled<SqlitePool>,
}

/// Configures a [`SqliteStore`]; [`build`](Self::build) opens (creating the file if needed)
/// and migrates.
///
/// ```no_run
/// use std::time::Duration;
/// use tower_mcp_auth::store::SqliteStore;
///
/// # async fn demo() -> Result<(), tower_mcp_auth::store::StoreError> {
/// let store = SqliteStore::builder("auth-state.db")
///     .busy_timeout(Duration::from_secs(2))
///     .max_connections(4)
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
#[must_use]
pub struct SqliteStoreBuilder {
    path: PathBuf,
    busy_timeout: Duration,
    options: Options,
}

impl SqliteStore {
    /// Opens (or creates) the database file with the defaults (5 s busy timeout,
    /// 4 connections) and applies the migrations.
    ///
    /// ```no_run
    /// use tower_mcp_auth::store::SqliteStore;
    /// # async fn demo() -> Result<(), tower_mcp_auth::store::StoreError> {
    /// let store = SqliteStore::open("auth-state.db").await?;
    /// # Ok(()) }
    /// ```
    pub async fn open(path: impl Into<PathBuf>) -> Result<Self, StoreError> {
        Self::builder(path).build().await
    }

    /// Starts configuring a store in the file at `path`.
    ///
    /// ```
    /// use tower_mcp_auth::store::SqliteStore;
    /// let builder = SqliteStore::builder("auth-state.db").max_connections(2);
    /// ```
    pub fn builder(path: impl Into<PathBuf>) -> SqliteStoreBuilder {
        SqliteStoreBuilder {
            path: path.into(),
            busy_timeout: Duration::from_secs(5),
            options: Options::new(4),
        }
    }

    /// Uses a pool you already have (configure WAL and a busy timeout on it). Call
    /// [`migrate`](Self::migrate) once unless the tables exist already.
    ///
    /// ```no_run
    /// use tower_mcp_auth::store::SqliteStore;
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = sqlx::SqlitePool::connect("sqlite://auth-state.db?mode=rwc").await?;
    /// let store = SqliteStore::from_pool(pool);
    /// store.migrate().await?;
    /// # Ok(()) }
    /// ```
    pub fn from_pool(pool: SqlitePool) -> Self {
        Self {
            db: Pooled::from_pool(BACKEND, pool),
        }
    }

    /// Sets the deadline of every operation, pool wait included (default 5 s); past it the
    /// operation fails with [`StoreError::Timeout`].
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use tower_mcp_auth::store::SqliteStore;
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = sqlx::SqlitePool::connect("sqlite://auth-state.db?mode=rwc").await?;
    /// let store = SqliteStore::from_pool(pool).with_operation_timeout(Duration::from_secs(1));
    /// # Ok(()) }
    /// ```
    pub fn with_operation_timeout(mut self, timeout: Duration) -> Self {
        self.db.timeout = timeout;
        self
    }

    /// The underlying pool.
    ///
    /// ```no_run
    /// use tower_mcp_auth::store::SqliteStore;
    /// # async fn demo() -> Result<(), tower_mcp_auth::store::StoreError> {
    /// let store = SqliteStore::open("auth-state.db").await?;
    /// let size = store.pool().size();
    /// # Ok(()) }
    /// ```
    pub fn pool(&self) -> &SqlitePool {
        &self.db.pool
    }

    /// Applies the shipped migrations that are not applied yet, in one `BEGIN IMMEDIATE`
    /// transaction (safe from several processes at once). Idempotent.
    ///
    /// ```no_run
    /// use tower_mcp_auth::store::SqliteStore;
    /// # async fn demo() -> Result<(), tower_mcp_auth::store::StoreError> {
    /// let store = SqliteStore::open("auth-state.db").await?;
    /// store.migrate().await?; // nothing left to do
    /// # Ok(()) }
    /// ```
    pub async fn migrate(&self) -> Result<(), StoreError> {
        migrate(&self.db.pool).await
    }

    /// Deletes expired values and full-again rate-limit rows; returns how many rows went.
    ///
    /// ```no_run
    /// use tower_mcp_auth::store::SqliteStore;
    /// # async fn demo() -> Result<(), tower_mcp_auth::store::StoreError> {
    /// let store = SqliteStore::open("auth-state.db").await?;
    /// let removed: u64 = store.purge_expired().await?;
    /// # Ok(()) }
    /// ```
    pub async fn purge_expired(&self) -> Result<u64, StoreError> {
        purge_expired(&self.db.pool).await
    }

    /// `put` and `insert_if_absent` (`only_expired`: overwrite an expired row only), then
    /// the rows written, through `done`.
    fn upsert<T: Send + 'static>(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
        only_expired: bool,
        done: fn(u64) -> T,
    ) -> StoreResult<T> {
        if let Err(e) = check_ttl(ttl) {
            return Deferred::ready(Err(e));
        }
        let key = key.to_owned();
        self.db.run(|pool| async move {
            let now = now_micros()?;
            let query = sqlx::query(if only_expired {
                INSERT_IF_ABSENT
            } else {
                UPSERT
            })
            .bind(&key)
            .bind(value)
            .bind(now.saturating_add(ttl_micros(ttl)));
            let query = if only_expired { query.bind(now) } else { query };
            let written = query.execute(&pool).await.map_err(map_err)?;
            Ok(done(written.rows_affected()))
        })
    }
}

impl SqliteStoreBuilder {
    /// How long a writer waits for another one before failing with [`StoreError::Timeout`]
    /// (default 5 s).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_mcp_auth::store::SqliteStore;
    /// let builder = SqliteStore::builder("a.db").busy_timeout(Duration::from_millis(500));
    /// ```
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Pool size (default 4). Writes are serialised by SQLite anyway; more connections only
    /// help concurrent reads.
    ///
    /// ```
    /// use tower_mcp_auth::store::SqliteStore;
    /// let builder = SqliteStore::builder("a.db").max_connections(8);
    /// ```
    pub fn max_connections(mut self, max: u32) -> Self {
        self.options.max_connections = max;
        self
    }

    shared_builder_options!(SqliteStore, "SqliteStore::builder(\"a.db\")");

    /// Validates, opens (creating the file if needed) and (by default) migrates.
    ///
    /// ```no_run
    /// use tower_mcp_auth::store::SqliteStore;
    /// # async fn demo() -> Result<(), tower_mcp_auth::store::StoreError> {
    /// let store = SqliteStore::builder("auth-state.db").build().await?;
    /// # Ok(()) }
    /// ```
    pub async fn build(self) -> Result<SqliteStore, StoreError> {
        self.options.check()?;
        let options = SqliteConnectOptions::new()
            .filename(&self.path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL is durable across application crashes in WAL mode; only an OS crash
            // can lose the last transactions, which is acceptable for auth state.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(self.busy_timeout);
        let pool = SqlitePoolOptions::new()
            .max_connections(self.options.max_connections)
            // A pool wait longer than the busy timeout would only hide a stuck writer.
            .acquire_timeout(self.busy_timeout)
            .connect_with(options)
            .await
            .map_err(map_err)?;
        let db = Pooled::built(BACKEND, pool, &self.options, |pool| async move {
            purge_expired(&pool).await
        });
        let store = SqliteStore { db };
        if self.options.migrate {
            store.migrate().await?;
        }
        Ok(store)
    }
}

/// Deletes expired values and full-again GCRA rows; see [`SqliteStore::purge_expired`].
async fn purge_expired(pool: &SqlitePool) -> Result<u64, StoreError> {
    let now = now_micros()?;
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
    let kv = sqlx::query("DELETE FROM mcp_auth_kv WHERE expires_at <= ?1")
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    let gcra = sqlx::query("DELETE FROM mcp_auth_gcra WHERE tat <= ?1")
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    tx.commit().await.map_err(map_err)?;
    Ok(kv.rows_affected() + gcra.rows_affected())
}

impl StateStore for SqliteStore {
    fn decide(&self, key: &str, quota: Quota, cost: u32, peek: bool) -> StoreResult<RateDecision> {
        let gcra = quota.gcra_micros();
        let key = key.to_owned();
        self.db.run(|pool| async move {
            if peek || cost == 0 {
                let tat: Option<i64> =
                    sqlx::query_scalar("SELECT tat FROM mcp_auth_gcra WHERE key = ?1")
                        .bind(&key)
                        .fetch_optional(&pool)
                        .await
                        .map_err(map_err)?;
                let tat = tat.map(|t| stored_tat(BACKEND, t)).transpose()?;
                return Ok(gcra.step(tat, now_micros_u64()?, cost).decision);
            }
            // Take the write lock first: a deferred transaction would read, then fail to
            // upgrade (SQLITE_BUSY) when another writer got there in between.
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
            let tat: Option<i64> =
                sqlx::query_scalar("SELECT tat FROM mcp_auth_gcra WHERE key = ?1")
                    .bind(&key)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
            let tat = tat.map(|t| stored_tat(BACKEND, t)).transpose()?;
            // Read the clock under the lock, so TATs are written in clock order.
            let step = gcra.step(tat, now_micros_u64()?, cost);
            if let Some(new_tat) = step.new_tat {
                sqlx::query(
                    "INSERT INTO mcp_auth_gcra (key, tat) VALUES (?1, ?2) \
                     ON CONFLICT (key) DO UPDATE SET tat = excluded.tat",
                )
                .bind(&key)
                .bind(tat_to_i64(BACKEND, new_tat)?)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
            } else {
                tx.rollback().await.map_err(map_err)?;
            }
            Ok(step.decision)
        })
    }

    fn gcra_release(&self, key: &str, quota: Quota, cost: u32) -> StoreResult<()> {
        // Fits in i64: at most the burst's worth, bounded by MAX_PERIOD in microseconds.
        let back = quota.gcra_micros().interval.saturating_mul(u64::from(cost)) as i64;
        let key = key.to_owned();
        // One statement: SQLite's write lock makes it atomic with concurrent gcra() calls.
        self.db.run(|pool| async move {
            sqlx::query("UPDATE mcp_auth_gcra SET tat = max(tat - ?2, 0) WHERE key = ?1")
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
        self.upsert(key, value, ttl, true, |rows| rows == 1)
    }

    fn take(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let key = key.to_owned();
        self.db.run(|pool| async move {
            let now = now_micros()?;
            let row =
                sqlx::query("DELETE FROM mcp_auth_kv WHERE key = ?1 RETURNING value, expires_at")
                    .bind(&key)
                    .fetch_optional(&pool)
                    .await
                    .map_err(map_err)?;
            let Some(row) = row else { return Ok(None) };
            let expires_at: i64 = row.try_get(1).map_err(map_err)?;
            if expires_at > now {
                Ok(Some(row.try_get(0).map_err(map_err)?))
            } else {
                Ok(None)
            }
        })
    }

    fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let key = key.to_owned();
        self.db.run(|pool| async move {
            sqlx::query_scalar("SELECT value FROM mcp_auth_kv WHERE key = ?1 AND expires_at > ?2")
                .bind(&key)
                .bind(now_micros()?)
                .fetch_optional(&pool)
                .await
                .map_err(map_err)
        })
    }

    fn put(&self, key: &str, value: Vec<u8>, ttl: Duration) -> StoreResult<()> {
        self.upsert(key, value, ttl, false, drop)
    }

    fn delete(&self, key: &str) -> StoreResult<bool> {
        let key = key.to_owned();
        self.db.run(|pool| async move {
            let now = now_micros()?;
            let expires_at: Option<i64> =
                sqlx::query_scalar("DELETE FROM mcp_auth_kv WHERE key = ?1 RETURNING expires_at")
                    .bind(&key)
                    .fetch_optional(&pool)
                    .await
                    .map_err(map_err)?;
            Ok(expires_at.is_some_and(|e| e > now))
        })
    }
}

impl fmt::Debug for SqliteStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("SqliteStoreBuilder");
        d.field("path", &self.path)
            .field("busy_timeout", &self.busy_timeout);
        self.options.debug_fields(&mut d).finish()
    }
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("pool_size", &self.db.pool.size())
            .field("purge_interval", &self.db.purge_interval())
            .finish_non_exhaustive()
    }
}

async fn migrate(pool: &SqlitePool) -> Result<(), StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS tower_mcp_auth_migrations (\
             version INTEGER PRIMARY KEY, \
             description TEXT NOT NULL, \
             applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)",
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
        sqlx::query("INSERT INTO tower_mcp_auth_migrations (version, description) VALUES (?1, ?2)")
            .bind(m.version)
            .bind(m.description)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
    }
    tx.commit().await.map_err(map_err)
}

/// Wall-clock microseconds since the Unix epoch: the shared time base of every process
/// using the file.
fn now_micros_u64() -> Result<u64, StoreError> {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| StoreError::InvalidArgument("system clock is before 1970"))?;
    Ok(u64::try_from(since.as_micros()).unwrap_or(u64::MAX))
}

fn now_micros() -> Result<i64, StoreError> {
    tat_to_i64(BACKEND, now_micros_u64()?)
}

fn map_err(err: sqlx::Error) -> StoreError {
    map_sqlx(BACKEND, err, classify)
}

/// SQLite (extended) result codes that mean "not usable right now".
fn classify(code: &str) -> Option<Class> {
    match code.parse::<i32>().ok()? & 0xff {
        // SQLITE_BUSY, SQLITE_LOCKED: the busy timeout ran out.
        5 | 6 => Some(Class::Timeout),
        // SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_READONLY
        10 | 13 | 14 | 8 => Some(Class::Unavailable),
        _ => None,
    }
}
