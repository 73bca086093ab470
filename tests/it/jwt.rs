//! JwtVerifier against every supported algorithm family and every way a token can be wrong.

use crate::common;

use common::{claims, now, SECRET};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tower_mcp_auth::{
    bearer::{JwtConfigError, JwtKey},
    JwtVerifier, TokenRejection,
};

const RSA_PRIVATE: &[u8] = include_bytes!("../fixtures/rsa_private.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("../fixtures/rsa_public.pem");
const EC_PRIVATE: &[u8] = include_bytes!("../fixtures/ec_private.pem");
const EC_PUBLIC: &[u8] = include_bytes!("../fixtures/ec_public.pem");
const ED_PRIVATE: &[u8] = include_bytes!("../fixtures/ed_private.pem");
const ED_PUBLIC: &[u8] = include_bytes!("../fixtures/ed_public.pem");

fn sign(alg: Algorithm, key: &EncodingKey, claims: &Value, kid: Option<&str>) -> String {
    tower_mcp_auth::bearer::install_crypto_provider();
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    encode(&header, claims, key).unwrap()
}

fn hs(claims: &Value) -> String {
    sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET),
        claims,
        None,
    )
}

fn hs_verifier() -> JwtVerifier {
    JwtVerifier::hs256(SECRET).build().unwrap()
}

#[test]
fn every_algorithm_family_verifies() {
    let c = claims("alice");
    let cases: Vec<(JwtKey, String)> = vec![
        (
            JwtKey::hmac(SECRET).algorithms([Algorithm::HS384]),
            sign(
                Algorithm::HS384,
                &EncodingKey::from_secret(SECRET),
                &c,
                None,
            ),
        ),
        (
            JwtKey::hmac(SECRET).algorithms([Algorithm::HS512]),
            sign(
                Algorithm::HS512,
                &EncodingKey::from_secret(SECRET),
                &c,
                None,
            ),
        ),
        (
            JwtKey::rsa_pem(RSA_PUBLIC).unwrap(),
            sign(
                Algorithm::RS256,
                &EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap(),
                &c,
                None,
            ),
        ),
        (
            JwtKey::rsa_pem(RSA_PUBLIC)
                .unwrap()
                .algorithms([Algorithm::PS256, Algorithm::RS512]),
            sign(
                Algorithm::PS256,
                &EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap(),
                &c,
                None,
            ),
        ),
        (
            JwtKey::ec_pem(EC_PUBLIC).unwrap(),
            sign(
                Algorithm::ES256,
                &EncodingKey::from_ec_pem(EC_PRIVATE).unwrap(),
                &c,
                None,
            ),
        ),
        (
            JwtKey::ed_pem(ED_PUBLIC).unwrap(),
            sign(
                Algorithm::EdDSA,
                &EncodingKey::from_ed_pem(ED_PRIVATE).unwrap(),
                &c,
                None,
            ),
        ),
    ];
    for (key, token) in cases {
        let label = format!("{key:?}");
        let v = JwtVerifier::builder().key(key).build().unwrap();
        let id = v
            .verify_now(&token)
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(id.user_id(), Some("alice"), "{label}");
    }
}

#[test]
fn alg_none_is_rejected() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims("alice").to_string());
    for token in [
        format!("{header}.{payload}."),
        format!("{header}.{payload}"),
    ] {
        assert!(hs_verifier().verify_now(&token).is_err(), "{token}");
    }
}

#[test]
fn hmac_signed_with_the_public_key_is_rejected() {
    // The classic confusion: an attacker signs HS256 using the RSA public key as the secret.
    let forged = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(RSA_PUBLIC),
        &claims("root"),
        None,
    );
    let v = JwtVerifier::builder()
        .key(JwtKey::rsa_pem(RSA_PUBLIC).unwrap())
        .build()
        .unwrap();
    assert_eq!(
        v.verify_now(&forged).unwrap_err(),
        TokenRejection::AlgorithmNotAllowed
    );
}

#[test]
fn hmac_allowlist_on_a_public_key_is_a_build_error() {
    let err = JwtVerifier::builder()
        .key(
            JwtKey::rsa_pem(RSA_PUBLIC)
                .unwrap()
                .algorithms([Algorithm::RS256, Algorithm::HS256]),
        )
        .build()
        .unwrap_err();
    assert!(matches!(
        err,
        JwtConfigError::AlgorithmMismatch {
            algorithm: Algorithm::HS256,
            ..
        }
    ));
}

#[test]
fn unlisted_algorithm_is_rejected() {
    let token = sign(
        Algorithm::HS512,
        &EncodingKey::from_secret(SECRET),
        &claims("a"),
        None,
    );
    assert_eq!(
        hs_verifier().verify_now(&token).unwrap_err(),
        TokenRejection::AlgorithmNotAllowed
    );
}

