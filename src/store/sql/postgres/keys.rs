//! [`KeyStore`](crate::keys::KeyStore) for [`PostgresStore`]: table `mcp_auth_api_keys`
//! (migration 2). Changes lock the row they read (`FOR UPDATE`).

use std::time::SystemTime;

use sqlx::postgres::PgPool;

use super::super::keys::{
    conflict_or, decode, key_columns, run_keys, sql_key_store, KeyRow, KeySql,
};
use super::{map_err, PostgresStore, BACKEND};
use crate::keys::{to_micros, KeyInfo, KeyRecord, KeysError, KeysResult};
use crate::store::StoreError;

const SQL: KeySql = KeySql {
    begin: "BEGIN",
    revoked_at: "SELECT revoked_at FROM mcp_auth_api_keys WHERE id = $1 FOR UPDATE",
    revoke: "UPDATE mcp_auth_api_keys SET revoked_at = $2 WHERE id = $1",
    select_one: concat!(
        "SELECT ",
        key_columns!(),
        " FROM mcp_auth_api_keys WHERE id = $1 FOR UPDATE"
    ),
    retire: "UPDATE mcp_auth_api_keys SET expires_at = $2, rotated_to = $3 WHERE id = $1",
    insert: concat!(
        "INSERT INTO mcp_auth_api_keys (",
        key_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    ),
};

sql_key_store!(PostgresStore, PgPool, sqlx::Postgres, SQL, record_use);

/// The whole batch in one statement; a later time never moves back.
async fn record_use(pool: PgPool, used: Vec<(String, SystemTime)>) -> Result<(), StoreError> {
    let (ids, times): (Vec<String>, Vec<i64>) =
        used.into_iter().map(|(id, at)| (id, to_micros(at))).unzip();
    sqlx::query(
        "UPDATE mcp_auth_api_keys AS k \
         SET last_used_at = GREATEST(COALESCE(k.last_used_at, 0), u.at) \
         FROM UNNEST($1::text[], $2::bigint[]) AS u(id, at) WHERE k.id = u.id",
    )
    .bind(&ids)
    .bind(&times)
    .execute(&pool)
    .await
    .map_err(map_err)
    .map(drop)
}
