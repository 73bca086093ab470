//! [`KeyStore`] for [`SqliteStore`]: table `mcp_auth_api_keys` (migration 2). Every change
//! is a `BEGIN IMMEDIATE` transaction (the file's write lock), so reads inside it are current.

use std::time::SystemTime;

use sqlx::sqlite::SqlitePool;
use sqlx::{Sqlite, Transaction};

use super::super::keys::{conflict_or, decode, key_columns, run_keys, KeyRow};
use super::{map_err, SqliteStore, BACKEND};
use crate::keys::{to_micros, KeyInfo, KeyRecord, KeyStore, KeysError, KeysResult};
use crate::store::StoreError;

const BUMP: &str = "UPDATE mcp_auth_api_key_revision SET revision = revision + 1 WHERE id = 1";

/// Keys live beside the state store, in the same database and schema. Every change is one
/// transaction that also bumps the revision row, so [`KeySync`](crate::keys::KeySync) sees it.
impl KeyStore for SqliteStore {
    fn insert(&self, record: KeyRecord) -> KeysResult<()> {
        run_keys(&self.db, |pool| async move {
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
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
        run_keys(&self.db, |pool: SqlitePool| async move {
            let rows = sqlx::query(concat!(
                "SELECT ",
                key_columns!(),
                " FROM mcp_auth_api_keys"
            ))
            .fetch_all(&pool)
            .await
            .map_err(map_err)?;
            let records: Result<Vec<KeyRecord>, StoreError> =
                rows.iter().map(|row| decode(BACKEND, row)).collect();
            Ok(Ok(records?))
        })
    }

    fn revision(&self) -> KeysResult<u64> {
        run_keys(&self.db, |pool: SqlitePool| async move {
            let revision: i64 =
                sqlx::query_scalar("SELECT revision FROM mcp_auth_api_key_revision WHERE id = 1")
                    .fetch_one(&pool)
                    .await
                    .map_err(map_err)?;
            Ok(Ok(revision.unsigned_abs()))
        })
    }

    fn revoke_at(&self, id: &str, at: SystemTime) -> KeysResult<()> {
        let id = id.to_owned();
        run_keys(&self.db, |pool: SqlitePool| async move {
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
            let found: Option<Option<i64>> =
                sqlx::query_scalar("SELECT revoked_at FROM mcp_auth_api_keys WHERE id = ?1")
                    .bind(&id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
            match found {
                None => return Ok(Err(KeysError::NotFound)),
                Some(Some(_)) => return Ok(Ok(())),
                Some(None) => {}
            }
            sqlx::query("UPDATE mcp_auth_api_keys SET revoked_at = ?2 WHERE id = ?1")
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
        run_keys(&self.db, |pool: SqlitePool| async move {
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
            let row = sqlx::query(concat!(
                "SELECT ",
                key_columns!(),
                " FROM mcp_auth_api_keys WHERE id = ?1"
            ))
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
            sqlx::query(
                "UPDATE mcp_auth_api_keys SET expires_at = ?2, rotated_to = ?3 WHERE id = ?1",
            )
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

    fn record_use(&self, used: Vec<(String, SystemTime)>) -> KeysResult<()> {
        run_keys(&self.db, |pool: SqlitePool| async move {
            // One transaction for the whole batch; a later time never moves back.
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
            for (id, at) in &used {
                sqlx::query(
                    "UPDATE mcp_auth_api_keys \
                     SET last_used_at = MAX(COALESCE(last_used_at, 0), ?2) WHERE id = ?1",
                )
                .bind(id)
                .bind(to_micros(*at))
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            }
            tx.commit().await.map_err(map_err)?;
            Ok(Ok(()))
        })
    }
}

async fn insert_row(tx: &mut Transaction<'_, Sqlite>, row: &KeyRow) -> Result<(), sqlx::Error> {
    sqlx::query(concat!(
        "INSERT INTO mcp_auth_api_keys (",
        key_columns!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
    ))
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

async fn bump_and_commit(mut tx: Transaction<'_, Sqlite>) -> Result<(), StoreError> {
    sqlx::query(BUMP).execute(&mut *tx).await.map_err(map_err)?;
    tx.commit().await.map_err(map_err)
}
