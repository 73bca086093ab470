//! The cache key of a credential: a 128-bit keyed SipHash-2-4 tag instead of its SHA-256.
//!
//! Used by the verified-token cache ([`CachedVerifier`](crate::bearer::CachedVerifier)) and
//! the verified-key cache of [`ApiKeyRegistry`](crate::ApiKeyRegistry). A cache hit must not
//! cost a cryptographic hash of the whole credential (SHA-256 of a JWT or an API key is most
//! of a hit). The tag is SipHash-2-4 (a pseudorandom function designed for exactly this:
//! short keyed tags of attacker-chosen input) under a key drawn from the operating system once
//! per process, in its 128-bit form (the `siphasher` crate). So:
//!
//! - the cache still holds no usable credential: a tag is a PRF output, not the credential;
//! - without the key nobody can choose a credential whose tag equals a cached one (a forged hit
//!   succeeds with probability about entries / 2^128 per attempt);
//! - tags are compared in constant time ([`subtle`]), so the map's equality check leaks
//!   nothing about a stored tag.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{OnceLock, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use siphasher::sip128::{Hasher128, SipHasher24};
use subtle::ConstantTimeEq;

use crate::prehashed::PassThrough;

/// A map keyed by [`KeyedTag`] that does not hash the key again.
pub(crate) type TagMap<V> = HashMap<KeyedTag, V, PassThrough>;

/// Shards of a tag-keyed table: four per core, as a power of two, at most 64.
pub(crate) fn shard_count() -> usize {
    let parallelism = std::thread::available_parallelism().map_or(4, |n| n.get());
    (parallelism * 4).next_power_of_two().clamp(1, 64)
}

/// A bounded table of at most `max_entries` entries keyed by [`KeyedTag`], split over shards
/// that each have their own lock: an operation locks one shard, never the whole table.
/// Never more shards than entries (each holds at least one); a bound of zero gives one
/// shard of capacity zero (the table is off).
pub(crate) struct TagShards<T> {
    shards: Box<[RwLock<T>]>,
    per_shard: usize,
}

impl<T: Default> TagShards<T> {
    pub(crate) fn new(max_entries: usize) -> Self {
        let count = if max_entries == 0 {
            1
        } else if max_entries.is_power_of_two() {
            shard_count().min(max_entries)
        } else {
            shard_count().min(max_entries.next_power_of_two() / 2)
        };
        Self {
            shards: (0..count).map(|_| RwLock::default()).collect(),
            per_shard: max_entries / count,
        }
    }
}

impl<T> TagShards<T> {
    /// How many entries one shard may hold (`0`: the table is off).
    pub(crate) fn per_shard(&self) -> usize {
        self.per_shard
    }

    /// Number of shards.
    pub(crate) fn count(&self) -> usize {
        self.shards.len()
    }

    /// Upper bound on the number of entries.
    pub(crate) fn capacity(&self) -> usize {
        self.per_shard * self.shards.len()
    }

    fn shard(&self, tag: &KeyedTag) -> &RwLock<T> {
        &self.shards[tag.shard_index(self.shards.len())]
    }

    /// The shard of `tag`, for reading (a poisoned lock is taken over: the data is plain).
    pub(crate) fn read(&self, tag: &KeyedTag) -> RwLockReadGuard<'_, T> {
        self.shard(tag)
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The shard of `tag`, for writing.
    pub(crate) fn write(&self, tag: &KeyedTag) -> RwLockWriteGuard<'_, T> {
        self.shard(tag)
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Every shard in turn, for reading.
    pub(crate) fn each_read(&self) -> impl Iterator<Item = RwLockReadGuard<'_, T>> {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Every shard in turn, for writing.
    pub(crate) fn each_write(&self) -> impl Iterator<Item = RwLockWriteGuard<'_, T>> {
        self.shards
            .iter()
            .map(|s| s.write().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The process's tag key, from the operating system's random number generator.
fn process_key() -> (u64, u64) {
    static KEY: OnceLock<(u64, u64)> = OnceLock::new();
    *KEY.get_or_init(|| {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
        let (a, b) = bytes.split_at(8);
        (
            u64::from_le_bytes(a.try_into().expect("8 bytes")),
            u64::from_le_bytes(b.try_into().expect("8 bytes")),
        )
    })
}

/// The 128-bit keyed tag of a credential (see the module docs).
#[derive(Clone, Copy)]
pub(crate) struct KeyedTag(pub(crate) [u64; 2]);

impl KeyedTag {
    pub(crate) fn of(credential: &str) -> Self {
        Self::of_bytes(credential.as_bytes())
    }

    /// [`of`](Self::of) of raw bytes (equal to `of` of the same bytes as a `str`).
    pub(crate) fn of_bytes(credential: &[u8]) -> Self {
        let (k0, k1) = process_key();
        let mut hasher = SipHasher24::new_with_keys(k0, k1);
        hasher.write(credential);
        let tag = hasher.finish128();
        Self([tag.h1, tag.h2])
    }
}

impl PartialEq for KeyedTag {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.0, other.0);
        (a[0].ct_eq(&b[0]) & a[1].ct_eq(&b[1])).into()
    }
}

impl Eq for KeyedTag {}

impl KeyedTag {
    /// Which of `shards` (a power of two) holds this key. Uses other bits than the maps do.
    pub(crate) fn shard_index(&self, shards: usize) -> usize {
        debug_assert!(shards.is_power_of_two());
        (self.0[1] as usize) & (shards - 1)
    }
}

impl Hash for KeyedTag {
    // The tag already is a uniform keyed hash: hand 64 bits of it to the map instead of
    // hashing it again with SipHash.
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0[0]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siphash128_matches_the_reference_vectors() {
        // vectors.h of the SipHash reference implementation, 128-bit output, empty message
        // and 15 bytes 00..0e, key 00..0f: checks that the crate is SipHash-2-4-128.
        let mut h = SipHasher24::new_with_keys(0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908);
        h.write(&[]);
        assert_eq!(
            h.finish128().as_bytes(),
            [
                0xa3, 0x81, 0x7f, 0x04, 0xba, 0x25, 0xa8, 0xe6, 0x6d, 0xf6, 0x72, 0x14, 0xc7, 0x55,
                0x02, 0x93
            ]
        );
    }

    #[test]
    fn tags_differ_per_token_and_half() {
        let a = KeyedTag::of("header.payload.signature");
        assert!(a == KeyedTag::of("header.payload.signature"));
        assert!(a != KeyedTag::of("header.payload.signaturf"));
        assert_ne!(a.0[0], a.0[1], "the two halves are independent");
    }
}
