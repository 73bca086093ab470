//! Turning a fetched JWK set into prepared keys, and choosing the key for a token.
//!
//! Every key gets its algorithm allowlist from its own JWK (`kty`, `crv`, `alg`) and its
//! `Validation` built once here, when the set is fetched, never per request. Symmetric
//! (`oct`) keys are dropped: a JWKS is public, so an HMAC key from it is a key anyone has.

use std::time::Duration;

use base64::alphabet::URL_SAFE;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::TokenRejection;

use super::super::jwt::rejection;

/// Most keys kept from one JWK set; real sets have a handful.
const MAX_KEYS: usize = 64;

/// RSA moduli below 2048 bits are refused (NIST SP 800-131A); above 16384 bits is no real key
/// and only slows verification down.
const RSA_MIN_BYTES: usize = 256;
const RSA_MAX_BYTES: usize = 2048;

/// Every asymmetric algorithm jsonwebtoken verifies.
pub(super) const ASYMMETRIC: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// base64url as RFC 7517 wants it (no padding), tolerating padding some servers add.
const B64: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The JWK set document. Keys are parsed one by one so that one key this crate cannot use
/// (an encryption key, an unknown `kty`) does not discard the others.
#[derive(Deserialize)]
pub(super) struct RawKeySet {
    keys: Vec<Value>,
}

/// The claim checks every key applies.
#[derive(Debug, Clone)]
pub(super) struct ClaimRules {
    pub(super) audiences: Vec<String>,
    pub(super) issuer: Option<String>,
    pub(super) leeway: Duration,
    /// Application-wide allowlist, intersected with each key's own.
    pub(super) algorithms: Vec<Algorithm>,
    /// Accepted header `typ`s, normalized; empty accepts any.
    pub(super) token_types: Vec<String>,
}

impl ClaimRules {
    fn validation(&self, algorithms: Vec<Algorithm>) -> Validation {
        // `new` only seeds the algorithm list, which is replaced right away.
        let mut validation = Validation::new(Algorithm::RS256);
        validation.algorithms = algorithms;
        validation.leeway = self.leeway.as_secs();
        validation.validate_nbf = true;
        validation.set_audience(&crate::bearer::verify::audience::exact_list(
            &self.audiences,
        ));
        let mut required = vec!["exp", "aud"];
        match &self.issuer {
            Some(issuer) => {
                validation.set_issuer(&[issuer]);
                required.push("iss");
            }
            None => validation.iss = None,
        }
        validation.set_required_spec_claims(&required);
        validation
    }
}

struct PreparedKey {
    kid: Option<String>,
    key: DecodingKey,
    validation: Validation,
    /// For tokens whose `aud` fails the exact match: see `bearer::audience`.
    fallback: (Validation, Vec<String>),
}

/// What a key set says about a token.
pub(super) enum Lookup {
    Verified(Map<String, Value>),
    Rejected(TokenRejection),
    /// No key for the token's `kid` (or, without `kid`, none for its `alg`): a refresh may help.
    UnknownKey,
}

/// The usable keys of one fetched JWK set.
pub(super) struct KeySet {
    keys: Vec<PreparedKey>,
}

impl KeySet {
    /// Prepares every usable key of `raw`; unusable ones are skipped with a debug log.
    pub(super) fn prepare(raw: RawKeySet, rules: &ClaimRules) -> Self {
        let mut keys = Vec::new();
        for value in raw.keys {
            if keys.len() == MAX_KEYS {
                tracing::warn!("JWK set has more than {MAX_KEYS} keys; ignoring the rest");
                break;
            }
            let jwk: Jwk = match serde_json::from_value(value) {
                Ok(jwk) => jwk,
                Err(e) => {
                    tracing::debug!(error = %e, "skipping a JWK that does not parse");
                    continue;
                }
            };
            match prepare_key(&jwk, rules) {
                Ok(key) => keys.push(key),
                Err(reason) => {
                    tracing::debug!(kid = ?jwk.common.key_id, reason, "skipping a JWK");
                }
            }
        }
        Self { keys }
    }

