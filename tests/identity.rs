//! Identities through real routers: token expiry and the caches (a float `exp` is an expiry),
//! users namespaced by issuer (ownership and quotas), and token scopes that are not
//! wildcards.

mod common;
#[cfg(feature = "introspection")]
mod idp;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tower_mcp_auth::store::{MemoryStore, Quota, StateStore};
use tower_mcp_auth::{
    CachedVerifier, EndpointPolicy, JwtVerifier, McpAuth, RateLimitKey, RateLimitLayer,
};

const ISSUER_A: &str = "https://idp-a.example";
const ISSUER_B: &str = "https://idp-b.example";

async fn post(base: &str, path: &str, token: &str) -> reqwest::Response {
    client()
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap()
}

/// A float `exp` (`1.7e9`-style, as some issuers write it) was read as no expiry, so the
/// verified-token cache served the token for its whole `max_ttl` after it expired.
#[tokio::test]
async fn float_exp_token_is_not_served_from_the_cache_after_expiry() {
    let verifier = CachedVerifier::new(
        JwtVerifier::hs256(SECRET)
            .leeway(Duration::ZERO)
            .build()
            .unwrap(),
    );
    let base = serve(|base| {
        routes().layer(
            McpAuth::builder()
                .public_base_url(base)
                .bearer(verifier)
                .endpoint("/oauth", EndpointPolicy::oauth_only())
                .build()
                .unwrap(),
        )
    })
    .await;
    let exp = (now() + 3) as f64 + 0.25;
    let token = hs256(&json!({"sub": "alice", "exp": exp}));
    let res = post(&base, "/oauth", &token).await;
    assert_eq!(res.status(), 200);

    // Past the token's end (jsonwebtoken rounds `exp`, so wait past the rounded-up second).
    while (now() as f64) <= exp.ceil() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let res = post(&base, "/oauth", &token).await;
    let challenge = challenge(&res).expect("a Bearer challenge");
    assert!(challenge.contains(r#"error="invalid_token""#), "{challenge}");
    let body = assert_error(res, 401, "invalid_token").await;
    assert!(!body.to_string().contains(&token), "the token is never echoed");
}

/// The same, with an introspection answer whose `exp` is a float: its cache kept the answer
/// for `cache_ttl` past the token's end. Answers without `exp` are not cached at all.
#[cfg(feature = "introspection")]
#[tokio::test]
async fn introspection_cache_honours_float_exp_and_skips_unknown_expiry() {
    use tower_mcp_auth::IntrospectionVerifier;

    let idp = idp::Idp::start(&[]).await;
    let exp = (now() + 3) as f64 + 0.25;
    idp.set_introspection(
        "float-exp",
        json!({"active": true, "sub": "alice", "exp": exp}),
    );
    idp.set_introspection("no-exp", json!({"active": true, "sub": "bob"}));
    let verifier =
        IntrospectionVerifier::builder(idp.introspection_url(), idp.client_id(), idp.client_secret())
            .leeway(Duration::ZERO)
            .build()
            .unwrap();
    let base = serve(|base| {
        routes().layer(
            McpAuth::builder()
                .public_base_url(base)
                .bearer(verifier)
                .endpoint("/oauth", EndpointPolicy::oauth_only())
                .build()
                .unwrap(),
        )
    })
    .await;

    let first = post(&base, "/oauth", "float-exp").await;
    assert_eq!(first.status(), 200, "{:?}", first.text().await);
    while (now() as f64) <= exp.ceil() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let res = post(&base, "/oauth", "float-exp").await;
    assert_error(res, 401, "invalid_token").await;

    let before = idp.introspection_hits();
    for _ in 0..2 {
        let res = post(&base, "/oauth", "no-exp").await;
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["user_id"], "bob");
    }
    assert_eq!(
        idp.introspection_hits() - before,
        2,
        "an answer of unknown expiry is asked again"
    );
}

fn token_from(iss: &str, sub: &str, scope: &str) -> String {
    hs256(&json!({"iss": iss, "sub": sub, "exp": now() + 600, "scope": scope}))
}

fn two_issuers() -> JwtVerifier {
    JwtVerifier::hs256(SECRET)
        .issuer(ISSUER_A)
        .issuer(ISSUER_B)
        .build()
        .unwrap()
}

/// `sub=42` of two identity providers was one user for per-user quotas.
#[tokio::test]
async fn same_sub_of_two_issuers_has_two_quotas() {
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    let base = serve(|base| {
        routes().layer(
            McpAuth::builder()
                .public_base_url(base)
                .api_keys(registry())
                .bearer(two_issuers())
                .endpoint("/both", EndpointPolicy::both())
                .rate_limit(
                    RateLimitLayer::from_shared(store, Quota::per_minute(1).unwrap())
                        .key(RateLimitKey::User),
                )
                .build()
                .unwrap(),
        )
    })
    .await;
    let a = token_from(ISSUER_A, "42", "");
    let b = token_from(ISSUER_B, "42", "");
    assert_eq!(post(&base, "/both", &a).await.status(), 200);
    assert_eq!(post(&base, "/both", &b).await.status(), 200, "another user");
    // Each one's own bucket is spent.
    let res = post(&base, "/both", &a).await;
    assert!(res.headers().get("retry-after").is_some());
    assert_error(res, 429, "too_many_requests").await;

    // An API key's `userId` "alice" and a token `sub` "alice" of an issuer are not one user.
    let res = client()
        .post(format!("{base}/both"))
        .header("x-api-key", ALICE_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let alice_token = token_from(ISSUER_A, "alice", "");
    assert_eq!(post(&base, "/both", &alice_token).await.status(), 200);
}

/// `private_to("alice")` (a local user, the one of `MCP_API_KEYS`) let in any token whose
/// `sub` was `alice`, from any identity provider.
#[tokio::test]
async fn private_endpoint_refuses_a_token_subject_with_the_owners_id() {
    let base = serve(|base| {
        routes().layer(
            McpAuth::builder()
                .public_base_url(base)
                .api_keys(registry())
                .bearer(two_issuers())
                .endpoint("/users/alice/mcp", EndpointPolicy::both().private_to("alice"))
                .build()
                .unwrap(),
        )
    })
    .await;
    let res = post(&base, "/users/alice/mcp", &token_from(ISSUER_A, "alice", "")).await;
    assert!(
        res.headers().get("www-authenticate").is_none(),
        "403 access_denied carries no challenge"
    );
    let body = assert_error(res, 403, "access_denied").await;
    assert_eq!(
        body["error_description"],
        "Access denied: this endpoint belongs to another user"
    );
    // The local user still gets in with her key.
    let res = client()
        .post(format!("{base}/users/alice/mcp"))
        .header("x-api-key", ALICE_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

/// An authorization server issuing the scope `*` (or `tools*`) granted everything: token
/// scopes got the wildcard meaning of operator-written permissions.
#[tokio::test]
async fn wildcard_token_scopes_grant_nothing_special() {
    let base = serve(|base| {
        routes().layer(
            McpAuth::builder()
                .public_base_url(base)
                .api_keys(registry())
                .bearer(two_issuers())
                .endpoint("/scoped", EndpointPolicy::both().require(["admin", "tools/call"]))
                .build()
                .unwrap(),
        )
    })
    .await;
    for scope in ["*", "ad*", "* tools/call"] {
        let res = post(&base, "/scoped", &token_from(ISSUER_A, "mallory", scope)).await;
        let challenge = challenge(&res).expect("insufficient_scope challenge");
        assert!(
            challenge.contains(r#"error="insufficient_scope""#),
            "{challenge}"
        );
        // Every scope the endpoint needs, in one challenge.
        assert!(challenge.contains(r#"scope="admin tools/call""#), "{challenge}");
        assert!(challenge.contains("error_description="), "{challenge}");
        assert!(challenge.contains("resource_metadata="), "{challenge}");
        let body = assert_error(res, 403, "insufficient_scope").await;
        assert_eq!(body["scope"], "admin tools/call", "{scope}");
    }
    // Literal scopes still work; `tools/call` is not implied by `tools`.
    let ok = token_from(ISSUER_A, "root", "admin tools/call");
    assert_eq!(post(&base, "/scoped", &ok).await.status(), 200);
    // An operator-written `*` (API key) keeps its meaning.
    let res = client()
        .post(format!("{base}/scoped"))
        .header("x-api-key", ALICE_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}
