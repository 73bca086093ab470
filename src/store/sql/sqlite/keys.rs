//! [`KeyStore`](crate::keys::KeyStore) for [`SqliteStore`]: table `mcp_auth_api_keys`
//! (migration 2). Every change is a `BEGIN IMMEDIATE` transaction (the file's write lock), so
//! what it reads stays current until it commits.

use std::time::SystemTime;

use sqlx::sqlite::SqlitePool;

use super::super::keys::{
    conflict_or, decode, key_columns, run_keys, sql_key_store, KeyRow, KeySql,
};
use super::{map_err, SqliteStore, BACKEND};
use crate::keys::{to_micros, KeyInfo, KeyRecord, KeysError, KeysResult};
use crate::store::StoreError;

const SQL: KeySql = KeySql {
    begin: "BEGIN IMMEDIATE",
    revoked_at: "SELECT revoked_at FROM mcp_auth_api_keys WHERE id = ?1",
    revoke: "UPDATE mcp_auth_api_keys SET revoked_at = ?2 WHERE id = ?1",
    select_one: concat!(
        "SELECT ",
        key_columns!(),
        " FROM mcp_auth_api_keys WHERE id = ?1"
    ),
    retire: "UPDATE mcp_auth_api_keys SET expires_at = ?2, rotated_to = ?3 WHERE id = ?1",
    insert: concat!(
        "INSERT INTO mcp_auth_api_keys (",
        key_columns!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
    ),
};

sql_key_store!(SqliteStore, SqlitePool, sqlx::Sqlite, SQL, record_use);

/// The whole batch in one transaction; a later time never moves back.
async fn record_use(pool: SqlitePool, used: Vec<(String, SystemTime)>) -> Result<(), StoreError> {
    let mut tx = pool.begin_with(SQL.begin).await.map_err(map_err)?;
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
    tx.commit().await.map_err(map_err)
}
