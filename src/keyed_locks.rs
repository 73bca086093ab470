//! One async lock per key, for work that must run once per key at a time across concurrent
//! callers of one process (refreshing a user's upstream token, exchanging a caller's token):
//! the first caller takes the lock and does the work, the others wait on it and then find
//! the result it stored.
//!
//! The table holds only `Weak` references, so a key's lock lives while someone holds or
//! waits on it; dead entries are swept when a new key is added. The std `Mutex` guards a map
//! operation only, never an await. Not on the request path of the layers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

/// Async locks by key.
#[derive(Default)]
pub(crate) struct KeyedLocks {
    locks: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

impl KeyedLocks {
    /// The lock of `key` (created when nobody holds one).
    pub(crate) fn lock_for(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(lock) = map.get(key).and_then(Weak::upgrade) {
            return lock;
        }
        map.retain(|_, weak| weak.strong_count() > 0);
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        map.insert(key.to_owned(), Arc::downgrade(&lock));
        lock
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_lock_per_live_key() {
        let locks = KeyedLocks::default();
        let a = locks.lock_for("a");
        assert!(Arc::ptr_eq(&a, &locks.lock_for("a")));
        assert!(!Arc::ptr_eq(&a, &locks.lock_for("b")));
        drop(a);
        // Dropped: swept when another key is added, and a new one is made.
        let _c = locks.lock_for("c");
        assert_eq!(locks.locks.lock().unwrap().len(), 1);
    }
}
