//! [`MemoryKeyStore`].

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use crate::deferred::Deferred;

use super::error::KeysError;
use super::record::{KeyInfo, KeyRecord};
use super::store::{KeyStore, KeysResult};

/// A [`KeyStore`] in process memory: for tests, and for one process that mints keys at run
/// time. Keys are lost on restart. Clones share the keys.
///
/// ```
/// use tower_mcp_auth::{ApiKeySpec, keys::{KeyStore, MemoryKeyStore}};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = MemoryKeyStore::new();
/// store.create(ApiKeySpec::new("ci")).await?;
/// assert_eq!(store.list().await?.len(), 1);
/// # Ok::<(), tower_mcp_auth::keys::KeysError>(())
/// # }).unwrap();
/// ```
#[derive(Clone, Default)]
pub struct MemoryKeyStore {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    records: Vec<KeyRecord>,
    revision: u64,
}

impl State {
    fn find(&mut self, id: &str) -> Result<&mut KeyRecord, KeysError> {
        self.records
            .iter_mut()
            .find(|r| r.info.id == id)
            .ok_or(KeysError::NotFound)
    }
}

impl MemoryKeyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The state; a writer that panicked left it consistent (every change is one step).
    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl KeyStore for MemoryKeyStore {
    fn insert(&self, record: KeyRecord) -> KeysResult<()> {
        let mut state = self.state();
        let taken = state
            .records
            .iter()
            .any(|r| r.info.id == record.info.id || r.hash == record.hash);
        if taken {
            return Deferred::ready(Err(KeysError::Conflict));
        }
        state.records.push(record);
        state.revision += 1;
        Deferred::ready(Ok(()))
    }

    fn load(&self) -> KeysResult<Vec<KeyRecord>> {
        Deferred::ready(Ok(self.state().records.clone()))
    }

    fn revision(&self) -> KeysResult<u64> {
        Deferred::ready(Ok(self.state().revision))
    }

    fn revoke_at(&self, id: &str, at: SystemTime) -> KeysResult<()> {
        let mut state = self.state();
        let result = state.find(id).map(|record| {
            let changed = record.info.revoked_at.is_none();
            record.info.revoked_at.get_or_insert(at);
            changed
        });
        Deferred::ready(result.map(|changed| {
            if changed {
                state.revision += 1;
            }
        }))
    }

    fn replace(
        &self,
        old_id: &str,
        successor: KeyRecord,
        deadline: SystemTime,
    ) -> KeysResult<KeyInfo> {
        let mut state = self.state();
        if state.records.iter().any(|r| r.hash == successor.hash) {
            return Deferred::ready(Err(KeysError::Conflict));
        }
        let result = state.find(old_id).and_then(|old| {
            let next = old
                .info
                .successor(successor.info.id.clone(), successor.info.created_at);
            old.info.retire(&next.id, deadline)?;
            Ok(next)
        });
        Deferred::ready(result.inspect(|next| {
            state
                .records
                .push(KeyRecord::new(next.clone(), successor.hash));
            state.revision += 1;
        }))
    }

    fn record_use(&self, used: Vec<(String, SystemTime)>) -> KeysResult<()> {
        let mut state = self.state();
        for (id, at) in used {
            if let Ok(record) = state.find(&id) {
                let last = &mut record.info.last_used_at;
                *last = Some(last.map_or(at, |t| t.max(at)));
            }
        }
        Deferred::ready(Ok(()))
    }
}

impl fmt::Debug for MemoryKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryKeyStore")
            .field("keys", &self.state().records.len())
            .finish()
    }
}