    pub(super) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Verifies `token`, whose header is `header`, with the key it names.
    ///
    /// A key without `kid` matches any token; a token without `kid` tries every key that
    /// allows its `alg`, as several IdPs publish one key and omit the `kid`.
    pub(super) fn verify(&self, token: &str, header: &Header) -> Lookup {
        let mut kid_matched = false;
        let mut bad_signature = false;
        for key in &self.keys {
            match (&key.kid, &header.kid) {
                (Some(want), Some(got)) if want == got => kid_matched = true,
                (Some(_), Some(_)) => continue,
                _ => {}
            }
            if !key.validation.algorithms.contains(&header.alg) {
                continue;
            }
            let decoded = crate::bearer::verify::audience::decode(
                token,
                &key.key,
                &key.validation,
                Some(&key.fallback),
            );
            match decoded {
                Ok(claims) => return Lookup::Verified(claims),
                // Another key may have signed it.
                Err(e) if rejection(e.kind()) == TokenRejection::BadSignature => {
                    bad_signature = true;
                }
                Err(e) => return Lookup::Rejected(rejection(e.kind())),
            }
        }
        if bad_signature {
            Lookup::Rejected(TokenRejection::BadSignature)
        } else if kid_matched {
            // The key exists but does not allow this alg (HS256 naming an RSA key, ...).
            Lookup::Rejected(TokenRejection::AlgorithmNotAllowed)
        } else {
            Lookup::UnknownKey
        }
    }
}

fn prepare_key(jwk: &Jwk, rules: &ClaimRules) -> Result<PreparedKey, &'static str> {
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|u| *u != PublicKeyUse::Signature)
    {
        return Err("not a signature key (use)");
    }
    if jwk
        .common
        .key_operations
        .as_ref()
        .is_some_and(|ops| !ops.contains(&KeyOperations::Verify))
    {
        return Err("not a verification key (key_ops)");
    }
    let mut algorithms = key_algorithms(jwk)?;
    algorithms.retain(|a| rules.algorithms.contains(a));
    if algorithms.is_empty() {
        return Err("none of the key's algorithms is allowed");
    }
    let validation = rules.validation(algorithms);
    Ok(PreparedKey {
        kid: jwk.common.key_id.clone(),
        key: decoding_key(&jwk.algorithm)?,
        fallback: (
            crate::bearer::verify::audience::relaxed(&validation),
            crate::bearer::verify::audience::canonical_list(&rules.audiences),
        ),
        validation,
    })
}

/// The algorithms a JWK may verify: from its type and curve, narrowed to its `alg` if set.
fn key_algorithms(jwk: &Jwk) -> Result<Vec<Algorithm>, &'static str> {
    let by_type = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => ASYMMETRIC[..6].to_vec(),
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => return Err("unsupported EC curve"),
        },
        AlgorithmParameters::OctetKeyPair(p) => match p.curve {
            EllipticCurve::Ed25519 => vec![Algorithm::EdDSA],
            _ => return Err("unsupported OKP curve"),
        },
        AlgorithmParameters::OctetKey(_) => {
            return Err("symmetric keys are never used from a JWKS")
        }
        _ => return Err("unsupported key type"),
    };
    match jwk.common.key_algorithm {
        None => Ok(by_type),
        Some(alg) => match signature_algorithm(alg) {
            Some(alg) if by_type.contains(&alg) => Ok(vec![alg]),
            _ => Err("alg does not fit the key type"),
        },
    }
}

fn signature_algorithm(alg: KeyAlgorithm) -> Option<Algorithm> {
    Algorithm::try_from(alg).ok()
}

