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
