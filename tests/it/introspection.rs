//! IntrospectionVerifier (RFC 7662) against a local authorization server: client
//! authentication, active / inactive answers, audience, outages, and the cache.
#![cfg(feature = "introspection")]

use crate::common;
use crate::idp;

use std::time::{Duration, Instant};

use axum::routing::post;
use axum::Router;
use idp::{closed_port_url, now, Idp, AUDIENCE};
use serde_json::{json, Value};
use tower_mcp_auth::{
    bearer::{ClientAuth, IntrospectionVerifier, IntrospectionVerifierBuilder, TokenError},
    EndpointPolicy, Identity, McpAuth, TokenRejection, TokenVerifier,
};

const TOKEN: &str = "opaque-token-0123456789";

fn builder(idp: &Idp) -> IntrospectionVerifierBuilder {
    IntrospectionVerifier::builder(
        idp.introspection_url(),
        idp.client_id(),
        idp.client_secret(),
    )
    .timeout(Duration::from_millis(500))
}

fn active(sub: &str) -> Value {
    json!({"active": true, "sub": sub, "client_id": "inspector", "scope": "tools/call tools/list",
           "exp": now() + 3600, "aud": AUDIENCE, "iss": "https://as.example", "token_type": "Bearer"})
}

async fn verify(v: &IntrospectionVerifier, token: &str) -> Result<Identity, TokenError> {
    v.verify(token).await
}