/// Builds the key after checking its size, so a malformed JWK is dropped at fetch time
/// rather than failing every request that names it.
fn decoding_key(params: &AlgorithmParameters) -> Result<DecodingKey, &'static str> {
    let b64 = |s: &str| B64.decode(s).map_err(|_| "key material is not base64url");
    match params {
        AlgorithmParameters::RSA(p) => {
            let n = b64(&p.n)?;
            let e = b64(&p.e)?;
            let significant = n.iter().skip_while(|b| **b == 0).count();
            if !(RSA_MIN_BYTES..=RSA_MAX_BYTES).contains(&significant) {
                return Err("RSA modulus must be 2048 to 16384 bits");
            }
            if e.is_empty() || e.len() > 8 {
                return Err("RSA exponent out of range");
            }
            Ok(DecodingKey::from_rsa_raw_components(&n, &e))
        }
        AlgorithmParameters::EllipticCurve(p) => {
            let size = if p.curve == EllipticCurve::P384 {
                48
            } else {
                32
            };
            let (x, y) = (b64(&p.x)?, b64(&p.y)?);
            if x.len() != size || y.len() != size {
                return Err("EC coordinates do not fit the curve");
            }
            // Uncompressed SEC1 point, what jsonwebtoken's EC verifiers take.
            let mut point = Vec::with_capacity(1 + 2 * size);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            Ok(DecodingKey::from_ec_der(&point))
        }
        AlgorithmParameters::OctetKeyPair(p) => {
            let x = b64(&p.x)?;
            if x.len() != 32 {
                return Err("Ed25519 public keys are 32 bytes");
            }
            Ok(DecodingKey::from_ed_der(&x))
        }
        _ => Err("unsupported key type"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules() -> ClaimRules {
        ClaimRules {
            audiences: vec!["aud".into()],
            issuer: None,
            leeway: Duration::from_secs(60),
            algorithms: ASYMMETRIC.to_vec(),
            token_types: Vec::new(),
        }
    }

    fn set(keys: Value) -> KeySet {
        KeySet::prepare(
            serde_json::from_value(json!({ "keys": keys })).unwrap(),
            &rules(),
        )
    }

    fn b64(len: usize) -> String {
        B64.encode(vec![7u8; len])
    }

    #[test]
    fn unusable_keys_are_skipped_not_fatal() {
        let ok_ec = json!({"kty": "EC", "crv": "P-256", "x": b64(32), "y": b64(32), "kid": "ec"});
        let keys = set(json!([
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            {"kty": "RSA", "n": b64(128), "e": "AQAB", "kid": "small-rsa"},
            {"kty": "RSA", "n": b64(256), "e": "AQAB", "kid": "enc", "use": "enc"},
            {"kty": "RSA", "n": b64(256), "e": "AQAB", "kid": "hs", "alg": "HS256"},
            {"kty": "RSA", "n": b64(256), "e": "AQAB", "kid": "oaep", "alg": "RSA-OAEP"},
            {"kty": "EC", "crv": "P-521", "x": b64(66), "y": b64(66)},
            {"kty": "EC", "crv": "P-256", "x": b64(31), "y": b64(32)},
            {"kty": "OKP", "crv": "Ed25519", "x": b64(31)},
            {"kty": "XYZ"},
            "not an object",
            ok_ec,
            {"kty": "RSA", "n": b64(256), "e": "AQAB", "kid": "rsa", "use": "sig", "key_ops": ["verify"]},
            {"kty": "OKP", "crv": "Ed25519", "x": b64(32), "kid": "ed"},
        ]));
        let kids: Vec<_> = keys.keys.iter().map(|k| k.kid.as_deref()).collect();
        assert_eq!(kids, [Some("ec"), Some("rsa"), Some("ed")]);
    }

    #[test]
    fn algorithms_come_from_the_jwk() {
        let keys = set(json!([
            {"kty": "RSA", "n": b64(256), "e": "AQAB", "kid": "any-rsa"},
            {"kty": "RSA", "n": b64(256), "e": "AQAB", "kid": "ps", "alg": "PS256"},
            {"kty": "EC", "crv": "P-384", "x": b64(48), "y": b64(48), "kid": "p384"},
        ]));
        let algs: Vec<_> = keys
            .keys
            .iter()
            .map(|k| k.validation.algorithms.clone())
            .collect();
        assert_eq!(algs[0], ASYMMETRIC[..6]);
        assert_eq!(algs[1], [Algorithm::PS256]);
        assert_eq!(algs[2], [Algorithm::ES384]);
    }

    #[test]
    fn application_allowlist_narrows_keys() {
        let mut r = rules();
        r.algorithms = vec![Algorithm::ES256];
        let raw = serde_json::from_value(json!({"keys": [
            {"kty": "RSA", "n": b64(256), "e": "AQAB", "kid": "rsa"},
        ]}))
        .unwrap();
        assert_eq!(KeySet::prepare(raw, &r).len(), 0);
    }
}
