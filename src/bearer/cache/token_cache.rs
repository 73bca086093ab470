//! The sharded, bounded map of verified tokens behind [`CachedVerifier`](super::CachedVerifier)
//! and the introspection cache.
//!
//! - Keys are a keyed 128-bit tag of the token ([`KeyedTag`](crate::keyed_tag::KeyedTag)),
//!   never the token: a memory dump or a `Debug` print of the cache holds no usable
//!   credential, every key has the same small size, and a hit costs no SHA-256 of the token.
//! - The map is split into shards, each behind its own `RwLock`, so there is no global lock;
//!   a hit takes one shard's read lock.
//! - An entry is valid until the earlier of the identity's expiry and `max_ttl` after it was
//!   stored; an expired entry is never returned.
//! - Eviction is first in, first out per shard: when a shard is full, the entry stored longest
//!   ago goes. FIFO needs no bookkeeping on hits (so hits stay read-only) and, since tokens
//!   expire, the oldest entry is also the one closest to being useless.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, SystemTime};

use crate::identity::Identity;

pub(crate) use crate::keyed_tag::KeyedTag as TokenHash;

use crate::keyed_tag::TagShards;
pub(crate) use crate::keyed_tag::{shard_count, TagMap as TokenMap};

type Map = TokenMap<Entry>;

struct Entry {
    identity: Identity,
    valid_until: SystemTime,
    /// Matches the entry's slot in `Shard::order`; stale slots are skipped on eviction.
    seq: u64,
}

#[derive(Default)]
struct Shard {
    map: Map,
    /// Insertion order, oldest first. May hold stale slots for replaced keys.
    order: VecDeque<(TokenHash, u64)>,
    next_seq: u64,
}

impl Shard {
    fn insert(&mut self, key: TokenHash, identity: Identity, valid_until: SystemTime, cap: usize) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let replaced = self
            .map
            .insert(
                key,
                Entry {
                    identity,
                    valid_until,
                    seq,
                },
            )
            .is_some();
        self.order.push_back((key, seq));
        if !replaced {
            while self.map.len() > cap {
                self.evict_oldest();
            }
        }
        // Replaced keys leave stale slots behind; keep the queue within a constant factor of
        // the map so it cannot grow without bound.
        if self.order.len() > 2 * cap + 16 {
            let map = &self.map;
            self.order
                .retain(|(k, seq)| map.get(k).is_some_and(|e| e.seq == *seq));
        }
    }

    fn evict_oldest(&mut self) {
        while let Some((key, seq)) = self.order.pop_front() {
            if self.map.get(&key).is_some_and(|e| e.seq == seq) {
                self.map.remove(&key);
                return;
            }
        }
    }
}

/// A bounded, sharded map from token hash to verified [`Identity`].
pub(crate) struct TokenCache {
    shards: TagShards<Shard>,
    max_ttl: Duration,
}

impl TokenCache {
    /// A cache of at most `max_entries` identities, each kept at most `max_ttl`.
    /// `max_entries == 0` or a zero `max_ttl` disables caching.
    pub(crate) fn new(max_entries: usize, max_ttl: Duration) -> Self {
        Self {
            shards: TagShards::new(max_entries),
            max_ttl,
        }
    }

    /// The identity stored for `key`, unless absent or no longer valid at `now`.
    pub(crate) fn get(&self, key: &TokenHash, now: SystemTime) -> Option<Identity> {
        if self.shards.per_shard() == 0 {
            return None;
        }
        let shard = self.shards.read(key);
        let entry = shard.map.get(key)?;
        // Expired entries are left for eviction: removing them would need the write lock on
        // the hit path.
        (now < entry.valid_until).then(|| entry.identity.clone())
    }

    /// Stores `identity` until the earlier of its expiry and `now + max_ttl`. Identities that
    /// are already expired, or whose expiry is unknown, are not stored: the cache could
    /// otherwise serve a token past its end.
    pub(crate) fn insert(&self, key: TokenHash, identity: &Identity, now: SystemTime) {
        let cap = self.shards.per_shard();
        if cap == 0 {
            return;
        }
        let Some(exp) = identity.expires_at() else {
            return;
        };
        let ttl_end = now.checked_add(self.max_ttl).unwrap_or(now);
        let valid_until = exp.min(ttl_end);
        if valid_until <= now {
            return;
        }
        self.shards
            .write(&key)
            .insert(key, identity.clone(), valid_until, cap);
    }

