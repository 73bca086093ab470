//! Signing keys for the access tokens this server issues: ES256 (P-256) or EdDSA (Ed25519),
//! read from PKCS#8 PEM or generated, published as a JWKS, and turned into the
//! [`JwtVerifier`] the resource side checks tokens with.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::bearer::install_crypto_provider;
use crate::bearer::JwtKey;

/// Why a signing key could not be read.
#[derive(Debug, thiserror::Error)]
#[error("invalid token signing key: {0}")]
pub struct SigningKeyError(&'static str);

/// One key that signs access tokens. `Debug` shows the `kid` and algorithm only.
///
/// ```
/// use tower_mcp_auth::oauth::server::SigningKey;
///
/// let key = SigningKey::generate_es256();
/// assert_eq!(key.jwk()["kty"], "EC");
/// assert_eq!(key.jwk()["kid"], key.kid());
/// ```
#[derive(Clone)]
pub struct SigningKey {
    algorithm: Algorithm,
    kid: String,
    encoding: EncodingKey,
    jwk: Value,
    /// The private key, PKCS#8 PEM.
    pem: String,
}

impl SigningKey {
    /// A fresh P-256 key from the operating system's CSPRNG (tokens signed with it stop
    /// verifying when the process ends unless the key is saved: see [`to_pem`](Self::to_pem)).
    pub fn generate_es256() -> Self {
        loop {
            // A random 32-byte string is a valid scalar except with negligible probability.
            if let Ok(secret) = p256::SecretKey::from_slice(&super::super::random_bytes::<32>()) {
                return Self::from_p256(&secret);
            }
        }
    }

    /// A fresh Ed25519 key.
    pub fn generate_ed25519() -> Self {
        let key = ed25519_dalek::SigningKey::from_bytes(&super::super::random_bytes::<32>());
        Self::from_ed25519(&key)
    }

    /// A PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`): P-256 gives ES256,
    /// Ed25519 gives EdDSA.
    ///
    /// # Errors
    ///
    /// When the PEM is neither.
    pub fn from_pem(pem: &str) -> Result<Self, SigningKeyError> {
        use ed25519_dalek::pkcs8::DecodePrivateKey as _;
        if let Ok(secret) = p256::SecretKey::from_pkcs8_pem(pem) {
            return Ok(Self::from_p256(&secret));
        }
        if let Ok(key) = ed25519_dalek::SigningKey::from_pkcs8_pem(pem) {
            return Ok(Self::from_ed25519(&key));
        }
        Err(SigningKeyError(
            "not a PKCS#8 PEM P-256 or Ed25519 private key",
        ))
    }

    /// The key as PKCS#8 PEM, to keep a generated key across restarts.
    pub fn to_pem(&self) -> String {
        self.pem.clone()
    }

    fn from_p256(secret: &p256::SecretKey) -> Self {
        use p256::elliptic_curve::sec1::ToEncodedPoint as _;
        use p256::pkcs8::{EncodePrivateKey as _, LineEnding};
        let der = secret
            .to_pkcs8_der()
            .expect("a P-256 key always encodes as PKCS#8");
        let pem = secret
            .to_pkcs8_pem(LineEnding::LF)
            .expect("a P-256 key always encodes as PKCS#8")
            .to_string();
        let point = secret.public_key().to_encoded_point(false);
        let (Some(x), Some(y)) = (point.x(), point.y()) else {
            unreachable!("an uncompressed point has both coordinates")
        };
        let (x, y) = (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
        let kid = thumbprint(&format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#
        ));
        let jwk = json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "alg": "ES256", "use": "sig", "kid": kid});
        Self::assemble(
            Algorithm::ES256,
            kid,
            EncodingKey::from_ec_der(der.as_bytes()),
            jwk,
            pem,
        )
    }

    fn from_ed25519(key: &ed25519_dalek::SigningKey) -> Self {
        use ed25519_dalek::pkcs8::{spki::der::pem::LineEnding, EncodePrivateKey as _};
        let der = key
            .to_pkcs8_der()
            .expect("an Ed25519 key always encodes as PKCS#8");
        let pem = key
            .to_pkcs8_pem(LineEnding::LF)
            .expect("an Ed25519 key always encodes as PKCS#8")
            .to_string();
        let x = URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes());
        let kid = thumbprint(&format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#));
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": x, "alg": "EdDSA", "use": "sig", "kid": kid});
        Self::assemble(
            Algorithm::EdDSA,
            kid,
            EncodingKey::from_ed_der(der.as_bytes()),
            jwk,
            pem,
        )
    }

    fn assemble(
        algorithm: Algorithm,
        kid: String,
        encoding: EncodingKey,
        jwk: Value,
        pem: String,
    ) -> Self {
        install_crypto_provider();
        Self {
            algorithm,
            kid,
            encoding,
            jwk,
            pem,
        }
    }

    /// The key id: the RFC 7638 thumbprint of the public key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// `ES256` or `EdDSA`.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The public key as a JWK (with `kid`, `alg`, `use`).
    pub fn jwk(&self) -> &Value {
        &self.jwk
    }

    pub(crate) fn encoding(&self) -> &EncodingKey {
        &self.encoding
    }

    /// The verifier key for the public half, matched by `kid`.
    pub(crate) fn verifier_key(&self) -> JwtKey {
        let decoding = match self.algorithm {
            Algorithm::EdDSA => DecodingKey::from_ed_components(jwk_str(&self.jwk, "x")),
            _ => DecodingKey::from_ec_components(jwk_str(&self.jwk, "x"), jwk_str(&self.jwk, "y")),
        }
        .expect("the JWK was built from a valid public key");
        JwtKey::with_key(decoding, self.algorithm).kid(self.kid.clone())
    }
}

fn jwk_str<'a>(jwk: &'a Value, name: &str) -> &'a str {
    jwk[name].as_str().unwrap_or_default()
}

/// RFC 7638: base64url(SHA-256(canonical JWK)).
fn thumbprint(canonical: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip_keeps_the_kid() {
        for key in [SigningKey::generate_es256(), SigningKey::generate_ed25519()] {
            let again = SigningKey::from_pem(&key.to_pem()).unwrap();
            assert_eq!(again.kid(), key.kid());
            assert_eq!(again.algorithm(), key.algorithm());
        }
        assert!(SigningKey::from_pem(
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
        )
        .is_err());
    }

    #[test]
    fn debug_hides_the_private_key() {
        let key = SigningKey::generate_ed25519();
        let shown = format!("{key:?}");
        assert!(shown.contains(key.kid()));
        assert!(!shown.contains("PRIVATE"));
    }
}
