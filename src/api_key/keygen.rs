//! Generating API keys that are recognisable and self-checking.
//!
//! Format: `mcp_` + 43 characters of base64url (32 random bytes) + a 6-character checksum
//! (base64url of the CRC32 of prefix and body, as GitHub's tokens do). The prefix lets secret
//! scanners find leaked keys; the checksum lets the layer reject a mistyped key without a
//! store lookup. CRC32 rather than a truncated SHA-256: it is a typo check, not a security
//! boundary, and it costs a few nanoseconds on the hot path instead of a second hash.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::registry::KeyHash;

/// Prefix of every generated key.
pub const API_KEY_PREFIX: &str = "mcp_";
const BODY_LEN: usize = 43; // 32 bytes in base64url without padding
const CHECKSUM_LEN: usize = 6;
const GENERATED_LEN: usize = API_KEY_PREFIX.len() + BODY_LEN + CHECKSUM_LEN;

/// A freshly generated API key: show [`plaintext`](Self::plaintext) to its owner once, store
/// only [`hash`](Self::hash).
///
/// `Debug` and `Display` redact the plaintext.
pub struct GeneratedApiKey {
    plaintext: String,
    hash: KeyHash,
}

impl GeneratedApiKey {
    /// The key to hand to the client. Never log it.
    pub fn plaintext(&self) -> &str {
        &self.plaintext
    }

    /// The SHA-256 hash to store.
    pub fn hash(&self) -> KeyHash {
        self.hash
    }

    /// Consumes the value, returning the plaintext.
    pub fn into_plaintext(self) -> String {
        self.plaintext
    }
}

impl fmt::Debug for GeneratedApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedApiKey")
            .field("plaintext", &"<redacted>")
            .field("hash", &self.hash)
            .finish()
    }
}

/// Generates a new high-entropy API key (256 random bits from the operating system).
///
/// ```
/// use tower_mcp_auth::{api_key::{generate_api_key, KeyHash}};
///
/// let key = generate_api_key().expect("OS randomness");
/// assert!(key.plaintext().starts_with("mcp_"));
/// assert_eq!(key.plaintext().len(), 53);
/// assert_eq!(key.hash(), KeyHash::of(key.plaintext()));
/// assert!(!format!("{key:?}").contains(key.plaintext()));
/// ```
///
/// # Errors
///
/// Fails only if the operating system's random number generator is unavailable.
pub fn generate_api_key() -> Result<GeneratedApiKey, std::io::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut plaintext = String::with_capacity(GENERATED_LEN);
    plaintext.push_str(API_KEY_PREFIX);
    URL_SAFE_NO_PAD.encode_string(bytes, &mut plaintext);
    let sum = checksum(&plaintext);
    plaintext.push_str(std::str::from_utf8(&sum).expect("base64 is ASCII"));
    let hash = KeyHash::of(&plaintext);
    Ok(GeneratedApiKey { plaintext, hash })
}

/// Base64url of the CRC32 (big-endian), without padding: exactly 6 characters, on the stack.
fn checksum(prefix_and_body: &str) -> [u8; CHECKSUM_LEN] {
    let crc = crc32fast::hash(prefix_and_body.as_bytes()).to_be_bytes();
    let mut out = [0u8; CHECKSUM_LEN];
    let written = URL_SAFE_NO_PAD
        .encode_slice(crc, &mut out)
        .expect("4 bytes encode to 6 base64 characters");
    debug_assert_eq!(written, CHECKSUM_LEN);
    out
}

/// `Some(false)` for a value shaped like a generated key whose checksum is wrong (a typo);
/// `Some(true)` for a well-formed generated key; `None` for keys of another shape (for
/// example hand-written keys in `MCP_API_KEYS`), which are simply looked up.
pub(crate) fn generated_checksum_ok(key: &str) -> Option<bool> {
    if key.len() != GENERATED_LEN || !key.starts_with(API_KEY_PREFIX) {
        return None;
    }
    let (head, sum) = key.split_at(GENERATED_LEN - CHECKSUM_LEN);
    Some(checksum(head) == sum.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_unique_and_self_checking() {
        let a = generate_api_key().unwrap();
        let b = generate_api_key().unwrap();
        assert_ne!(a.plaintext(), b.plaintext());
        assert_eq!(generated_checksum_ok(a.plaintext()), Some(true));
    }

    #[test]
    fn a_typo_breaks_the_checksum() {
        let key = generate_api_key().unwrap().into_plaintext();
        let mut typo = key.clone().into_bytes();
        typo[10] = if typo[10] == b'A' { b'B' } else { b'A' };
        let typo = String::from_utf8(typo).unwrap();
        assert_eq!(generated_checksum_ok(&typo), Some(false));
        assert_eq!(generated_checksum_ok("mcp_1234567890abcdef"), None);
    }
}
