//! What the PostgreSQL and SQLite key stores share: the columns of `mcp_auth_api_keys` and
//! how a row becomes a [`KeyRecord`].

use std::future::Future;

use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::api_key::KeyHash;
use crate::deferred::Deferred;
use crate::keys::{from_micros, to_micros, KeyInfo, KeyRecord, KeysError, KeysResult};
use crate::store::StoreError;

/// The columns every key query selects, in the order [`decode`] reads them.
macro_rules! key_columns {
    () => {
        "id, hash, name, user_id, role, permissions, created_at, expires_at, revoked_at, \
         rotated_to, last_used_at"
    };
}
pub(super) use key_columns;

/// A record's columns as bound by `INSERT` (same order as [`key_columns!`]).
pub(super) struct KeyRow {
    pub(super) id: String,
    pub(super) hash: Vec<u8>,
    pub(super) name: String,
    pub(super) user_id: Option<String>,
    pub(super) role: Option<String>,
    pub(super) permissions: String,
    pub(super) created_at: i64,
    pub(super) expires_at: Option<i64>,
    pub(super) revoked_at: Option<i64>,
    pub(super) rotated_to: Option<String>,
    pub(super) last_used_at: Option<i64>,
}

impl KeyRow {
    pub(super) fn of(record: &KeyRecord) -> Self {
        let info = &record.info;
        Self {
            id: info.id.clone(),
            hash: record.hash.as_bytes().to_vec(),
            name: info.name.clone(),
            user_id: info.user_id.clone(),
            role: info.role.clone(),
            permissions: serde_json::to_string(&info.permissions).unwrap_or_else(|_| "[]".into()),
            created_at: to_micros(info.created_at),
            expires_at: info.expires_at.map(to_micros),
            revoked_at: info.revoked_at.map(to_micros),
            rotated_to: info.rotated_to.clone(),
            last_used_at: info.last_used_at.map(to_micros),
        }
    }
}

/// Reads a row selected with [`key_columns!`].
pub(super) fn decode<R>(backend: &'static str, row: &R) -> Result<KeyRecord, StoreError>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let corrupt = |detail| StoreError::Corrupt { backend, detail };
    let get = |e: sqlx::Error| {
        let _ = e;
        corrupt("unexpected column type in mcp_auth_api_keys")
    };
    let hash: Vec<u8> = row.try_get(1).map_err(get)?;
    let hash: [u8; 32] = hash
        .try_into()
        .map_err(|_| corrupt("an API key hash is not 32 bytes"))?;
    let permissions: String = row.try_get(5).map_err(get)?;
    let permissions: Vec<String> = serde_json::from_str(&permissions)
        .map_err(|_| corrupt("API key permissions are not a JSON array of strings"))?;
    let created_at: i64 = row.try_get(6).map_err(get)?;
    let mut info = KeyInfo::new(
        row.try_get::<String, _>(0).map_err(get)?,
        row.try_get::<String, _>(2).map_err(get)?,
        from_micros(created_at),
    );
    info.user_id = row.try_get(3).map_err(get)?;
    info.role = row.try_get(4).map_err(get)?;
    info.permissions = permissions;
    info.expires_at = row
        .try_get::<Option<i64>, _>(7)
        .map_err(get)?
        .map(from_micros);
    info.revoked_at = row
        .try_get::<Option<i64>, _>(8)
        .map_err(get)?
        .map(from_micros);
    info.rotated_to = row.try_get(9).map_err(get)?;
    info.last_used_at = row
        .try_get::<Option<i64>, _>(10)
        .map_err(get)?
        .map(from_micros);
    Ok(KeyRecord::new(info, KeyHash::from_bytes(hash)))
}

/// A unique violation (id or hash taken) is [`KeysError::Conflict`]; anything else goes
/// through the backend's usual mapping.
pub(super) fn conflict_or(err: sqlx::Error, map: fn(sqlx::Error) -> StoreError) -> KeysError {
    match err.as_database_error() {
        Some(db) if db.is_unique_violation() => KeysError::Conflict,
        _ => KeysError::Store(map(err)),
    }
}

/// Runs a key operation under the store's deadline: the outer error is the store's, the
/// inner one the operation's own (not found, revoked, conflict).
pub(super) fn run_keys<P, T, F, Fut>(db: &super::Pooled<P>, operation: F) -> KeysResult<T>
where
    P: Clone + Send + Sync + 'static,
    T: Send + 'static,
    F: FnOnce(P) -> Fut,
    Fut: Future<Output = Result<Result<T, KeysError>, StoreError>> + Send + 'static,
{
    let running = db.run(operation);
    Deferred::boxed(async move { running.await? })
}

/// The statements in which the two SQL key stores differ (placeholders, row locks, how a
/// transaction begins).
pub(super) struct KeySql {
    /// Starts a read-then-write transaction.
    pub(super) begin: &'static str,
    /// `revoked_at` of one id, locking its row.
    pub(super) revoked_at: &'static str,
    /// Sets `revoked_at` (`$2`) of id `$1`.
    pub(super) revoke: &'static str,
    /// One row ([`key_columns!`]) by id, locking it.
    pub(super) select_one: &'static str,
    /// Sets `expires_at` (`$2`) and `rotated_to` (`$3`) of id `$1`.
    pub(super) retire: &'static str,
    /// Inserts a row ([`key_columns!`] order).
    pub(super) insert: &'static str,
}

/// Statement of every key store: bumps the revision (in the transaction of each change).
pub(super) const BUMP: &str =
    "UPDATE mcp_auth_api_key_revision SET revision = revision + 1 WHERE id = 1";
