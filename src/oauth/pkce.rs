//! PKCE (RFC 7636), S256 only: [`PkceVerifier`].

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// The only code challenge method this crate sends. `plain` is never used.
pub const PKCE_METHOD: &str = "S256";

/// Shortest verifier RFC 7636 allows.
pub const MIN_VERIFIER_LEN: usize = 43;
/// Longest verifier RFC 7636 allows.
pub const MAX_VERIFIER_LEN: usize = 128;

/// A PKCE code verifier: 43 to 128 characters from `[A-Za-z0-9-._~]`, kept server-side with
/// the flow's state and sent only to the token endpoint. Its [`challenge`](Self::challenge)
/// (`BASE64URL(SHA256(verifier))`, method `S256`) goes in the authorization URL.
///
/// `Debug` never shows the value.
///
/// ```
/// use tower_mcp_auth::oauth::PkceVerifier;
///
/// let verifier = PkceVerifier::generate();
/// assert_eq!(verifier.secret().len(), 86);
///
/// // RFC 7636, appendix B.
/// let v = PkceVerifier::new("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk").unwrap();
/// assert_eq!(v.challenge(), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
/// assert!(PkceVerifier::new("too-short").is_none());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct PkceVerifier(String);

impl PkceVerifier {
    /// A fresh verifier from 64 random bytes (86 characters).
    pub fn generate() -> Self {
        Self(URL_SAFE_NO_PAD.encode(super::random_bytes::<64>()))
    }

    /// Checks an existing verifier: 43 to 128 unreserved characters, or `None`.
    pub fn new(verifier: impl Into<String>) -> Option<Self> {
        let v = verifier.into();
        let ok = (MIN_VERIFIER_LEN..=MAX_VERIFIER_LEN).contains(&v.len())
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
        ok.then_some(Self(v))
    }

    /// The `S256` code challenge.
    pub fn challenge(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.0.as_bytes()))
    }

    /// The verifier itself, for the token request.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PkceVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PkceVerifier([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_and_charset() {
        assert!(PkceVerifier::new("a".repeat(42)).is_none());
        assert!(PkceVerifier::new("a".repeat(43)).is_some());
        assert!(PkceVerifier::new("a".repeat(128)).is_some());
        assert!(PkceVerifier::new("a".repeat(129)).is_none());
        assert!(PkceVerifier::new(format!("{}+", "a".repeat(50))).is_none());
        let g = PkceVerifier::generate();
        assert!(PkceVerifier::new(g.secret()).is_some());
        assert_ne!(g, PkceVerifier::generate());
        assert_eq!(format!("{g:?}"), "PkceVerifier([redacted])");
    }
}
