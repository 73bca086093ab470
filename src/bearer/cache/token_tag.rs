//! The cache key of a token: a 128-bit keyed SipHash-2-4 tag instead of its SHA-256.
//!
//! A cache hit must not cost a cryptographic hash of the whole token (SHA-256 of a JWT is
//! most of a hit). The tag is SipHash-2-4 (a pseudorandom function designed for exactly this:
//! short keyed tags of attacker-chosen input) under a key drawn from the operating system once
//! per process, in its 128-bit form (the `siphasher` crate). So:
//!
//! - the cache still holds no usable credential: a tag is a PRF output, not the token;
//! - without the key nobody can choose a token whose tag equals a cached one (a forged hit
//!   succeeds with probability about entries / 2^128 per attempt);
//! - tags are compared in constant time ([`subtle`]), so the map's equality check leaks
//!   nothing about a stored tag.

use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

use siphasher::sip128::{Hasher128, SipHasher24};
use subtle::ConstantTimeEq;

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

/// The 128-bit keyed tag of a token (see the module docs).
#[derive(Clone, Copy)]
pub(crate) struct TokenTag(pub(crate) [u64; 2]);

impl TokenTag {
    pub(crate) fn of(token: &str) -> Self {
        let (k0, k1) = process_key();
        let mut hasher = SipHasher24::new_with_keys(k0, k1);
        hasher.write(token.as_bytes());
        let tag = hasher.finish128();
        Self([tag.h1, tag.h2])
    }
}

impl PartialEq for TokenTag {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.0, other.0);
        (a[0].ct_eq(&b[0]) & a[1].ct_eq(&b[1])).into()
    }
}

impl Eq for TokenTag {}

impl TokenTag {
    /// Which of `shards` (a power of two) holds this key. Uses other bits than the maps do.
    pub(crate) fn shard_index(&self, shards: usize) -> usize {
        debug_assert!(shards.is_power_of_two());
        (self.0[1] as usize) & (shards - 1)
    }
}

impl Hash for TokenTag {
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
        let a = TokenTag::of("header.payload.signature");
        assert!(a == TokenTag::of("header.payload.signature"));
        assert!(a != TokenTag::of("header.payload.signaturf"));
        assert_ne!(a.0[0], a.0[1], "the two halves are independent");
    }
}
