//! The cache key of a token: a 128-bit keyed SipHash-2-4 tag instead of its SHA-256.
//!
//! A cache hit must not cost a cryptographic hash of the whole token (SHA-256 of a JWT is
//! most of a hit). The tag is SipHash-2-4 (a pseudorandom function designed for exactly this:
//! short keyed tags of attacker-chosen input) under a key drawn from the operating system once
//! per process, computed twice with a domain byte to give 128 bits. So:
//!
//! - the cache still holds no usable credential: a tag is a PRF output, not the token;
//! - without the key nobody can choose a token whose tag equals a cached one (a forged hit
//!   succeeds with probability about entries / 2^128 per attempt);
//! - tags are compared in constant time ([`subtle`]), so the map's equality check leaks
//!   nothing about a stored tag.

use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

use subtle::ConstantTimeEq;

/// One SipHash-2-4 pass over `data` under `key`, prefixed by the domain byte `domain`.
fn siphash24(key: (u64, u64), domain: u8, data: &[u8]) -> u64 {
    let mut v = [
        key.0 ^ 0x736f_6d65_7073_6575,
        key.1 ^ 0x646f_7261_6e64_6f6d,
        key.0 ^ 0x6c79_6765_6e65_7261,
        key.1 ^ 0x7465_6462_7974_6573,
    ];
    let total = data.len() + 1;
    // The domain byte is the message's first byte: fold it into the first block.
    let mut block = [0u8; 8];
    block[0] = domain;
    let head = data.len().min(7);
    block[1..1 + head].copy_from_slice(&data[..head]);
    let mut rest = &data[head..];
    if head == 7 {
        compress(&mut v, u64::from_le_bytes(block));
        let mut chunks = rest.chunks_exact(8);
        for chunk in &mut chunks {
            compress(
                &mut v,
                u64::from_le_bytes(chunk.try_into().expect("8 bytes")),
            );
        }
        rest = chunks.remainder();
        block = [0u8; 8];
        block[..rest.len()].copy_from_slice(rest);
    }
    // The last block: the remaining bytes and the length's low byte on top.
    let last = u64::from_le_bytes(block) | ((total as u64 & 0xff) << 56);
    compress(&mut v, last);
    v[2] ^= 0xff;
    for _ in 0..4 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

fn compress(v: &mut [u64; 4], m: u64) {
    v[3] ^= m;
    round(v);
    round(v);
    v[0] ^= m;
}

fn round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13) ^ v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16) ^ v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21) ^ v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17) ^ v[2];
    v[2] = v[2].rotate_left(32);
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

/// The 128-bit keyed tag of a token (see the module docs).
#[derive(Clone, Copy)]
pub(crate) struct TokenTag(pub(crate) [u64; 2]);

impl TokenTag {
    pub(crate) fn of(token: &str) -> Self {
        let key = process_key();
        Self([
            siphash24(key, 0, token.as_bytes()),
            siphash24(key, 1, token.as_bytes()),
        ])
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

    /// SipHash-2-4 of `data` without a domain byte, for the reference vectors.
    fn reference(key: (u64, u64), data: &[u8]) -> u64 {
        // A message of n bytes equals the domain byte data[0] followed by data[1..].
        siphash24(key, data[0], &data[1..])
    }

    #[test]
    fn matches_the_siphash_paper_vectors() {
        let key = (0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908);
        let msg: Vec<u8> = (0u8..15).collect();
        // Appendix A of "SipHash: a fast short-input PRF" (Aumasson, Bernstein).
        assert_eq!(reference(key, &msg), 0xa129_ca61_49be_45e5);
        // The first vectors of the reference implementation (vectors.h), 1 and 8 bytes.
        assert_eq!(reference(key, &[0]), 0x74f8_39c5_93dc_67fd);
        assert_eq!(
            reference(key, &(0u8..8).collect::<Vec<_>>()),
            0x93f5_f579_9a93_2462
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