    /// Number of stored entries, including expired ones not yet evicted.
    pub(crate) fn len(&self) -> usize {
        self.shards.each_read().map(|shard| shard.map.len()).sum()
    }

    /// Drops every entry.
    pub(crate) fn clear(&self) {
        self.shards
            .each_write()
            .for_each(|mut shard| *shard = Shard::default());
    }

    /// Upper bound on the number of entries.
    pub(crate) fn capacity(&self) -> usize {
        self.shards.capacity()
    }
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("shards", &self.shards.count())
            .field("capacity", &self.capacity())
            .field("max_ttl", &self.max_ttl)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::AuthMethod;

    /// An identity expiring at `exp`, or in an hour when `None`.
    fn id(name: &str, exp: Option<SystemTime>) -> Identity {
        let exp = exp.or_else(|| Some(SystemTime::now() + HOUR));
        let b = Identity::builder(AuthMethod::Bearer, name);
        match exp {
            Some(exp) => b.expires_at(exp).build(),
            None => b.build(),
        }
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn hit_until_expiry_then_miss() {
        let cache = TokenCache::new(100, HOUR);
        let now = SystemTime::now();
        let key = TokenHash::of("t1");
        cache.insert(key, &id("a", Some(now + Duration::from_secs(10))), now);
        assert_eq!(cache.get(&key, now).unwrap().name(), "a");
        assert!(cache.get(&key, now + Duration::from_secs(10)).is_none());
        assert!(cache.get(&TokenHash::of("t2"), now).is_none());
    }

    #[test]
    fn max_ttl_caps_entries_with_long_expiry() {
        let cache = TokenCache::new(100, Duration::from_secs(5));
        let now = SystemTime::now();
        cache.insert(TokenHash::of("b"), &id("b", Some(now + HOUR)), now);
        assert!(cache.get(&TokenHash::of("b"), now).is_some());
        let later = now + Duration::from_secs(6);
        assert!(cache.get(&TokenHash::of("b"), later).is_none());
    }

    #[test]
    fn identities_of_unknown_expiry_are_not_stored() {
        let cache = TokenCache::new(100, HOUR);
        let now = SystemTime::now();
        let unknown = Identity::builder(AuthMethod::Bearer, "a").build();
        cache.insert(TokenHash::of("a"), &unknown, now);
        assert_eq!(cache.len(), 0);
        assert!(cache.get(&TokenHash::of("a"), now).is_none());
    }

    #[test]
    fn expired_identities_are_not_stored() {
        let cache = TokenCache::new(100, HOUR);
        let now = SystemTime::now();
        cache.insert(TokenHash::of("a"), &id("a", Some(now)), now);
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn bounded_with_fifo_eviction() {
        let cache = TokenCache::new(64, HOUR);
        let now = SystemTime::now();
        for i in 0..10_000 {
            cache.insert(TokenHash::of(&i.to_string()), &id("x", None), now);
        }
        assert!(cache.len() <= 64, "{}", cache.len());
        assert!(cache.len() >= 32, "{}", cache.len());
        // The newest entry survives, the oldest went.
        assert!(cache.get(&TokenHash::of("9999"), now).is_some());
        assert!(cache.get(&TokenHash::of("0"), now).is_none());
    }

    #[test]
    fn reinserting_a_key_keeps_the_queue_bounded() {
        let cache = TokenCache::new(4, HOUR);
        let now = SystemTime::now();
        let key = TokenHash::of("same");
        for _ in 0..1000 {
            cache.insert(key, &id("x", None), now);
        }
        assert_eq!(cache.len(), 1);
        for shard in cache.shards.each_read() {
            assert!(shard.order.len() <= 2 * 4 + 16 + 1);
        }
    }

    #[test]
    fn zero_capacity_or_ttl_disables() {
        let now = SystemTime::now();
        for cache in [
            TokenCache::new(0, HOUR),
            TokenCache::new(10, Duration::ZERO),
        ] {
            cache.insert(TokenHash::of("a"), &id("a", None), now);
            assert!(cache.get(&TokenHash::of("a"), now).is_none());
        }
    }

    #[test]
    fn clear_empties() {
        let cache = TokenCache::new(10, HOUR);
        cache.insert(TokenHash::of("a"), &id("a", None), SystemTime::now());
        cache.clear();
        assert_eq!(cache.len(), 0);
    }
}