#[test]
fn claim_checks() {
    let v = JwtVerifier::hs256(SECRET)
        .issuer("https://auth.example")
        .audience("http://127.0.0.1/mcp")
        .build()
        .unwrap();
    let good = json!({"sub": "a", "exp": now() + 60, "iss": "https://auth.example", "aud": "http://127.0.0.1/mcp"});
    assert!(v.verify_now(&hs(&good)).is_ok());

    let with = |k: &str, val: Value| {
        let mut c = good.clone();
        c[k] = val;
        hs(&c)
    };
    let without = |k: &str| {
        let mut c = good.clone();
        c.as_object_mut().unwrap().remove(k);
        hs(&c)
    };
    assert_eq!(
        v.verify_now(&with("exp", json!(now() - 120))).unwrap_err(),
        TokenRejection::Expired
    );
    assert_eq!(
        v.verify_now(&with("nbf", json!(now() + 600))).unwrap_err(),
        TokenRejection::NotYetValid
    );
    assert_eq!(
        v.verify_now(&with("iss", json!("https://evil")))
            .unwrap_err(),
        TokenRejection::WrongIssuer
    );
    assert_eq!(
        v.verify_now(&with("aud", json!("http://other/mcp")))
            .unwrap_err(),
        TokenRejection::WrongAudience
    );
    assert_eq!(
        v.verify_now(&without("exp")).unwrap_err(),
        TokenRejection::MissingClaim
    );
    assert_eq!(
        v.verify_now(&without("iss")).unwrap_err(),
        TokenRejection::MissingClaim
    );
    assert_eq!(
        v.verify_now(&without("aud")).unwrap_err(),
        TokenRejection::MissingClaim
    );
    // Inside the default 60 s leeway.
    assert!(v.verify_now(&with("exp", json!(now() - 30))).is_ok());
    assert!(v.verify_now(&with("nbf", json!(now() + 30))).is_ok());
    // aud as an array containing us.
    assert!(v
        .verify_now(&with("aud", json!(["x", "http://127.0.0.1/mcp"])))
        .is_ok());
}

#[test]
fn bad_signature_and_garbage() {
    let other = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(b"another-secret-that-is-long-enough!!"),
        &claims("a"),
        None,
    );
    assert_eq!(
        hs_verifier().verify_now(&other).unwrap_err(),
        TokenRejection::BadSignature
    );
    for junk in ["", "a", "a.b", "a.b.c", "....", "eyJ.eyJ.sig", "\u{0}"] {
        assert!(hs_verifier().verify_now(junk).is_err(), "{junk:?}");
    }
}

#[test]
fn required_token_type_refuses_other_jwts() {
    let c = claims("alice");
    let typed = |typ: Option<&str>| {
        let mut header = Header::new(Algorithm::HS256);
        header.typ = typ.map(str::to_owned);
        encode(&header, &c, &EncodingKey::from_secret(SECRET)).unwrap()
    };
    // Default: any typ, or none.
    for typ in [Some("JWT"), Some("at+jwt"), None] {
        assert!(hs_verifier().verify_now(&typed(typ)).is_ok(), "{typ:?}");
    }
    // Required: RFC 9068 access tokens only, the media type compared the RFC 7515 way; on the
    // one-key fast path and with several keys.
    let single = JwtVerifier::hs256(SECRET)
        .token_type("at+jwt")
        .build()
        .unwrap();
    let several = JwtVerifier::builder()
        .key(JwtKey::hmac(b"another-secret-of-at-least-32-bytes!!").kid("old"))
        .key(JwtKey::hmac(SECRET))
        .token_type("application/at+jwt")
        .build()
        .unwrap();
    for v in [&single, &several] {
        for typ in ["at+jwt", "AT+JWT", "application/at+jwt"] {
            assert!(v.verify_now(&typed(Some(typ))).is_ok(), "{typ}");
        }
        for typ in [Some("JWT"), Some("id_token+jwt"), None] {
            assert_eq!(
                v.verify_now(&typed(typ)).unwrap_err(),
                TokenRejection::WrongType,
                "{typ:?}"
            );
        }
    }
}

#[test]
fn rfc9068_access_token_is_accepted() {
    let v = JwtVerifier::hs256(SECRET)
        .audience("https://mcp.example/mcp")
        .build()
        .unwrap();
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some("at+jwt".into());
    let c = json!({"iss": "https://as", "sub": "u1", "aud": "https://mcp.example/mcp",
                   "exp": now() + 60, "iat": now(), "jti": "x", "client_id": "inspector"});
    let token = encode(&header, &c, &EncodingKey::from_secret(SECRET)).unwrap();
    let id = v.verify_now(&token).unwrap();
    assert!(id.scopes().is_empty(), "absent scope means no scopes");
    assert_eq!(id.claims().unwrap()["client_id"], "inspector");
}

