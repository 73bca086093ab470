//! `src/bearer/jwt.rs` and `src/bearer/claims.rs`: JWT header and claims checks on the
//! verifier path, and the identity built from verified claims.
//!
//! Input lines: `h:` the header JSON, `c:` the claims JSON, `s:` how to sign (`k1` HS256 with
//! key 1, `k1x` HS512 with key 1, `k2` HS256 with key 2, anything else: the value's bytes are
//! the signature), `m:` `<position> <byte>` a mutation applied to the finished token, `r:` a
//! raw token tried as is.
//!
//! Two verifiers: `single` (one HS256 key, issuer and audience, jsonwebtoken's fast path)
//! and `multi` (kid-bound keys, HS256/HS512, `typ` must be `at+jwt`).
//!
//! Invariants beyond "no panic":
//! - a token is accepted only when we signed it with a key and algorithm that verifier allows
//!   (nothing else verifies: not `none`, not another key, not a forged signature);
//! - an accepted token has a numeric `exp` not past the leeway, the configured `iss` and `aud`
//!   (and, for `multi`, an `at+jwt` type);
//! - the identity carries `sub` as user id and name (else `client_id`), the `scope` words
//!   (or `scp` strings) as permissions, and `exp` as expiry;
//! - any change to an accepted token's bytes makes it fail;
//! - a raw token never verifies.
#![no_main]

mod common;

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use tower_mcp_auth::__fuzz as f;
use tower_mcp_auth::{
    bearer::{Algorithm, JwtKey},
    JwtVerifier,
};

const KEY1: &[u8] = b"fuzz-jwt-key-one-fuzz-jwt-key-one!!";
const KEY2: &[u8] = b"fuzz-jwt-key-two-fuzz-jwt-key-two!!";
const ISS: &str = "https://auth.example.com";
const AUD: &str = "https://mcp.example.com/mcp";
const LEEWAY: u64 = 60;

struct Verifiers {
    single: JwtVerifier,
    multi: JwtVerifier,
}

fn verifiers() -> &'static Verifiers {
    static V: OnceLock<Verifiers> = OnceLock::new();
    V.get_or_init(|| Verifiers {
        single: JwtVerifier::hs256(KEY1)
            .issuer(ISS)
            .audience(AUD)
            .build()
            .unwrap(),
        multi: JwtVerifier::builder()
            .key(
                JwtKey::hmac(KEY1)
                    .kid("k1")
                    .algorithms([Algorithm::HS256, Algorithm::HS512]),
            )
            .key(JwtKey::hmac(KEY2).kid("k2"))
            .issuer(ISS)
            .audience(AUD)
            .token_type("at+jwt")
            .build()
            .unwrap(),
    })
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Signed {
    K1Hs256,
    K1Hs512,
    K2Hs256,
    Forged,
}

fn sign(input: &str, how: Signed) -> Vec<u8> {
    match how {
        Signed::K1Hs256 | Signed::K2Hs256 => {
            let key = if how == Signed::K1Hs256 { KEY1 } else { KEY2 };
            let mut m = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).unwrap();
            m.update(input.as_bytes());
            m.finalize().into_bytes().to_vec()
        }
        Signed::K1Hs512 => {
            let mut m = <Hmac<sha2::Sha512> as Mac>::new_from_slice(KEY1).unwrap();
            m.update(input.as_bytes());
            m.finalize().into_bytes().to_vec()
        }
        Signed::Forged => unreachable!(),
    }
}

/// What the verifier may accept given how the token was made.
fn may_accept(multi: bool, header: &Map<String, Value>, how: Signed) -> bool {
    let alg = header.get("alg").and_then(Value::as_str);
    let kid = header.get("kid").and_then(Value::as_str);
    match (multi, how) {
        (_, Signed::Forged) => false,
        (false, Signed::K1Hs256) => alg == Some("HS256"),
        (false, _) => false,
        (true, Signed::K1Hs256) => kid == Some("k1") && alg == Some("HS256"),
        (true, Signed::K1Hs512) => kid == Some("k1") && alg == Some("HS512"),
        (true, Signed::K2Hs256) => kid == Some("k2") && alg == Some("HS256"),
    }
}

