//! The verified-key cache of [`ApiKeyRegistry`](super::ApiKeyRegistry): presented key →
//! stored entry, so the SHA-256 of a key runs once per key and registry generation instead
//! of on every request.
//!
//! - **Key**: the 128-bit keyed SipHash-2-4 tag of the presented key
//!   ([`KeyedTag`](crate::keyed_tag::KeyedTag), per-process random key, compared in constant
//!   time). The key itself is not stored here, only the tag, the key's SHA-256 and the entry
//!   the registry holds under it (the registry's own content); without the process key
//!   nobody can choose a key whose tag equals a cached one.
//! - **Only keys the registry holds are cached**, so unknown keys (guesses) never fill it.
//! - **Generations**: every entry carries the registry generation it was read in, and a hit
//!   counts only in that same generation. Every change of the registry bumps the generation
//!   (and then empties this cache), so a revoked, removed or replaced key is read from the
//!   registry again on its next use, even by a request that raced the change.
//! - **Bound**: at most `max_entries`, over shards with their own lock (no global lock; a hit
//!   takes one shard's read lock). A full shard drops its entries of older generations, then
//!   an arbitrary entry.
//! - The entry's expiry and revocation are checked on every request by the caller, as for an
//!   entry read from the registry.

use std::fmt;

use crate::keyed_tag::{KeyedTag, TagMap, TagShards};

use super::registry::{KeyHash, StoredKey};

struct Cached {
    hash: KeyHash,
    key: StoredKey,
    generation: u64,
}

/// See the module docs.
pub(crate) struct VerifiedKeys {
    shards: TagShards<TagMap<Cached>>,
}

impl VerifiedKeys {
    /// A cache of at most `max_entries` keys; `0` disables it.
    pub(crate) fn new(max_entries: usize) -> Self {
        Self {
            shards: TagShards::new(max_entries),
        }
    }

    /// The key's hash and entry cached for `tag` in `generation`.
    pub(crate) fn get(&self, tag: &KeyedTag, generation: u64) -> Option<(KeyHash, StoredKey)> {
        if self.shards.per_shard() == 0 {
            return None;
        }
        let shard = self.shards.read(tag);
        let cached = shard.get(tag)?;
        (cached.generation == generation).then(|| (cached.hash, cached.key.clone()))
    }

    /// Remembers `key` (stored under `hash`) for `tag`, read from the registry in
    /// `generation`.
    pub(crate) fn insert(&self, tag: KeyedTag, hash: KeyHash, key: StoredKey, generation: u64) {
        let cap = self.shards.per_shard();
        if cap == 0 {
            return;
        }
        let mut shard = self.shards.write(&tag);
        if shard.len() >= cap && !shard.contains_key(&tag) {
            shard.retain(|_, c| c.generation == generation);
            if shard.len() >= cap {
                if let Some(victim) = shard.keys().next().copied() {
                    shard.remove(&victim);
                }
            }
        }
        shard.insert(
            tag,
            Cached {
                hash,
                key,
                generation,
            },
        );
    }

    /// Drops every entry.
    pub(crate) fn clear(&self) {
        self.shards.each_write().for_each(|mut shard| shard.clear());
    }

    /// Number of cached entries, of any generation.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards.each_read().map(|shard| shard.len()).sum()
    }

    /// Upper bound on the number of entries.
    pub(crate) fn capacity(&self) -> usize {
        self.shards.capacity()
    }
}

impl fmt::Debug for VerifiedKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedKeys")
            .field("shards", &self.shards.count())
            .field("capacity", &self.capacity())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{AuthMethod, Identity};

    fn key(name: &str) -> StoredKey {
        StoredKey {
            identity: Identity::builder(AuthMethod::ApiKey, name).build(),
            expires_at: None,
            revoked: false,
        }
    }

    #[test]
    fn hits_only_in_the_generation_it_was_read_in() {
        let cache = VerifiedKeys::new(100);
        let tag = KeyedTag::of("k1");
        assert!(cache.get(&tag, 0).is_none());
        cache.insert(tag, KeyHash::of("k1"), key("a"), 0);
        let (hash, found) = cache.get(&tag, 0).unwrap();
        assert_eq!((hash, found.identity.name()), (KeyHash::of("k1"), "a"));
        assert!(cache.get(&tag, 1).is_none(), "a later generation misses");
        assert!(cache.get(&KeyedTag::of("k2"), 0).is_none());
        cache.clear();
        assert!(cache.get(&tag, 0).is_none());
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn stays_within_its_bound_and_zero_disables_it() {
        let cache = VerifiedKeys::new(8);
        assert!(cache.capacity() <= 8 && cache.capacity() > 0);
        for i in 0..100 {
            let k = format!("k{i}");
            cache.insert(KeyedTag::of(&k), KeyHash::of(&k), key("a"), i % 3);
        }
        assert!(cache.len() <= cache.capacity(), "{}", cache.len());
        let last = KeyedTag::of("k99");
        assert!(cache.get(&last, 0).is_some(), "the newest entry is kept");

        let off = VerifiedKeys::new(0);
        off.insert(last, KeyHash::of("k99"), key("a"), 0);
        assert!(off.get(&last, 0).is_none());
        assert_eq!(off.len(), 0);
    }
}