#[test]
fn keys_are_selected_by_kid() {
    let v = JwtVerifier::builder()
        .key(JwtKey::hmac(SECRET).kid("old"))
        .key(JwtKey::rsa_pem(RSA_PUBLIC).unwrap().kid("new"))
        .build()
        .unwrap();
    let rsa = EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap();
    let hmac = EncodingKey::from_secret(SECRET);
    assert!(v
        .verify_now(&sign(Algorithm::RS256, &rsa, &claims("a"), Some("new")))
        .is_ok());
    assert!(v
        .verify_now(&sign(Algorithm::HS256, &hmac, &claims("a"), Some("old")))
        .is_ok());
    assert_eq!(
        v.verify_now(&sign(Algorithm::RS256, &rsa, &claims("a"), Some("nope")))
            .unwrap_err(),
        TokenRejection::UnknownKey
    );
    // A kid naming the RSA key with an HMAC alg is refused, not tried as HMAC.
    assert!(v
        .verify_now(&sign(Algorithm::HS256, &hmac, &claims("a"), Some("new")))
        .is_err());
}

#[test]
fn weak_secrets_and_empty_configs_are_build_errors() {
    assert!(matches!(
        JwtVerifier::hs256(b"short").build(),
        Err(JwtConfigError::WeakSecret(5))
    ));
    assert!(JwtVerifier::hs256(b"short")
        .allow_weak_secrets()
        .build()
        .is_ok());
    assert!(matches!(
        JwtVerifier::builder().build(),
        Err(JwtConfigError::NoKeys)
    ));
    assert!(matches!(
        JwtKey::rsa_pem(b"not a pem"),
        Err(JwtConfigError::InvalidKey { .. })
    ));
    assert!(matches!(
        JwtVerifier::builder()
            .key(JwtKey::hmac(SECRET).algorithms([]))
            .build(),
        Err(JwtConfigError::NoAlgorithms(_))
    ));
}

/// RFC 8707 / MCP: the audience is the canonical resource URI. A token whose `aud` differs
/// only by an uppercase scheme or host, a default port or a trailing slash is for this
/// resource; any other `aud` is 401 `invalid_token`. Through a real Router.
#[tokio::test]
async fn audience_compares_in_canonical_form() {
    use tower_mcp_auth::{EndpointPolicy, McpAuth};
    let base = common::serve(|base| {
        let verifier = JwtVerifier::hs256(SECRET)
            .audiences([format!("{base}/mcp"), "https://other.example/mcp/".into()])
            .build()
            .unwrap();
        let auth = McpAuth::builder()
            .bearer(verifier)
            .public_base_url(base)
            .endpoint("/mcp", EndpointPolicy::oauth_only())
            .build()
            .unwrap();
        common::routes().layer(auth)
    })
    .await;
    let upper = base.replacen("http://127.0.0.1", "HTTP://127.0.0.1", 1);
    let call = |aud: Value| {
        let mut c = claims("alice");
        c["aud"] = aud;
        common::client()
            .post(format!("{base}/mcp"))
            .bearer_auth(hs(&c))
            .send()
    };
    for good in [
        json!(format!("{base}/mcp")),
        json!(format!("{base}/mcp/")),
        json!(format!("{upper}/mcp/")),
        json!(["x", format!("{upper}/mcp")]),
        json!("HTTPS://OTHER.example:443/mcp"),
        json!("https://other.example/mcp/"),
    ] {
        let res = call(good.clone()).await.unwrap();
        assert_eq!(res.status(), 200, "{good}");
        let me: Value = res.json().await.unwrap();
        assert_eq!(me["user_id"], "alice");
    }
    for bad in [
        json!(format!("{base}/MCP")),
        json!(format!("{base}/mcp2")),
        json!(format!("{base}")),
        json!("https://other.example/mcp/x"),
        json!(["x", "y"]),
    ] {
        let res = call(bad.clone()).await.unwrap();
        let challenge = common::challenge(&res).unwrap();
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{bad}: {challenge}"
        );
        let body = common::assert_error(res, 401, "invalid_token").await;
        assert_eq!(
            body["error_description"], "The access token audience is not accepted",
            "{bad}"
        );
    }
    // Other checks still come first on the slow path: an expired token with a
    // non-exact audience is expired, not accepted.
    let mut c = claims("alice");
    c["aud"] = json!(format!("{upper}/mcp/"));
    c["exp"] = json!(now() - 3600);
    let res = common::client()
        .post(format!("{base}/mcp"))
        .bearer_auth(hs(&c))
        .send()
        .await
        .unwrap();
    common::assert_error(res, 401, "invalid_token").await;
}