fn check_identity(id: &tower_mcp_auth::Identity, claims: &Map<String, Value>) {
    let sub = claims.get("sub").and_then(Value::as_str);
    assert_eq!(id.user_id(), sub);
    let name = sub
        .or_else(|| claims.get("client_id").and_then(Value::as_str))
        .unwrap_or("");
    assert_eq!(id.name(), name);
    assert_eq!(id.role(), claims.get("role").and_then(Value::as_str));
    let expected: Vec<String> = match claims.get("scope").or_else(|| claims.get("scp")) {
        Some(Value::String(s)) => s.split_ascii_whitespace().map(str::to_owned).collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .filter(|s| !s.is_empty()) // an empty entry names no scope
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    // Token scopes are scopes, never operator-written permissions.
    assert_eq!(id.scopes(), expected.as_slice());
    assert!(id.permissions().is_empty());
    if let Some(exp) = claims.get("exp").and_then(Value::as_u64) {
        // Beyond `SystemTime`'s range the expiry is unknown (never cached), not a panic.
        assert_eq!(
            id.expires_at(),
            UNIX_EPOCH.checked_add(Duration::from_secs(exp))
        );
    }
    assert_eq!(id.claims(), Some(claims));
}

fn check_accepted(multi: bool, header: &Map<String, Value>, claims: &Map<String, Value>) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let exp = claims
        .get("exp")
        .and_then(Value::as_f64)
        .expect("accepted without a numeric exp");
    assert!(
        exp + LEEWAY as f64 >= now as f64,
        "accepted an expired token (exp {exp})"
    );
    assert_eq!(
        claims.get("iss").and_then(Value::as_str),
        Some(ISS),
        "wrong issuer accepted"
    );
    // Audiences compare as canonical resource URIs (`https://MCP.example.com/mcp/` names
    // the same resource), never by anything looser.
    let canonical = f::canonical_resource(AUD);
    let names_us = |a: &str| a == AUD || f::canonical_resource(a) == canonical;
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => names_us(a),
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).any(names_us),
        _ => false,
    };
    assert!(aud_ok, "wrong audience accepted: {:?}", claims.get("aud"));
    if multi {
        let typ = header
            .get("typ")
            .and_then(Value::as_str)
            .expect("accepted without typ");
        assert!(f::token_type_accepted(&["at+jwt"], Some(typ)));
        let short = typ.trim();
        let short = short
            .get(..12)
            .filter(|p| p.eq_ignore_ascii_case("application/"))
            .map_or(short, |_| &short[12..]);
        assert!(short.eq_ignore_ascii_case("at+jwt"), "typ {typ:?} accepted");
    }
}

fuzz_target!(|data: &[u8]| {
    let v = verifiers();
    let mut header_json: &[u8] = br#"{"alg":"HS256","typ":"JWT"}"#;
    let mut claims_json: &[u8] = b"{}";
    let mut how = Signed::K1Hs256;
    let mut forged_sig: &[u8] = b"";
    let mut mutation: Option<(usize, u8)> = None;
    for (tag, value) in common::tagged_lines(data) {
        match tag {
            "h" => header_json = value,
            "c" => claims_json = value,
            "s" => {
                how = match value {
                    b"k1" => Signed::K1Hs256,
                    b"k1x" => Signed::K1Hs512,
                    b"k2" => Signed::K2Hs256,
                    other => {
                        forged_sig = other;
                        Signed::Forged
                    }
                }
            }
            "m" => {
                let text = String::from_utf8_lossy(value);
                let mut it = text.split_whitespace();
                if let (Some(p), Some(b)) = (it.next(), it.next()) {
                    if let (Ok(p), Ok(b)) = (p.parse(), b.parse()) {
                        mutation = Some((p, b));
                    }
                }
            }
            "r" => {
                if let Ok(raw) = std::str::from_utf8(value) {
                    assert!(f::jwt_verify(&v.single, raw).is_err(), "raw token verified");
                    assert!(f::jwt_verify(&v.multi, raw).is_err(), "raw token verified");
                }
            }
            _ => {}
        }
    }

    // The claims side of identity building, whatever the token.
    if let Ok(Value::Object(claims)) = serde_json::from_slice::<Value>(claims_json) {
        let id = f::identity_from_claims(claims.clone());
        check_identity(&id, &claims);
    }

    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header_json),
        URL_SAFE_NO_PAD.encode(claims_json)
    );
    let sig = match how {
        Signed::Forged => forged_sig.to_vec(),
        _ => sign(&signing_input, how),
    };
    let token = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(&sig));
    let header: Option<Map<String, Value>> = serde_json::from_slice(header_json).ok();
    let claims: Option<Map<String, Value>> = serde_json::from_slice(claims_json).ok();

    for (multi, verifier) in [(false, &v.single), (true, &v.multi)] {
        let Ok(id) = f::jwt_verify(verifier, &token) else {
            continue;
        };
        let header = header
            .as_ref()
            .expect("accepted a token whose header is not a JSON object");
        let claims = claims
            .as_ref()
            .expect("accepted a token whose claims are not a JSON object");
        assert!(
            may_accept(multi, header, how),
            "multi={multi}: accepted {how:?} with header {header:?}"
        );
        check_accepted(multi, header, claims);
        check_identity(&id, claims);

        if let Some((pos, byte)) = mutation {
            let mut bytes = token.clone().into_bytes();
            let pos = pos % bytes.len();
            bytes[pos] = byte;
            if bytes != token.as_bytes() {
                if let Ok(mutated) = String::from_utf8(bytes) {
                    assert!(
                        f::jwt_verify(verifier, &mutated).is_err(),
                        "multi={multi}: a mutated token still verifies: {mutated}"
                    );
                }
            }
        }
    }

    // `typ` comparison: a configured type always accepts itself, never a missing `typ`.
    if let Some(typ) = header
        .as_ref()
        .and_then(|h| h.get("typ"))
        .and_then(Value::as_str)
    {
        assert!(f::token_type_accepted(&[typ], Some(typ)));
        assert!(!f::token_type_accepted(&[typ], None));
        assert!(f::token_type_accepted(&[], Some(typ)));
    }
});
