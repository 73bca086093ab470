//! Exchanged tokens kept in memory until shortly before they expire, per (issuer, subject,
//! downstream). Sharded: a lookup locks one shard for a map operation, never across an await.
//! Never written to a store (so never at rest): a process restart exchanges again.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use super::ExchangedToken;

const SHARDS: usize = 16;

struct Cached {
    token: ExchangedToken,
    /// Served until then (expiry minus the refresh skew, capped by the subject token's).
    fresh_until: SystemTime,
}

pub(super) struct ExchangeCache {
    shards: Vec<Mutex<HashMap<String, Cached>>>,
    /// Most entries per shard.
    per_shard: usize,
}

impl ExchangeCache {
    pub(super) fn new(max_entries: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: max_entries.div_ceil(SHARDS),
        }
    }

    fn shard(&self, key: &str) -> &Mutex<HashMap<String, Cached>> {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        &self.shards[(h.finish() as usize) % SHARDS]
    }

    /// A token for `key` that is fresh at `now`.
    pub(super) fn get(&self, key: &str, now: SystemTime) -> Option<ExchangedToken> {
        let shard = self
            .shard(key)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        shard
            .get(key)
            .filter(|c| c.fresh_until > now)
            .map(|c| c.token.clone())
    }

    /// Keeps `token` until `fresh_until`. A full shard first drops what is stale; if it is
    /// still full the token is not kept (the next call exchanges again).
    pub(super) fn put(
        &self,
        key: String,
        token: ExchangedToken,
        fresh_until: SystemTime,
        now: SystemTime,
    ) {
        if fresh_until <= now {
            return;
        }
        let mut shard = self
            .shard(&key)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if shard.len() >= self.per_shard && !shard.contains_key(&key) {
            shard.retain(|_, c| c.fresh_until > now);
            if shard.len() >= self.per_shard {
                return;
            }
        }
        shard.insert(key, Cached { token, fresh_until });
    }

    /// Entries held (fresh or not yet swept).
    pub(super) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn token(t: &str) -> ExchangedToken {
        ExchangedToken {
            access_token: t.to_owned(),
            issued_token_type: "urn:ietf:params:oauth:token-type:access_token".to_owned(),
            expires_at: None,
            scopes: Vec::new(),
        }
    }

    #[test]
    fn fresh_entries_are_served_and_stale_ones_are_not() {
        let cache = ExchangeCache::new(100);
        let now = SystemTime::now();
        cache.put("k".into(), token("a"), now + Duration::from_secs(10), now);
        assert_eq!(cache.get("k", now).unwrap().access_token(), "a");
        assert!(cache.get("k", now + Duration::from_secs(10)).is_none());
        // Already stale: not kept.
        cache.put("s".into(), token("b"), now, now);
        assert!(cache.get("s", now).is_none());
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = ExchangeCache::new(16);
        let now = SystemTime::now();
        for i in 0..1000 {
            cache.put(
                format!("k{i}"),
                token("t"),
                now + Duration::from_secs(60),
                now,
            );
        }
        assert!(cache.len() <= 16, "{}", cache.len());
        // Stale entries make room.
        let later = now + Duration::from_secs(61);
        for i in 0..1000 {
            cache.put(
                format!("n{i}"),
                token("t"),
                later + Duration::from_secs(60),
                later,
            );
        }
        assert!(cache.get("k1", later).is_none());
        assert!(cache.len() <= 16);
    }
}
