//! SQL stores (features `postgres` and `sqlite`), on sqlx.
//!
//! Both use the same two tables, created by the migrations shipped in `migrations/`:
//! `mcp_auth_gcra (key, tat)` and `mcp_auth_kv (key, value, expires_at)`, all times in
//! microseconds since the Unix epoch. Migrations are embedded with `include_str!` and applied
//! by the store itself (recorded in `tower_mcp_auth_migrations`), so they never mix with the
//! application's own `_sqlx_migrations` and need none of sqlx's macros.
//!
//! * Single use is one `DELETE ... RETURNING` statement: of concurrent takers, one gets the row.
//! * GCRA is atomic: PostgreSQL locks the key's row inside a function (one round trip, server
//!   clock); SQLite takes the write lock up front with `BEGIN IMMEDIATE`.
//! * Expired rows are invisible to reads. A store made by its builder reclaims them itself
//!   every [`DEFAULT_PURGE_INTERVAL`] (a Tokio task that ends with the store); a store made
//!   `from_pool` leaves `purge_expired()` to the application.

/// The builder options both SQL stores share, with their docs: `operation_timeout`,
/// `migrate` and `purge_interval`. `$store` names the store type, `$builder` an expression
/// starting a builder, both for the doc examples.
macro_rules! shared_builder_options {
    ($store:ident, $builder:literal) => {
        /// Deadline of every operation, pool wait included (default 5 s); past it the
        /// operation fails with [`StoreError::Timeout`](crate::store::StoreError::Timeout), even when the database stopped
        /// answering.
        ///
        /// ```
        /// use std::time::Duration;
        #[doc = concat!("use tower_mcp_auth::store::", stringify!($store), ";")]
        #[doc = concat!("let builder = ", $builder, ".operation_timeout(Duration::from_secs(1));")]
        /// ```
        pub fn operation_timeout(mut self, timeout: Duration) -> Self {
            self.options.operation_timeout = timeout;
            self
        }

        /// Whether [`build`](Self::build) applies the migrations (default `true`). Turn off
        /// when a deployment step owns schema changes.
        ///
        /// ```
        #[doc = concat!("use tower_mcp_auth::store::", stringify!($store), ";")]
        #[doc = concat!("let builder = ", $builder, ".migrate(false);")]
        /// ```
        pub fn migrate(mut self, migrate: bool) -> Self {
            self.options.migrate = migrate;
            self
        }

        /// How often the built store deletes expired rows (default
        /// [`DEFAULT_PURGE_INTERVAL`](crate::store::DEFAULT_PURGE_INTERVAL), 5 minutes); `None` turns the sweep off, for
        /// deployments that run `purge_expired` from a job of their own. The sweep is a
        /// Tokio task that stops when the last clone of the store is dropped. With several
        /// instances sharing one database each one sweeps; the deletes are idempotent.
        ///
        /// ```
        /// use std::time::Duration;
        #[doc = concat!("use tower_mcp_auth::store::", stringify!($store), ";")]
        #[doc = concat!("let builder = ", $builder, ".purge_interval(Some(Duration::from_secs(60)));")]
        /// ```
        pub fn purge_interval(mut self, interval: Option<Duration>) -> Self {
            self.options.purge_interval = interval.filter(|i| !i.is_zero());
            self
        }
    };
}

mod keys;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "postgres")]
pub use postgres::{PostgresStore, PostgresStoreBuilder};
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteStore, SqliteStoreBuilder};

use super::{StoreError, StoreResult};
use crate::deferred::Deferred;

/// Default deadline for one store operation, pool wait included.
const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a SQL store built by its builder deletes expired rows, unless configured
/// otherwise (`purge_interval`).
///
/// ```
/// # use std::time::Duration;
/// assert_eq!(tower_mcp_auth::store::DEFAULT_PURGE_INTERVAL, Duration::from_secs(300));
/// ```
pub const DEFAULT_PURGE_INTERVAL: Duration = Duration::from_secs(300);

/// The builder options both SQL stores share (see `shared_builder_options!`).
struct Options {
    max_connections: u32,
    operation_timeout: Duration,
    migrate: bool,
    purge_interval: Option<Duration>,
}

impl Options {
    fn new(max_connections: u32) -> Self {
        Self {
            max_connections,
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
            migrate: true,
            purge_interval: Some(DEFAULT_PURGE_INTERVAL),
        }
    }

