//! A `Hasher` for map keys that already are uniform hashes (API-key SHA-256 digests, keyed
//! token tags): it passes their `u64` through instead of hashing them a second time on the
//! hot path.

use std::hash::{BuildHasherDefault, Hasher};

/// Passes through the `u64` a pre-hashed key writes with `write_u64`.
#[derive(Default)]
pub(crate) struct PassThroughHasher(u64);

/// The `BuildHasher` of maps keyed by pre-hashed values.
pub(crate) type PassThrough = BuildHasherDefault<PassThroughHasher>;

impl Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by the keys; fold anything else in so the hasher stays
        // correct if that ever changes.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}
