//! Last-used times without a write per request: a flag per key, set on the request path,
//! collected and written in one batch by [`KeySync`](super::KeySync).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;

use crate::api_key::KeyHash;
use crate::prehashed::PassThrough;

use super::record::KeyRecord;

/// One key's "used since the last flush" flag.
pub(crate) struct Usage {
    id: String,
    used: AtomicBool,
}

impl Usage {
    /// Sets the flag. A load first, so a busy key's cache line is not written on every request.
    pub(crate) fn mark(&self) {
        if !self.used.load(Ordering::Relaxed) {
            self.used.store(true, Ordering::Relaxed);
        }
    }
}

type UsageMap = HashMap<KeyHash, Arc<Usage>, PassThrough>;

/// The flags of the keys a sync loaded, swapped in whole at each load.
#[derive(Default)]
pub(crate) struct UsageTable {
    flags: ArcSwap<UsageMap>,
}

impl UsageTable {
    /// Marks the key with this hash used, if it came from the store.
    pub(crate) fn mark(&self, hash: &KeyHash) {
        if let Some(usage) = self.flags.load().get(hash) {
            usage.mark();
        }
    }

    /// A table for freshly loaded records; flags already set are carried over.
    pub(crate) fn reload(&self, records: &[KeyRecord]) {
        let old = self.flags.load();
        let next: UsageMap = records
            .iter()
            .map(|r| {
                let usage = old
                    .get(&r.hash)
                    .filter(|u| u.id == r.info.id)
                    .cloned()
                    .unwrap_or_else(|| {
                        Arc::new(Usage {
                            id: r.info.id.clone(),
                            used: AtomicBool::new(false),
                        })
                    });
                (r.hash, usage)
            })
            .collect();
        self.flags.store(Arc::new(next));
    }

    /// Clears every set flag and returns those keys (to write as used at `now`).
    pub(crate) fn take_used(&self) -> Vec<Arc<Usage>> {
        self.flags
            .load()
            .values()
            .filter(|u| u.used.swap(false, Ordering::Relaxed))
            .cloned()
            .collect()
    }

    /// The batch to write for `used`.
    pub(crate) fn batch(used: &[Arc<Usage>], now: SystemTime) -> Vec<(String, SystemTime)> {
        used.iter().map(|u| (u.id.clone(), now)).collect()
    }

    /// Sets the flags again after a failed write, so the next flush retries them.
    pub(crate) fn restore(used: &[Arc<Usage>]) {
        for u in used {
            u.mark();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyInfo;

    #[test]
    fn flags_survive_a_reload_and_are_taken_once() {
        let table = UsageTable::default();
        let record = KeyRecord::new(
            KeyInfo::new("key_1", "ci", SystemTime::now()),
            KeyHash::of("k"),
        );
        table.reload(std::slice::from_ref(&record));
        table.mark(&KeyHash::of("k"));
        table.mark(&KeyHash::of("unknown"));
        table.reload(std::slice::from_ref(&record));
        let used = table.take_used();
        assert_eq!(used.len(), 1);
        assert!(table.take_used().is_empty());
        UsageTable::restore(&used);
        assert_eq!(
            UsageTable::batch(&table.take_used(), SystemTime::UNIX_EPOCH)[0].0,
            "key_1"
        );
    }
}