/// Statement of every key store: the revision.
pub(super) const REVISION: &str = "SELECT revision FROM mcp_auth_api_key_revision WHERE id = 1";
/// Statement of every key store: all rows.
pub(super) const LOAD: &str = concat!("SELECT ", key_columns!(), " FROM mcp_auth_api_keys");

/// `impl KeyStore` for a SQL store: `$store` (with a `db: Pooled<$pool>` field), its sqlx
/// database `$db`, its statements `$sql` ([`KeySql`]) and its batched usage write
/// `$record_use(pool, used) -> Result<(), StoreError>`. Every change is one transaction that
/// bumps the revision row, so [`KeySync`](crate::keys::KeySync) sees it. Expects the
/// backend's `map_err` and `BACKEND` in scope.
macro_rules! sql_key_store {
    ($store:ident, $pool:ty, $db:ty, $sql:expr, $record_use:path) => {
        impl crate::keys::KeyStore for $store {
            fn insert(&self, record: KeyRecord) -> KeysResult<()> {
                run_keys(&self.db, |pool| async move {
                    let mut tx = pool.begin_with($sql.begin).await.map_err(map_err)?;
                    if let Err(e) = insert_row(&mut tx, &KeyRow::of(&record)).await {
                        return match conflict_or(e, map_err) {
                            KeysError::Store(e) => Err(e),
                            other => Ok(Err(other)),
                        };
                    }
                    bump_and_commit(tx).await.map(Ok)
                })
            }

            fn load(&self) -> KeysResult<Vec<KeyRecord>> {
                run_keys(&self.db, |pool: $pool| async move {
                    let rows = sqlx::query($crate::store::sql::keys::LOAD)
                        .fetch_all(&pool)
                        .await
                        .map_err(map_err)?;
                    let records: Result<Vec<KeyRecord>, StoreError> =
                        rows.iter().map(|row| decode(BACKEND, row)).collect();
                    Ok(Ok(records?))
                })
            }

            fn revision(&self) -> KeysResult<u64> {
                run_keys(&self.db, |pool: $pool| async move {
                    let revision: i64 = sqlx::query_scalar($crate::store::sql::keys::REVISION)
                        .fetch_one(&pool)
                        .await
                        .map_err(map_err)?;
                    Ok(Ok(revision.unsigned_abs()))
                })
            }

            fn revoke_at(&self, id: &str, at: SystemTime) -> KeysResult<()> {
                let id = id.to_owned();
                run_keys(&self.db, |pool: $pool| async move {
                    let mut tx = pool.begin_with($sql.begin).await.map_err(map_err)?;
                    let found: Option<Option<i64>> = sqlx::query_scalar($sql.revoked_at)
                        .bind(&id)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    match found {
                        None => return Ok(Err(KeysError::NotFound)),
                        Some(Some(_)) => return Ok(Ok(())),
                        Some(None) => {}
                    }
                    sqlx::query($sql.revoke)
                        .bind(&id)
                        .bind(to_micros(at))
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    bump_and_commit(tx).await.map(Ok)
                })
            }

            fn replace(
                &self,
                old_id: &str,
                successor: KeyRecord,
                deadline: SystemTime,
            ) -> KeysResult<KeyInfo> {
                let old_id = old_id.to_owned();
                run_keys(&self.db, |pool: $pool| async move {
                    let mut tx = pool.begin_with($sql.begin).await.map_err(map_err)?;
                    let row = sqlx::query($sql.select_one)
                        .bind(&old_id)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    let Some(row) = row else {
                        return Ok(Err(KeysError::NotFound));
                    };
                    let mut old = decode(BACKEND, &row)?;
                    let next = old
                        .info
                        .successor(successor.info.id.clone(), successor.info.created_at);
                    if let Err(e) = old.info.retire(&next.id, deadline) {
                        return Ok(Err(e));
                    }
                    sqlx::query($sql.retire)
                        .bind(&old_id)
                        .bind(old.info.expires_at.map(to_micros))
                        .bind(&old.info.rotated_to)
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    let record = KeyRecord::new(next, successor.hash);
                    if let Err(e) = insert_row(&mut tx, &KeyRow::of(&record)).await {
                        return match conflict_or(e, map_err) {
                            KeysError::Store(e) => Err(e),
                            other => Ok(Err(other)),
                        };
                    }
                    bump_and_commit(tx).await?;
                    Ok(Ok(record.info))
                })
            }

            fn record_use(
                &self,
                used: Vec<(String, std::time::SystemTime)>,
            ) -> crate::keys::KeysResult<()> {
                run_keys(&self.db, |pool: $pool| async move {
                    $record_use(pool, used).await?;
                    Ok(Ok(()))
                })
            }
        }

        async fn insert_row(
            tx: &mut sqlx::Transaction<'_, $db>,
            row: &KeyRow,
        ) -> Result<(), sqlx::Error> {
            sqlx::query($sql.insert)
                .bind(&row.id)
                .bind(&row.hash)
                .bind(&row.name)
                .bind(&row.user_id)
                .bind(&row.role)
                .bind(&row.permissions)
                .bind(row.created_at)
                .bind(row.expires_at)
                .bind(row.revoked_at)
                .bind(&row.rotated_to)
                .bind(row.last_used_at)
                .execute(&mut **tx)
                .await
                .map(drop)
        }

        async fn bump_and_commit(mut tx: sqlx::Transaction<'_, $db>) -> Result<(), StoreError> {
            sqlx::query($crate::store::sql::keys::BUMP)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            tx.commit().await.map_err(map_err)
        }
    };
}
pub(super) use sql_key_store;
