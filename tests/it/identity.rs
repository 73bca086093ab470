//! Identities through real routers: token expiry and the caches (a float `exp` is an expiry),
//! users namespaced by issuer (ownership and quotas), and token scopes that are not
//! wildcards.

use crate::common;
#[cfg(feature = "introspection")]
use crate::idp;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tower_mcp_auth::store::{MemoryStore, Quota, StateStore};
use tower_mcp_auth::{
    bearer::CachedVerifier,
    rate_limit::{RateLimitKey, RateLimitLayer},
    EndpointPolicy, JwtVerifier, McpAuth,
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
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
    let body = assert_error(res, 401, "invalid_token").await;
    assert!(
        !body.to_string().contains(&token),
        "the token is never echoed"
    );
}

/// The same, with an introspection answer whose `exp` is a float: its cache kept the answer
/// for `cache_ttl` past the token's end. Answers without `exp` are not cached at all.
#[cfg(feature = "introspection")]
#[tokio::test]
async fn introspection_cache_honours_float_exp_and_skips_unknown_expiry() {
    use tower_mcp_auth::bearer::IntrospectionVerifier;

    let idp = idp::Idp::start(&[]).await;
    let exp = (now() + 3) as f64 + 0.25;
    idp.set_introspection(
        "float-exp",
        json!({"active": true, "sub": "alice", "exp": exp}),
    );
    idp.set_introspection("no-exp", json!({"active": true, "sub": "bob"}));
    let verifier = IntrospectionVerifier::builder(
        idp.introspection_url(),
        idp.client_id(),
        idp.client_secret(),
    )
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
                .endpoint(
                    "/users/alice/mcp",
                    EndpointPolicy::both().private_to("alice"),
                )
                .build()
                .unwrap(),
        )
    })
    .await;
    let res = post(
        &base,
        "/users/alice/mcp",
        &token_from(ISSUER_A, "alice", ""),
    )
    .await;
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
                .endpoint(
                    "/scoped",
                    EndpointPolicy::both().require(["admin", "tools/call"]),
                )
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
        assert!(
            challenge.contains(r#"scope="admin tools/call""#),
            "{challenge}"
        );
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

// ---- scope map, identity mapping and subject owners (new API) ------------------------------

mod mapped {
    use super::*;
    use axum::routing::post;
    use axum::Router;
    use tower_mcp_auth::{Identity, MapIdentity, McpRules, ScopeMap};

    /// Answers every JSON-RPC request with an empty result.
    async fn rpc(body: axum::body::Bytes) -> axum::Json<Value> {
        let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        axum::Json(json!({"jsonrpc": "2.0", "id": req["id"], "result": {}}))
    }

    /// GitHub-like issuer A's user 42 is the local user alice, on purpose.
    fn alice(id: Identity) -> Identity {
        match (id.issuer(), id.user_id()) {
            (Some(ISSUER_A), Some("42")) => id.to_builder().local().user_id("alice").build(),
            _ => id,
        }
    }

    async fn server() -> String {
        let map = ScopeMap::new()
            .grant("repo:read", ["tools/call:search_*"])
            .grant("mcp:tools", ["tools/list", "tools/call:*"])
            .grant("mcp:admin", ["*"]);
        let verifier = CachedVerifier::new(MapIdentity::new(map.verifier(two_issuers()), alice));
        serve(|base| {
            Router::new()
                .route("/mcp", post(rpc))
                .route("/users/alice/mcp", post(rpc))
                .route("/users/b42/mcp", post(rpc))
                .layer(
                    McpAuth::builder()
                        .public_base_url(base)
                        .bearer(verifier)
                        .endpoint("/mcp", EndpointPolicy::oauth_only())
                        .endpoint(
                            "/users/alice/mcp",
                            EndpointPolicy::oauth_only().private_to("alice"),
                        )
                        .endpoint(
                            "/users/b42/mcp",
                            EndpointPolicy::oauth_only().private_to_subject(ISSUER_B, "42"),
                        )
                        .mcp_permissions(McpRules::new().path("/mcp"))
                        .build()
                        .unwrap(),
                )
        })
        .await
    }

    async fn call(
        base: &str,
        path: &str,
        token: &str,
        method: &str,
        tool: Option<&str>,
    ) -> reqwest::Response {
        let mut body = json!({"jsonrpc": "2.0", "id": 1, "method": method});
        if let Some(tool) = tool {
            body["params"] = json!({"name": tool});
        }
        client()
            .post(format!("{base}{path}"))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn ordinary_scopes_grant_what_the_map_says() {
        let base = server().await;
        let tools = token_from(ISSUER_A, "7", "openid mcp:tools");
        for (method, tool) in [("tools/list", None), ("tools/call", Some("whoami"))] {
            let res = call(&base, "/mcp", &tools, method, tool).await;
            assert_eq!(res.status(), 200, "{method}");
        }
        // `repo` is the parent of `repo:read`.
        for scope in ["repo:read", "repo"] {
            let search = token_from(ISSUER_A, "7", scope);
            let res = call(&base, "/mcp", &search, "tools/call", Some("search_docs")).await;
            assert_eq!(res.status(), 200, "{scope}");
            let res = call(&base, "/mcp", &search, "tools/call", Some("delete_repo")).await;
            assert_eq!(res.status(), 403);
            let challenge = challenge(&res).expect("step-up challenge");
            // Named as the identity provider knows it, with everything a client needs.
            assert!(
                challenge.contains(r#"error="insufficient_scope""#),
                "{challenge}"
            );
            assert!(challenge.contains(r#"scope="mcp:tools""#), "{challenge}");
            assert!(
                challenge.contains(&format!(
                    "resource_metadata=\"{base}/.well-known/oauth-protected-resource/mcp\""
                )),
                "{challenge}"
            );
            assert!(challenge.contains("error_description="), "{challenge}");
        }
        // `*` and `tools/call:*` from the identity provider are names, not wildcards.
        let star = token_from(ISSUER_A, "7", "* tools/call:*");
        let res = call(&base, "/mcp", &star, "tools/call", Some("whoami")).await;
        assert_eq!(res.status(), 403);
        let admin = token_from(ISSUER_A, "7", "mcp:admin");
        let res = call(&base, "/mcp", &admin, "resources/read", None).await;
        assert_eq!(
            res.status(),
            200,
            "an operator-written `*` keeps its meaning"
        );
    }

    #[tokio::test]
    async fn owners_are_issuer_and_subject_unless_mapped() {
        let base = server().await;
        let a42 = token_from(ISSUER_A, "42", "");
        let b42 = token_from(ISSUER_B, "42", "");
        // A's 42 was mapped onto the local user alice; B's 42 is someone else.
        assert_eq!(
            call(&base, "/users/alice/mcp", &a42, "ping", None)
                .await
                .status(),
            200
        );
        let res = call(&base, "/users/alice/mcp", &b42, "ping", None).await;
        assert_error(res, 403, "access_denied").await;
        // The endpoint of B's 42 is B's 42's only.
        assert_eq!(
            call(&base, "/users/b42/mcp", &b42, "ping", None)
                .await
                .status(),
            200
        );
        let res = call(&base, "/users/b42/mcp", &a42, "ping", None).await;
        assert_error(res, 403, "access_denied").await;
    }
}