    /// Adds the options to a builder's `Debug` output, one field each as before they were
    /// shared.
    fn debug_fields<'a, 'b, 'c>(
        &self,
        d: &'a mut fmt::DebugStruct<'b, 'c>,
    ) -> &'a mut fmt::DebugStruct<'b, 'c> {
        d.field("max_connections", &self.max_connections)
            .field("operation_timeout", &self.operation_timeout)
            .field("migrate", &self.migrate)
            .field("purge_interval", &self.purge_interval)
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.max_connections == 0 {
            return Err(StoreError::Config(
                "max_connections must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// What a SQL store holds besides its SQL: the pool, the deadline of every operation and,
/// for a store made by its builder, the expiry sweep. Clones share all three.
#[derive(Clone)]
struct Pooled<P> {
    backend: &'static str,
    /// The expiry sweep of a store built by its builder; `None` for `from_pool`.
    purge: Option<Arc<PurgeTask>>,
    pool: P,
    timeout: Duration,
}

impl<P: Clone + Send + Sync + 'static> Pooled<P> {
    /// A store on a pool the application made: default deadline, no sweep.
    fn from_pool(backend: &'static str, pool: P) -> Self {
        Self {
            backend,
            purge: None,
            pool,
            timeout: DEFAULT_OPERATION_TIMEOUT,
        }
    }

    /// A store made by its builder: the configured deadline, and `purge` called on the
    /// pool every configured interval.
    fn built<F, Fut>(backend: &'static str, pool: P, options: &Options, purge: F) -> Self
    where
        F: Fn(P) -> Fut + Send + 'static,
        Fut: Future<Output = Result<u64, StoreError>> + Send,
    {
        let sweep = options.purge_interval.map(|interval| {
            let pool = pool.clone();
            PurgeTask::spawn(backend, interval, move || purge(pool.clone()))
        });
        Self {
            backend,
            purge: sweep,
            pool,
            timeout: options.operation_timeout,
        }
    }

    /// Boxes one operation, given a clone of the pool, under the store's deadline.
    fn run<T, F, Fut>(&self, operation: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(P) -> Fut,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        Deferred::boxed(timed(
            self.backend,
            self.timeout,
            operation(self.pool.clone()),
        ))
    }

    /// For `Debug` of the stores.
    fn purge_interval(&self) -> Option<Duration> {
        self.purge.as_deref().map(PurgeTask::interval)
    }
}

/// A store's periodic expiry sweep. Held in an `Arc` by every clone of the store; the task
/// is aborted when the last clone goes, so a dropped store leaves no task (or pool) behind.
struct PurgeTask {
    task: tokio::task::AbortHandle,
    interval: Duration,
}

impl PurgeTask {
    /// Calls `purge` every `interval`, starting one interval from now. Errors are logged
    /// (a database that is down now may be back at the next tick), never fatal.
    fn spawn<F, Fut>(backend: &'static str, interval: Duration, purge: F) -> Arc<Self>
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = Result<u64, StoreError>> + Send,
    {
        let task = tokio::spawn(async move {
            let mut ticks =
                tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            // After a stall, one sweep catches up with everything: no burst of sweeps.
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                match purge().await {
                    Ok(removed) => tracing::debug!(backend, removed, "purged expired rows"),
                    Err(e) => tracing::warn!(backend, error = %e, "could not purge expired rows"),
                }
            }
        });
        Arc::new(Self {
            task: task.abort_handle(),
            interval,
        })
    }

    /// For `Debug` of the stores.
    fn interval(&self) -> Duration {
        self.interval
    }
}

impl Drop for PurgeTask {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs one store operation with a deadline, so a hung database fails the request with
/// [`StoreError::Timeout`] instead of holding it. Dropping a sqlx future mid-query is safe:
/// the connection is reset (or an open transaction rolled back) before it is reused.
async fn timed<T>(
    backend: &'static str,
    limit: Duration,
    operation: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(limit, operation).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::Timeout { backend }),
    }
}

/// A schema change shipped with the crate.
struct Migration {
    version: i64,
    description: &'static str,
    sql: &'static str,
}

/// A TTL in whole microseconds, rounded up so a value never expires early.
fn ttl_micros(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_nanos().div_ceil(1_000)).unwrap_or(i64::MAX)
}

/// A TAT read back from a table. Negative values were not written by this crate.
fn stored_tat(backend: &'static str, tat: i64) -> Result<u64, StoreError> {
    u64::try_from(tat).map_err(|_| StoreError::Corrupt {
        backend,
        detail: "negative GCRA timestamp",
    })
}

/// A TAT to write. Cannot fail for TATs derived from a real clock and a valid quota.
#[cfg(feature = "sqlite")] // PostgreSQL computes and writes TATs server-side
fn tat_to_i64(backend: &'static str, tat: u64) -> Result<i64, StoreError> {
    i64::try_from(tat).map_err(|_| StoreError::Corrupt {
        backend,
        detail: "GCRA timestamp out of range",
    })
}

/// How a database error code should be reported.
enum Class {
    Unavailable,
    Timeout,
}

/// Maps a sqlx error; `classify` recognises the backend's own error codes.
fn map_sqlx(
    backend: &'static str,
    err: sqlx::Error,
    classify: fn(&str) -> Option<Class>,
) -> StoreError {
    match err {
        sqlx::Error::PoolTimedOut => StoreError::Timeout { backend },
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_)
        | sqlx::Error::BeginFailed => StoreError::unavailable(backend, err),
        sqlx::Error::Database(ref db) => match db.code().as_deref().and_then(classify) {
            Some(Class::Timeout) => StoreError::Timeout { backend },
            Some(Class::Unavailable) => StoreError::unavailable(backend, err),
            None => StoreError::backend(backend, err),
        },
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::TypeNotFound { .. } => StoreError::Corrupt {
            backend,
            detail: "unexpected column type",
        },
        // Configuration errors can quote the connection string: drop the source.
        sqlx::Error::Configuration(_) => {
            StoreError::Config("invalid database configuration".into())
        }
        other => StoreError::backend(backend, other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_rounds_up_to_microseconds() {
        assert_eq!(ttl_micros(Duration::from_nanos(1)), 1);
        assert_eq!(ttl_micros(Duration::from_millis(2)), 2_000);
        assert_eq!(ttl_micros(Duration::MAX), i64::MAX);
    }

    #[test]
    fn negative_tat_is_corrupt() {
        assert!(matches!(
            stored_tat("sqlite", -1),
            Err(StoreError::Corrupt { .. })
        ));
        assert_eq!(stored_tat("sqlite", 5).unwrap(), 5);
    }
}
