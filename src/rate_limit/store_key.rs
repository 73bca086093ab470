//! [`StoreKey`]: a limiter's store key, built on the stack.
//!
//! Every limited request names its bucket (`rl:user:alice`, `fa:ip:192.0.2.7`); building
//! that name as a `String` would be one allocation per request for a few dozen bytes. Keys up
//! to [`INLINE`] bytes (nearly all of them) live in an inline buffer; longer ones (a long
//! issuer URL) fall back to a `String`.

use std::fmt;
use std::ops::Deref;

/// Bytes held inline; room for `rl:sub:<len>:<issuer URL>:<subject>` of common IdPs.
const INLINE: usize = 104;

/// A store key; dereferences to `str`.
#[derive(Clone)]
pub(crate) struct StoreKey(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, bytes: Aligned },
    Heap(String),
}

impl StoreKey {
    /// An empty key.
    pub(crate) fn new() -> Self {
        Self(Repr::Inline {
            len: 0,
            bytes: Aligned([0; INLINE]),
        })
    }

    /// The concatenation of `pieces`.
    pub(crate) fn concat(pieces: &[&str]) -> Self {
        let mut key = Self::new();
        for piece in pieces {
            key.push_str(piece);
        }
        key
    }

    /// Appends `s`.
    pub(crate) fn push_str(&mut self, s: &str) {
        match &mut self.0 {
            Repr::Inline { len, bytes } => {
                let at = usize::from(*len);
                match bytes.0.get_mut(at..at + s.len()) {
                    Some(room) => {
                        room.copy_from_slice(s.as_bytes());
                        // `at + s.len() <= INLINE < 256`.
                        *len = (at + s.len()) as u8;
                    }
                    None => {
                        let mut heap = String::with_capacity(at + s.len());
                        heap.push_str(inline_str(bytes, at));
                        heap.push_str(s);
                        self.0 = Repr::Heap(heap);
                    }
                }
            }
            Repr::Heap(heap) => heap.push_str(s),
        }
    }

    /// Appends `n` in decimal.
    pub(crate) fn push_decimal(&mut self, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.push_str(std::str::from_utf8(&digits[at..]).unwrap_or("0"));
    }

    /// The key.
    pub(crate) fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline { len, bytes } => inline_str(bytes, usize::from(*len)),
            Repr::Heap(heap) => heap,
        }
    }
}

/// The inline bytes, word-aligned: `str::from_utf8` checks whole aligned words at a time and
/// goes byte by byte only up to the first word boundary, so an unaligned buffer (after the
/// length byte) would cost a dozen instructions per byte of a short key on every request.
#[derive(Clone)]
#[repr(align(8))]
struct Aligned([u8; INLINE]);

/// The first `len` bytes, which only whole `str`s were copied into.
fn inline_str(bytes: &Aligned, len: usize) -> &str {
    let bytes = &bytes.0[..len];
    std::str::from_utf8(bytes).unwrap_or_else(|e| {
        // Unreachable: only whole `str`s are copied in. Keep the valid prefix rather than
        // panic on the request path.
        debug_assert!(false, "store key is not UTF-8: {e}");
        std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default()
    })
}

impl Deref for StoreKey {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Write for StoreKey {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push_str(s);
        Ok(())
    }
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_keys_stay_inline_and_long_ones_move_to_the_heap() {
        let key = StoreKey::concat(&["rl:user:", "alice"]);
        assert_eq!(&*key, "rl:user:alice");
        assert!(matches!(key.0, Repr::Inline { .. }));

        let long = "é".repeat(INLINE); // two bytes each: overflows half way
        let mut key = StoreKey::concat(&["rl:sub:", &long]);
        key.push_decimal(42);
        assert_eq!(key.as_str(), format!("rl:sub:{long}42"));
        assert!(matches!(key.0, Repr::Heap(_)));

        let mut exact = StoreKey::new();
        exact.push_str(&"x".repeat(INLINE));
        assert_eq!(exact.len(), INLINE);
        assert!(matches!(exact.0, Repr::Inline { .. }));
        exact.push_str("y");
        assert_eq!(exact.len(), INLINE + 1);
    }

    #[test]
    fn decimals_and_formatting() {
        use std::fmt::Write as _;
        let mut key = StoreKey::new();
        key.push_decimal(0);
        key.push_str(":");
        key.push_decimal(u64::MAX);
        write!(key, ":{}", std::net::Ipv6Addr::LOCALHOST).unwrap();
        assert_eq!(key.as_str(), format!("0:{}:::1", u64::MAX));
        assert_eq!(format!("{key:?}"), format!("\"0:{}:::1\"", u64::MAX));
    }
}
