//! [`KeyStore`] for [`RedisStore`]: API keys under `<prefix>keys:{api-keys}` and three
//! sibling keys, all with the hash tag `{api-keys}` (one slot, so the Lua script that changes
//! them works on a cluster).

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::SystemTime;

use ::redis::Script;
use serde::{Deserialize, Serialize};

use super::{map_err, RedisStore, BACKEND};
use crate::api_key::KeyHash;
use crate::deferred::Deferred;
use crate::keys::{from_micros, to_micros, KeyInfo, KeyRecord, KeyStore, KeysError, KeysResult};
use crate::store::StoreError;

static WRITE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("keys.lua")));

/// How often a change is retried when the record changed between read and write.
const ATTEMPTS: usize = 8;

/// The Redis keys of the key store.
struct Keys {
    records: String,
    hashes: String,
    revision: String,
    used: String,
}

impl RedisStore {
    fn key_names(&self) -> Keys {
        let p = self.prefix();
        Keys {
            records: format!("{p}keys:{{api-keys}}"),
            hashes: format!("{p}keys-hash:{{api-keys}}"),
            revision: format!("{p}keys-rev:{{api-keys}}"),
            used: format!("{p}keys-used:{{api-keys}}"),
        }
    }
}

/// A record as stored (JSON); last-used times live in their own hash.
#[derive(Serialize, Deserialize)]
struct Wire {
    id: String,
    hash: String,
    name: String,
    user_id: Option<String>,
    role: Option<String>,
    permissions: Vec<String>,
    created_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    rotated_to: Option<String>,
}

impl Wire {
    fn encode(record: &KeyRecord) -> String {
        let i = &record.info;
        let wire = Wire {
            id: i.id.clone(),
            hash: record.hash.to_hex(),
            name: i.name.clone(),
            user_id: i.user_id.clone(),
            role: i.role.clone(),
            permissions: i.permissions.clone(),
            created_at: to_micros(i.created_at),
            expires_at: i.expires_at.map(to_micros),
            revoked_at: i.revoked_at.map(to_micros),
            rotated_to: i.rotated_to.clone(),
        };
        serde_json::to_string(&wire).expect("a record serialises")
    }

    fn decode(json: &str, last_used: Option<i64>) -> Result<KeyRecord, StoreError> {
        let corrupt = StoreError::Corrupt {
            backend: BACKEND,
            detail: "an API key record is not valid",
        };
        let w: Wire = serde_json::from_str(json).map_err(|_| corrupt)?;
        let hash = KeyHash::from_hex(&w.hash).ok_or(StoreError::Corrupt {
            backend: BACKEND,
            detail: "an API key hash is not 64 hexadecimal digits",
        })?;
        let mut info = KeyInfo::new(w.id, w.name, from_micros(w.created_at));
        info.user_id = w.user_id;
        info.role = w.role;
        info.permissions = w.permissions;
        info.expires_at = w.expires_at.map(from_micros);
        info.revoked_at = w.revoked_at.map(from_micros);
        info.rotated_to = w.rotated_to;
        info.last_used_at = last_used.map(from_micros);
        Ok(KeyRecord::new(info, hash))
    }
}

impl RedisStore {
    /// Runs the write script: `add` a record, and/or `change` one from its expected JSON.
    async fn write(
        &self,
        add: Option<&KeyRecord>,
        change: Option<(&str, &str, &KeyRecord)>,
    ) -> Result<i64, StoreError> {
        let keys = self.key_names();
        let mut invocation = WRITE.prepare_invoke();
        invocation
            .key(&keys.records)
            .key(&keys.hashes)
            .key(&keys.revision);
        match add {
            Some(r) => invocation
                .arg(&r.info.id)
                .arg(r.hash.to_hex())
                .arg(Wire::encode(r)),
            None => invocation.arg("").arg("").arg(""),
        };
        match change {
            Some((id, expected, r)) => invocation.arg(id).arg(expected).arg(Wire::encode(r)),
            None => invocation.arg("").arg("").arg(""),
        };
        let mut conn = self.inner.conn.clone();
        invocation.invoke_async(&mut conn).await.map_err(map_err)
    }

    /// The stored JSON of record `id`, decoded too.
    async fn read(&self, id: &str) -> Result<Option<(String, KeyRecord)>, StoreError> {
        let mut conn = self.inner.conn.clone();
        let json: Option<String> = ::redis::cmd("HGET")
            .arg(self.key_names().records)
            .arg(id)
            .query_async(&mut conn)
            .await
            .map_err(map_err)?;
        json.map(|j| Wire::decode(&j, None).map(|r| (j, r)))
            .transpose()
    }

