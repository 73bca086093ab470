//! JwksVerifier against a local identity provider: discovery, algorithms, rotation, the
//! unknown-kid cooldown, outages, and every way a token can be wrong; then end to end
//! through `McpAuth` and a real axum router.
#![cfg(feature = "jwks")]

use crate::common;
use crate::idp;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::post;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use idp::{closed_port_url, now, Idp, Metadata, SigningKey, AUDIENCE, RSA_PUBLIC};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tower_mcp_auth::{
    bearer::{
        CachedVerifier, JwksConfigError, JwksError, JwksVerifier, JwksVerifierBuilder, TokenError,
    },
    EndpointPolicy, Identity, McpAuth, TokenRejection, TokenVerifier,
};

const COOLDOWN: Duration = Duration::from_millis(300);

fn builder(idp: &Idp) -> JwksVerifierBuilder {
    JwksVerifier::from_issuer(idp.issuer())
        .audience(AUDIENCE)
        .unknown_kid_cooldown(COOLDOWN)
        .fetch_timeout(Duration::from_millis(500))
}

async fn verify(v: &impl TokenVerifier, token: &str) -> Result<Identity, TokenError> {
    v.verify(token).await
}

async fn rejected(v: &impl TokenVerifier, token: &str) -> TokenRejection {
    match verify(v, token).await {
        Err(TokenError::Rejected(reason)) => reason,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

fn with(claims: &Value, key: &str, value: Value) -> Value {
    let mut c = claims.clone();
    c[key] = value;
    c
}

fn without(claims: &Value, key: &str) -> Value {
    let mut c = claims.clone();
    c.as_object_mut().unwrap().remove(key);
    c
}

#[tokio::test]
async fn discovery_then_rs256_and_es256() {
    let (rsa, ec) = (SigningKey::rsa(), SigningKey::ec());
    let idp = Idp::start(&[&rsa, &ec]).await;
    let v = builder(&idp).build().unwrap();

    let id = verify(&v, &rsa.sign(&idp.claims("alice"))).await.unwrap();
    assert_eq!(id.user_id(), Some("alice"));
    assert!(id.has_permission("tools/call"));
    assert_eq!(id.claims().unwrap()["client_id"], "inspector");
    let id = verify(&v, &ec.sign(&idp.claims("bob"))).await.unwrap();
    assert_eq!(id.user_id(), Some("bob"));
    assert_eq!((idp.metadata_hits(), idp.jwks_hits()), (1, 1));
}

#[tokio::test]
async fn known_kid_is_answered_without_awaiting() {
    let rsa = SigningKey::rsa();
    let idp = Idp::start(&[&rsa]).await;
    let v = builder(&idp).build().unwrap();
    assert_eq!(v.refresh().await.unwrap(), 1);
    let ready = v.verify(&rsa.sign(&idp.claims("alice"))).try_into_ready();
    assert!(ready.expect("a known kid is Deferred::ready").is_ok());
    // A kid-less token with the only key's algorithm is ready too.
    let no_kid = rsa.sign_with(&idp.claims("alice"), None, None);
    assert!(v.verify(&no_kid).try_into_ready().unwrap().is_ok());
}

#[tokio::test]
async fn eddsa_and_rfc9068_typ_at_jwt_are_accepted() {
    let ed = SigningKey::ed();
    let idp = Idp::start(&[&ed]).await;
    let v = builder(&idp).build().unwrap();
    // RFC 9068: typ at+jwt, no nbf, no scope (= no scopes), client_id.
    let claims = without(&idp.claims("u1"), "scope");
    let token = ed.sign_with(&claims, Some("ed-1"), Some("at+jwt"));
    let id = verify(&v, &token).await.unwrap();
    assert!(id.scopes().is_empty() && id.permissions().is_empty());
    assert_eq!(id.name(), "u1");
}

#[tokio::test]
async fn required_token_type_is_checked_before_any_key_lookup() {
    let ed = SigningKey::ed();
    let idp = Idp::start(&[&ed]).await;
    let v = builder(&idp).token_type("at+jwt").build().unwrap();
    let claims = idp.claims("u1");
    let at = ed.sign_with(&claims, Some("ed-1"), Some("application/at+jwt"));
    assert_eq!(verify(&v, &at).await.unwrap().name(), "u1");
    for typ in [Some("JWT"), None] {
        let other = ed.sign_with(&claims, Some("ed-1"), typ);
        assert_eq!(
            rejected(&v, &other).await,
            TokenRejection::WrongType,
            "{typ:?}"
        );
    }
    // A wrong type with an unknown kid is refused at once, without asking the IdP.
    let hits = idp.jwks_hits();
    let unknown = ed.sign_with(&claims, Some("never-seen"), Some("JWT"));
    let answer = v
        .verify(&unknown)
        .try_into_ready()
        .expect("refused without a fetch");
    assert!(answer.is_err());
    assert_eq!(idp.jwks_hits(), hits);
}

#[tokio::test]
async fn openid_configuration_fallbacks_and_issuer_paths() {
    let rsa = SigningKey::rsa();
    for (path, metadata) in [
        ("", Metadata::OpenIdInserted),
        ("/realms/mcp", Metadata::OAuth),
        ("/realms/mcp", Metadata::OpenIdInserted),
        ("/realms/mcp", Metadata::OpenIdAppended),
    ] {
        let idp = Idp::start_with(path, metadata, &[&rsa]).await;
        let v = builder(&idp).build().unwrap();
        let result = verify(&v, &rsa.sign(&idp.claims("alice"))).await;
        assert!(result.is_ok(), "{path} {metadata:?}: {result:?}");
    }
}

#[tokio::test]
async fn jwks_url_source_checks_iss_only_when_configured() {
    let rsa = SigningKey::rsa();
    let idp = Idp::start(&[&rsa]).await;
    let other_iss = with(&idp.claims("a"), "iss", json!("https://elsewhere"));

    let any_issuer = JwksVerifier::from_jwks_url(idp.jwks_url())
        .audience(AUDIENCE)
        .build()
        .unwrap();
    assert!(verify(&any_issuer, &rsa.sign(&other_iss)).await.is_ok());
    assert_eq!(idp.metadata_hits(), 0, "no discovery for a JWKS URL");

    let pinned = JwksVerifier::from_jwks_url(idp.jwks_url())
        .audience(AUDIENCE)
        .issuer(idp.issuer())
        .build()
        .unwrap();
    assert_eq!(
        rejected(&pinned, &rsa.sign(&other_iss)).await,
        TokenRejection::WrongIssuer
    );
}

#[tokio::test]
async fn a_redirected_jwks_url_is_followed() {
    let rsa = SigningKey::rsa();
    let idp = Idp::start(&[&rsa]).await;
    let v = JwksVerifier::from_jwks_url(format!("{}/moved/jwks", idp.base))
        .audience(AUDIENCE)
        .build()
        .unwrap();
    assert_eq!(v.refresh().await, Ok(1));
    assert!(verify(&v, &rsa.sign(&idp.claims("a"))).await.is_ok());
}

#[tokio::test]
async fn claim_checks() {
    let rsa = SigningKey::rsa();
    let idp = Idp::start(&[&rsa]).await;
    let v = builder(&idp).build().unwrap();
    let good = idp.claims("alice");
    assert!(verify(&v, &rsa.sign(&good)).await.is_ok());

    let cases = [
        (
            with(&good, "aud", json!("https://other.example/mcp")),
            TokenRejection::WrongAudience,
        ),
        (
            with(&good, "aud", json!(["a", "b"])),
            TokenRejection::WrongAudience,
        ),
        (
            with(&good, "iss", json!("https://evil.example")),
            TokenRejection::WrongIssuer,
        ),
        (
            with(&good, "exp", json!(now() - 120)),
            TokenRejection::Expired,
        ),
        (
            with(&good, "nbf", json!(now() + 600)),
            TokenRejection::NotYetValid,
        ),
        (without(&good, "exp"), TokenRejection::MissingClaim),
        (without(&good, "aud"), TokenRejection::MissingClaim),
        (without(&good, "iss"), TokenRejection::MissingClaim),
    ];
    for (claims, want) in cases {
        assert_eq!(rejected(&v, &rsa.sign(&claims)).await, want, "{claims}");
    }
    // Inside the 60 s leeway; aud as an array naming us.
    assert!(
        verify(&v, &rsa.sign(&with(&good, "exp", json!(now() - 30))))
            .await
            .is_ok()
    );
    assert!(
        verify(&v, &rsa.sign(&with(&good, "nbf", json!(now() + 30))))
            .await
            .is_ok()
    );
    assert!(
        verify(&v, &rsa.sign(&with(&good, "aud", json!(["x", AUDIENCE]))))
            .await
            .is_ok()
    );
    // Signed by a key that is not published under that kid.
    let impostor = SigningKey::new("rsa-1", Algorithm::RS256, idp::RSA2_PRIVATE);
    assert_eq!(
        rejected(&v, &impostor.sign(&good)).await,
        TokenRejection::BadSignature
    );
}

#[tokio::test]
async fn alg_none_and_hmac_forged_with_the_public_key_are_rejected_without_a_fetch() {
    let rsa = SigningKey::rsa();
    let idp = Idp::start(&[&rsa]).await;
    let v = builder(&idp).build().unwrap();
    v.refresh().await.unwrap();
    let claims = idp.claims("root");

    for header in [
        json!({"alg": "none", "typ": "JWT", "kid": "rsa-1"}),
        json!({"alg": "none"}),
        json!({"alg": "None", "kid": "rsa-1"}),
    ] {
        let h = URL_SAFE_NO_PAD.encode(header.to_string());
        let p = URL_SAFE_NO_PAD.encode(claims.to_string());
        for token in [format!("{h}.{p}."), format!("{h}.{p}")] {
            assert!(verify(&v, &token).await.is_err(), "{header}");
        }
    }
    for kid in [Some("rsa-1"), None, Some("made-up")] {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = kid.map(str::to_owned);
        let forged = encode(&header, &claims, &EncodingKey::from_secret(RSA_PUBLIC)).unwrap();
        assert_eq!(
            rejected(&v, &forged).await,
            TokenRejection::AlgorithmNotAllowed,
            "{kid:?}"
        );
    }
    // An RS256-only key named with ES256.
    let ec = SigningKey::ec();
    let wrong_alg = ec.sign_with(&claims, Some("rsa-1"), None);
    assert_eq!(
        rejected(&v, &wrong_alg).await,
        TokenRejection::AlgorithmNotAllowed
    );
    assert_eq!(idp.jwks_hits(), 1, "none of these may trigger a refresh");
}

#[tokio::test]
async fn garbage_tokens_are_rejected() {
    let rsa = SigningKey::rsa();
    let idp = Idp::start(&[&rsa]).await;
    let v = builder(&idp).build().unwrap();
    for junk in [
        "",
        "a",
        "a.b",
        "a.b.c",
        "....",
        "eyJ.eyJ.sig",
        "\u{0}",
        "ä.ö.ü",
    ] {
        assert!(verify(&v, junk).await.is_err(), "{junk:?}");
    }
    let big = format!("{}.x.y", "A".repeat(100_000));
    assert!(verify(&v, &big).await.is_err());
}

#[tokio::test]
async fn key_rotation_is_picked_up_by_the_first_token_with_the_new_kid() {
    let (old, new) = (SigningKey::rsa(), SigningKey::rsa2());
    let idp = Idp::start(&[&old]).await;
    let v = builder(&idp).build().unwrap();
    assert!(verify(&v, &old.sign(&idp.claims("a"))).await.is_ok());
    assert_eq!(idp.jwks_hits(), 1);

    idp.set_keys(&[&old, &new]);
    tokio::time::sleep(COOLDOWN).await;
    let started = Instant::now();
    assert!(verify(&v, &new.sign(&idp.claims("a"))).await.is_ok());
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(idp.jwks_hits(), 2);
    // Now known: ready, no further fetch.
    assert!(v
        .verify(&new.sign(&idp.claims("a")))
        .try_into_ready()
        .is_ok());
    assert_eq!(idp.jwks_hits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_for_a_new_kid_share_one_fetch() {
    let (old, new) = (SigningKey::rsa(), SigningKey::rsa2());
    let idp = Idp::start(&[&old]).await;
    let v = builder(&idp).build().unwrap();
    v.refresh().await.unwrap();
    idp.set_keys(&[&old, &new]);
    // A slow IdP makes the requests overlap the fetch; slower than the cooldown, so wake-ups
    // that arrive during the fetch must not start a second one when it ends.
    idp.set_delay(COOLDOWN + Duration::from_millis(100));
    tokio::time::sleep(COOLDOWN).await;
    let before = idp.jwks_hits();

    let token = new.sign(&idp.claims("a"));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (v, token) = (v.clone(), token.clone());
            tokio::spawn(async move { v.verify(&token).await })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap().is_ok());
    }
    assert_eq!(idp.jwks_hits() - before, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bogus_kids_causes_at_most_one_fetch_per_cooldown() {
    let rsa = SigningKey::rsa();
    let idp = Idp::start(&[&rsa]).await;
    let v = builder(&idp)
        .unknown_kid_cooldown(Duration::from_secs(1))
        .build()
        .unwrap();
    v.refresh().await.unwrap();
    let bogus = rsa.sign_with(&idp.claims("x"), Some("bogus"), None);
    let known = rsa.sign(&idp.claims("a"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = idp.jwks_hits();

    // A token naming an unknown kid is refused before its signature is looked at, so the
    // flood needs no real signatures (signing 600 tokens is slow in debug builds).
    let payload = URL_SAFE_NO_PAD.encode(idp.claims("x").to_string());
    let tokens: Vec<Vec<String>> = (0..3)
        .map(|round| {
            (0..200)
                .map(|i| {
                    let header = json!({"alg": "RS256", "kid": format!("bogus-{round}-{i}")});
                    format!(
                        "{}.{payload}.c2ln",
                        URL_SAFE_NO_PAD.encode(header.to_string())
                    )
                })
                .collect()
        })
        .collect();
    let flood = |round: usize| {
        tokens[round]
            .iter()
            .map(|token| {
                let (v, token) = (v.clone(), token.clone());
                tokio::spawn(async move { v.verify(&token).await })
            })
            .collect::<Vec<_>>()
    };
    for task in flood(0) {
        assert_eq!(
            task.await.unwrap().unwrap_err(),
            TokenError::Rejected(TokenRejection::UnknownKey)
        );
    }
    assert_eq!(idp.jwks_hits() - before, 1, "first flood: one fetch");
    // Within the cooldown: answered at once, no fetch.
    assert!(v.verify(&bogus).try_into_ready().is_ok());
    for task in flood(1) {
        assert!(task.await.unwrap().is_err());
    }
    assert_eq!(
        idp.jwks_hits() - before,
        1,
        "second flood inside the cooldown: none"
    );
    // Known kids keep working meanwhile.
    assert!(verify(&v, &known).await.is_ok());

    tokio::time::sleep(Duration::from_secs(1)).await;
    for task in flood(2) {
        assert!(task.await.unwrap().is_err());
    }
    assert_eq!(idp.jwks_hits() - before, 2, "after the cooldown: one more");
}

#[tokio::test]
async fn idp_down_keeps_serving_the_last_good_keys() {
    let rsa = SigningKey::rsa();
    let idp = Idp::start(&[&rsa]).await;
    let v = builder(&idp).build().unwrap();
    v.refresh().await.unwrap();

    idp.set_down(true);
    assert!(matches!(v.refresh().await, Err(JwksError::Fetch { .. })));
    assert!(verify(&v, &rsa.sign(&idp.claims("a"))).await.is_ok());
    tokio::time::sleep(COOLDOWN).await;
    // An unknown kid tries a refresh, which fails: still a 401, not a 503.
    let unknown = rsa.sign_with(&idp.claims("a"), Some("new-kid"), None);
    assert_eq!(rejected(&v, &unknown).await, TokenRejection::UnknownKey);
    assert!(verify(&v, &rsa.sign(&idp.claims("a"))).await.is_ok());

    // Back up: the next refresh picks the new key up.
    idp.set_down(false);
    tokio::time::sleep(COOLDOWN).await;
    let renamed = SigningKey::new("new-kid", Algorithm::RS256, idp::RSA_PRIVATE);
    idp.set_keys(&[&rsa, &renamed]);
    assert!(verify(&v, &unknown).await.is_ok());
}

#[tokio::test]
async fn no_keys_ever_and_idp_down_is_unavailable() {
    let rsa = SigningKey::rsa();
    let token = rsa.sign(&json!({"sub": "a", "aud": AUDIENCE, "exp": now() + 60}));

    let unreachable = JwksVerifier::from_jwks_url(format!("{}/jwks", closed_port_url().await))
        .audience(AUDIENCE)
        .unknown_kid_cooldown(COOLDOWN)
        .build()
        .unwrap();
    let err = verify(&unreachable, &token).await.unwrap_err();
    assert!(
        matches!(&err, TokenError::Unavailable(m) if m.contains("/jwks")),
        "{err:?}"
    );
    // Inside the cooldown the answer is immediate.
    let again = unreachable.verify(&token).try_into_ready();
    assert!(matches!(again, Ok(Err(TokenError::Unavailable(_)))));

    let idp = Idp::start(&[&rsa]).await;
    idp.set_down(true);
    let down = builder(&idp).build().unwrap();
    assert!(matches!(
        verify(&down, &token).await,
        Err(TokenError::Unavailable(_))
    ));
    idp.set_down(false);
    tokio::time::sleep(COOLDOWN).await;
    let token = rsa.sign(&idp.claims("a"));
    assert!(
        verify(&down, &token).await.is_ok(),
        "recovers once the IdP is back"
    );
}

#[tokio::test]
async fn slow_idp_times_out() {
    let rsa = SigningKey::rsa();
    let idp = Idp::start(&[&rsa]).await;
    idp.set_delay(Duration::from_secs(3));
    let v = builder(&idp)
        .fetch_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let started = Instant::now();
    let result = verify(&v, &rsa.sign(&idp.claims("a"))).await;
    assert!(
        matches!(result, Err(TokenError::Unavailable(_))),
        "{result:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(
        v.refresh().await,
        Err(JwksError::Fetch { .. } | JwksError::Timeout)
    ));
}

#[tokio::test]
async fn discovery_for_another_issuer_and_unusable_sets_are_refused() {
    let rsa = SigningKey::rsa();
    let idp = Idp::start(&[&rsa]).await;
    idp.announce_issuer("https://evil.example");
    let v = builder(&idp).build().unwrap();
    assert!(matches!(
        v.refresh().await,
        Err(JwksError::IssuerMismatch { .. })
    ));

    let idp = Idp::start(&[]).await;
    idp.set_jwks(
        json!({"keys": [{"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0", "kid": "h"}]}),
    );
    let v = builder(&idp).build().unwrap();
    assert_eq!(v.refresh().await, Err(JwksError::NoUsableKeys));
    idp.set_jwks(json!("not a JWK set"));
    assert!(matches!(v.refresh().await, Err(JwksError::Fetch { .. })));
}

#[tokio::test]
async fn background_refresh_runs_and_stops_with_the_verifier() {
    let rsa = SigningKey::rsa();
    let idp = Idp::start(&[&rsa]).await;
    let v = builder(&idp)
        .refresh_interval(Duration::from_secs(1))
        .build()
        .unwrap();
    // The task fetches at start, then every second, with no request at all.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let hits = idp.jwks_hits();
    assert!((2..=4).contains(&hits), "{hits}");
    drop(v);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after_drop = idp.jwks_hits();
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(idp.jwks_hits(), after_drop, "the task stopped");
}

#[test]
fn build_errors() {
    assert!(matches!(
        JwksVerifier::from_issuer("https://as.example").build(),
        Err(JwksConfigError::MissingAudience)
    ));
    assert!(matches!(
        JwksVerifier::from_issuer("not a url")
            .audience(AUDIENCE)
            .build(),
        Err(JwksConfigError::InvalidUrl(_))
    ));
    assert!(matches!(
        JwksVerifier::from_jwks_url("http://as.example/jwks")
            .audience(AUDIENCE)
            .build(),
        Err(JwksConfigError::InsecureUrl(_))
    ));
    assert!(JwksVerifier::from_jwks_url("http://as.example/jwks")
        .audience(AUDIENCE)
        .allow_http(true)
        .build()
        .is_ok());
    assert!(matches!(
        JwksVerifier::from_issuer("https://as.example")
            .audience(AUDIENCE)
            .algorithms([Algorithm::HS256])
            .build(),
        Err(JwksConfigError::NoAlgorithms)
    ));
}

#[test]
fn without_a_runtime_it_answers_unavailable_instead_of_panicking() {
    let v = JwksVerifier::from_jwks_url("https://as.example/jwks")
        .audience(AUDIENCE)
        .build()
        .unwrap();
    let token = SigningKey::rsa().sign(&json!({"sub": "a", "aud": AUDIENCE, "exp": now() + 60}));
    assert!(matches!(
        v.verify(&token).try_into_ready(),
        Ok(Err(TokenError::Unavailable(_)))
    ));
}

/// The stack a user writes: McpAuth with a (cached) JWKS verifier in an axum router.
async fn serve_app(verifier: impl TokenVerifier) -> String {
    let auth = McpAuth::builder()
        .bearer(verifier)
        .default_policy(EndpointPolicy::oauth_only())
        .public_base_url("http://mcp.test")
        .build()
        .unwrap();
    common::serve(move |_| {
        Router::new()
            .route("/mcp", post(common::whoami))
            .layer(auth)
    })
    .await
}

#[tokio::test]
async fn end_to_end_invalid_token_contract() {
    let rsa = SigningKey::rsa();
    let idp = Idp::start(&[&rsa]).await;
    let verifier = CachedVerifier::new(builder(&idp).build().unwrap());
    let base = serve_app(verifier).await;
    let client = common::client();
    let post = |token: Option<String>| {
        let mut req = client.post(format!("{base}/mcp"));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send()
    };

    let good = rsa.sign(&idp.claims("alice"));
    for _ in 0..2 {
        let res = post(Some(good.clone())).await.unwrap();
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["user_id"], "alice");
        assert_eq!(body["method"], "bearer");
    }

    let wrong_aud = rsa.sign(&with(
        &idp.claims("alice"),
        "aud",
        json!("https://other/mcp"),
    ));
    for token in [wrong_aud.clone(), "garbage".to_owned()] {
        let res = post(Some(token.clone())).await.unwrap();
        let challenge = common::challenge(&res).expect("Bearer challenge");
        assert!(challenge.starts_with("Bearer "), "{challenge}");
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{challenge}"
        );
        assert!(
            challenge.contains(
                "resource_metadata=\"http://mcp.test/.well-known/oauth-protected-resource"
            ),
            "{challenge}"
        );
        let body = common::assert_error(res, 401, "invalid_token").await;
        assert!(
            !body.to_string().contains(&token),
            "the token is never echoed"
        );
    }
    let body =
        common::assert_error(post(Some(wrong_aud)).await.unwrap(), 401, "invalid_token").await;
    assert_eq!(
        body["error_description"],
        TokenRejection::WrongAudience.to_string()
    );

    let res = post(None).await.unwrap();
    assert!(common::challenge(&res).is_some_and(|c| !c.contains("error=")));
    common::assert_error(res, 401, "authentication_required").await;
}

#[tokio::test]
async fn end_to_end_idp_never_reached_is_503() {
    let verifier = Arc::new(
        JwksVerifier::from_jwks_url(format!("{}/jwks", closed_port_url().await))
            .audience(AUDIENCE)
            .build()
            .unwrap(),
    );
    let base = serve_app(verifier).await;
    let token = SigningKey::rsa().sign(&json!({"sub": "a", "aud": AUDIENCE, "exp": now() + 60}));
    let res = common::client()
        .post(format!("{base}/mcp"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert!(common::challenge(&res).is_none());
    common::assert_error(res, 503, "temporarily_unavailable").await;
}

/// Two local IdPs at once, each with its own keys and audience, behind one
/// `MultiIssuerVerifier` in a real Router. A token naming an issuer not on the list is 401
/// `invalid_token` before any network call.
#[tokio::test]
async fn multi_issuer_dispatches_on_iss_to_each_issuers_keys_and_audience() {
    use tower_mcp_auth::bearer::MultiIssuerVerifier;
    const TENANT_AUD: &str = "https://mcp.example.com/tenant/mcp";
    let (rsa, ec) = (SigningKey::rsa(), SigningKey::ec());
    let (ours, company) = (Idp::start(&[&rsa]).await, Idp::start(&[&ec]).await);
    let verifier = MultiIssuerVerifier::builder()
        .issuer(ours.issuer(), builder(&ours).build().unwrap())
        .issuer(
            company.issuer(),
            JwksVerifier::from_issuer(company.issuer())
                .audience(TENANT_AUD)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let base = common::serve(move |base| {
        let auth = McpAuth::builder()
            .bearer(verifier)
            .public_base_url(base)
            .endpoint("/mcp", EndpointPolicy::oauth_only())
            .build()
            .unwrap();
        common::routes().layer(auth)
    })
    .await;
    let call = |token: String| {
        common::client()
            .post(format!("{base}/mcp"))
            .bearer_auth(token)
            .send()
    };

    let res = call(rsa.sign(&ours.claims("alice"))).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["user_id"], "alice");
    let bob = with(&company.claims("bob"), "aud", json!(TENANT_AUD));
    let res = call(ec.sign(&bob)).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["user_id"], "bob");

    // Each issuer's own audience and keys: ours with the tenant's audience, or a token
    // claiming our issuer but signed with the company's key, is refused.
    let res = call(rsa.sign(&with(&ours.claims("alice"), "aud", json!(TENANT_AUD))))
        .await
        .unwrap();
    let body = common::assert_error(res, 401, "invalid_token").await;
    assert_eq!(
        body["error_description"],
        "The access token audience is not accepted"
    );
    let res = call(ec.sign(&ours.claims("mallory"))).await.unwrap();
    common::assert_error(res, 401, "invalid_token").await;

    // An issuer not on the list: refused, and no IdP was asked anything.
    let hits = (
        ours.metadata_hits() + ours.jwks_hits(),
        company.metadata_hits() + company.jwks_hits(),
    );
    for iss in [
        json!("https://evil.example"),
        json!(format!("{}/", ours.issuer())),
    ] {
        let res = call(rsa.sign(&with(&ours.claims("mallory"), "iss", iss)))
            .await
            .unwrap();
        let challenge = common::challenge(&res).unwrap();
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{challenge}"
        );
        let body = common::assert_error(res, 401, "invalid_token").await;
        assert_eq!(
            body["error_description"],
            "The access token issuer is not accepted"
        );
    }
    let res = call(rsa.sign(&without(&ours.claims("mallory"), "iss")))
        .await
        .unwrap();
    common::assert_error(res, 401, "invalid_token").await;
    let res = call("not-a-jwt".into()).await.unwrap();
    common::assert_error(res, 401, "invalid_token").await;
    assert_eq!(
        (
            ours.metadata_hits() + ours.jwks_hits(),
            company.metadata_hits() + company.jwks_hits()
        ),
        hits
    );
}