async fn rejected(v: &IntrospectionVerifier, token: &str) -> TokenRejection {
    match verify(v, token).await {
        Err(TokenError::Rejected(reason)) => reason,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn active_token_with_client_secret_basic() {
    let idp = Idp::start(&[]).await;
    idp.set_introspection(TOKEN, active("alice"));
    let v = builder(&idp).build().unwrap();

    let id = verify(&v, TOKEN).await.unwrap();
    assert_eq!(id.user_id(), Some("alice"));
    assert_eq!(id.scopes(), ["tools/call", "tools/list"]);
    assert_eq!(id.issuer(), Some("https://as.example"));
    assert!(id.expires_at().is_some());
    assert_eq!(id.claims().unwrap()["client_id"], "inspector");

    let (form, authorization) = idp.last_introspection().unwrap();
    assert_eq!(form["token"], TOKEN);
    assert_eq!(form["token_type_hint"], "access_token");
    assert!(
        !form.contains_key("client_secret"),
        "basic auth keeps the secret out of the body"
    );
    assert!(authorization.unwrap().starts_with("Basic "));
}

#[tokio::test]
async fn client_secret_post() {
    let idp = Idp::start(&[]).await;
    idp.set_introspection(TOKEN, active("alice"));
    let v = builder(&idp)
        .client_auth(ClientAuth::SecretPost)
        .build()
        .unwrap();
    assert!(verify(&v, TOKEN).await.is_ok());
    let (form, authorization) = idp.last_introspection().unwrap();
    assert_eq!(form["client_id"], idp.client_id());
    assert_eq!(form["client_secret"], idp.client_secret());
    assert!(authorization.is_none());
}

#[tokio::test]
async fn inactive_and_unknown_tokens_are_rejected_and_not_cached() {
    let idp = Idp::start(&[]).await;
    idp.set_introspection("revoked", json!({"active": false}));
    let v = builder(&idp).build().unwrap();
    assert_eq!(rejected(&v, "revoked").await, TokenRejection::Inactive);
    assert_eq!(rejected(&v, "never-issued").await, TokenRejection::Inactive);
    assert_eq!(rejected(&v, "revoked").await, TokenRejection::Inactive);
    assert_eq!(idp.introspection_hits(), 3);
}

#[tokio::test]
async fn audience_and_issuer_are_checked_when_configured() {
    let idp = Idp::start(&[]).await;
    let mut other_aud = active("alice");
    other_aud["aud"] = json!("https://other.example/mcp");
    idp.set_introspection("other-aud", other_aud.clone());
    idp.set_introspection("ours", active("alice"));
    let v = builder(&idp)
        .audience(AUDIENCE)
        .issuer("https://as.example")
        .build()
        .unwrap();
    assert_eq!(
        rejected(&v, "other-aud").await,
        TokenRejection::WrongAudience
    );
    assert!(verify(&v, "ours").await.is_ok());

    let unchecked = builder(&idp).build().unwrap();
    assert!(verify(&unchecked, "other-aud").await.is_ok());
}

#[tokio::test]
async fn expired_or_not_yet_valid_answers_are_rejected() {
    let idp = Idp::start(&[]).await;
    let mut expired = active("a");
    expired["exp"] = json!(now() - 600);
    let mut early = active("a");
    early["nbf"] = json!(now() + 600);
    idp.set_introspection("expired", expired);
    idp.set_introspection("early", early);
    let v = builder(&idp).build().unwrap();
    assert_eq!(rejected(&v, "expired").await, TokenRejection::Expired);
    assert_eq!(rejected(&v, "early").await, TokenRejection::NotYetValid);
}

#[tokio::test]
async fn idp_down_wrong_credentials_or_slow_is_unavailable() {
    let idp = Idp::start(&[]).await;
    idp.set_introspection(TOKEN, active("alice"));

    idp.set_down(true);
    let v = builder(&idp).build().unwrap();
    let err = verify(&v, TOKEN).await.unwrap_err();
    assert!(
        matches!(&err, TokenError::Unavailable(m) if m.contains("503")),
        "{err:?}"
    );
    assert!(
        !format!("{err:?}").contains(TOKEN),
        "the token is never echoed"
    );
    idp.set_down(false);

    let wrong_secret =
        IntrospectionVerifier::builder(idp.introspection_url(), idp.client_id(), "nope")
            .build()
            .unwrap();
    assert!(matches!(
        verify(&wrong_secret, TOKEN).await,
        Err(TokenError::Unavailable(_))
    ));

    let unreachable = IntrospectionVerifier::builder(
        format!("{}/introspect", closed_port_url().await),
        "id",
        "secret",
    )
    .build()
    .unwrap();
    assert!(matches!(
        verify(&unreachable, TOKEN).await,
        Err(TokenError::Unavailable(_))
    ));

    idp.set_delay(Duration::from_secs(3));
    let slow = builder(&idp)
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let started = Instant::now();
    assert!(matches!(
        verify(&slow, TOKEN).await,
        Err(TokenError::Unavailable(_))
    ));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn answers_are_cached_but_never_past_exp() {
    let idp = Idp::start(&[]).await;
    let mut short = active("alice");
    short["exp"] = json!(now() + 2);
    idp.set_introspection(TOKEN, short);
    let v = builder(&idp).leeway(Duration::ZERO).build().unwrap();

    assert!(verify(&v, TOKEN).await.is_ok());
    let hit = v.verify(TOKEN).try_into_ready();
    assert!(hit.expect("a cached answer is ready").is_ok());
    assert_eq!(idp.introspection_hits(), 1);

    tokio::time::sleep(Duration::from_millis(2100)).await;
    // Past exp: not served from the cache; the server's (stale) answer is refused too.
    assert!(v.verify(TOKEN).try_into_ready().is_err());
    assert_eq!(rejected(&v, TOKEN).await, TokenRejection::Expired);
    // (The unpolled future above sent nothing.)
    assert_eq!(idp.introspection_hits(), 2);
}

#[tokio::test]
async fn cache_ttl_bounds_how_long_a_revoked_token_keeps_working() {
    let idp = Idp::start(&[]).await;
    idp.set_introspection(TOKEN, active("alice"));
    let v = builder(&idp)
        .cache_ttl(Duration::from_millis(500))
        .build()
        .unwrap();
    assert!(verify(&v, TOKEN).await.is_ok());
    idp.set_introspection(TOKEN, json!({"active": false}));
    assert!(verify(&v, TOKEN).await.is_ok(), "still cached");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(rejected(&v, TOKEN).await, TokenRejection::Inactive);

    // clear_cache() forgets at once; a zero TTL never caches.
    idp.set_introspection(TOKEN, active("alice"));
    assert!(verify(&v, TOKEN).await.is_ok());
    v.clear_cache();
    assert!(v.verify(TOKEN).try_into_ready().is_err());
    let uncached = builder(&idp).cache_ttl(Duration::ZERO).build().unwrap();
    assert!(verify(&uncached, TOKEN).await.is_ok());
    assert!(uncached.verify(TOKEN).try_into_ready().is_err());
}

/// An oauth-only MCP server on `/mcp` answering `whoami`, with `verifier`; its base URL.
async fn serve(verifier: IntrospectionVerifier) -> String {
    let auth = McpAuth::builder()
        .bearer(verifier)
        .default_policy(EndpointPolicy::oauth_only())
        .build()
        .unwrap();
    common::serve(move |_| {
        Router::new()
            .route("/mcp", post(common::whoami))
            .layer(auth)
    })
    .await
}

/// POSTs to the server's `/mcp` with `token`.
async fn call(client: &reqwest::Client, base: &str, token: &str) -> reqwest::Response {
    client
        .post(format!("{base}/mcp"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn end_to_end_opaque_tokens() {
    let idp = Idp::start(&[]).await;
    idp.set_introspection(TOKEN, active("alice"));
    let base = serve(builder(&idp).build().unwrap()).await;
    let client = common::client();

    let res = call(&client, &base, TOKEN).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["user_id"], "alice");

    let res = call(&client, &base, "revoked-token").await;
    let challenge = common::challenge(&res).unwrap();
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
    let body = common::assert_error(res, 401, "invalid_token").await;
    assert_eq!(
        body["error_description"],
        TokenRejection::Inactive.to_string()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_with_one_new_token_cost_one_introspection() {
    let idp = Idp::start(&[]).await;
    idp.set_introspection(TOKEN, active("alice"));
    // Slow enough that all requests arrive while the first introspection is under way.
    idp.set_delay(Duration::from_millis(300));
    let verifier = builder(&idp).timeout(Duration::from_secs(5)).build();
    let base = serve(verifier.unwrap()).await;
    let client = common::client();

    let requests: Vec<_> = (0..32)
        .map(|_| {
            let (client, base) = (client.clone(), base.clone());
            tokio::spawn(async move {
                let res = call(&client, &base, TOKEN).await;
                assert_eq!(res.status(), 200);
                res.json::<Value>().await.unwrap()["user_id"].clone()
            })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.unwrap(), "alice");
    }
    assert_eq!(
        idp.introspection_hits(),
        1,
        "one introspection for 32 concurrent requests"
    );

    // Later requests are served from the cache.
    assert_eq!(call(&client, &base, TOKEN).await.status(), 200);
    assert_eq!(idp.introspection_hits(), 1);
}