    /// Reads record `id`, lets `edit` change it (and name a record to add), writes both if
    /// the record did not change meanwhile; retried a few times.
    async fn update<T>(
        &self,
        id: &str,
        edit: impl Fn(&mut KeyRecord) -> Result<Option<(KeyRecord, T)>, KeysError>,
        unchanged: T,
    ) -> Result<T, KeysError> {
        for _ in 0..ATTEMPTS {
            let Some((json, mut record)) = self.read(id).await? else {
                return Err(KeysError::NotFound);
            };
            let Some((added, out)) = edit(&mut record)? else {
                return Ok(unchanged);
            };
            let add = (added.info.id != record.info.id).then_some(&added);
            match self.write(add, Some((id, &json, &record))).await? {
                1 => return Ok(out),
                -1 => return Err(KeysError::Conflict),
                _ => continue,
            }
        }
        Err(KeysError::Store(StoreError::Timeout { backend: BACKEND }))
    }
}

impl KeyStore for RedisStore {
    fn insert(&self, record: KeyRecord) -> KeysResult<()> {
        let store = self.clone();
        Deferred::boxed(async move {
            match store.write(Some(&record), None).await? {
                1 => Ok(()),
                _ => Err(KeysError::Conflict),
            }
        })
    }

    fn load(&self) -> KeysResult<Vec<KeyRecord>> {
        let keys = self.key_names();
        let mut conn = self.inner.conn.clone();
        Deferred::boxed(async move {
            let (records, used): (HashMap<String, String>, HashMap<String, i64>) = ::redis::pipe()
                .cmd("HGETALL")
                .arg(&keys.records)
                .cmd("HGETALL")
                .arg(&keys.used)
                .query_async(&mut conn)
                .await
                .map_err(map_err)?;
            let loaded: Result<Vec<KeyRecord>, StoreError> = records
                .iter()
                .map(|(id, json)| Wire::decode(json, used.get(id).copied()))
                .collect();
            Ok(loaded?)
        })
    }

    fn revision(&self) -> KeysResult<u64> {
        let key = self.key_names().revision;
        let mut conn = self.inner.conn.clone();
        Deferred::boxed(async move {
            let revision: Option<u64> = ::redis::cmd("GET")
                .arg(key)
                .query_async(&mut conn)
                .await
                .map_err(map_err)?;
            Ok(revision.unwrap_or(0))
        })
    }

    fn revoke_at(&self, id: &str, at: SystemTime) -> KeysResult<()> {
        let (store, id) = (self.clone(), id.to_owned());
        Deferred::boxed(async move {
            let revoke = |record: &mut KeyRecord| {
                if record.info.revoked_at.is_some() {
                    return Ok(None);
                }
                record.info.revoked_at = Some(at);
                Ok(Some((record.clone(), ())))
            };
            store.update(&id, revoke, ()).await
        })
    }

    fn replace(
        &self,
        old_id: &str,
        successor: KeyRecord,
        deadline: SystemTime,
    ) -> KeysResult<KeyInfo> {
        let (store, old_id) = (self.clone(), old_id.to_owned());
        Deferred::boxed(async move {
            let rotate = |old: &mut KeyRecord| {
                let next = old
                    .info
                    .successor(successor.info.id.clone(), successor.info.created_at);
                old.info.retire(&next.id, deadline)?;
                let info = next.clone();
                Ok(Some((KeyRecord::new(next, successor.hash), info)))
            };
            let placeholder = KeyInfo::new("", "", SystemTime::UNIX_EPOCH);
            store.update(&old_id, rotate, placeholder).await
        })
    }

    fn record_use(&self, used: Vec<(String, SystemTime)>) -> KeysResult<()> {
        if used.is_empty() {
            return Deferred::ready(Ok(()));
        }
        let mut cmd = ::redis::cmd("HSET");
        cmd.arg(self.key_names().used);
        for (id, at) in used {
            cmd.arg(id).arg(to_micros(at));
        }
        let mut conn = self.inner.conn.clone();
        Deferred::boxed(async move {
            cmd.query_async::<()>(&mut conn).await.map_err(map_err)?;
            Ok(())
        })
    }
}
