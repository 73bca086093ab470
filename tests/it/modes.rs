//! One test per row of DESIGN.md's mode table and response contract, through a real axum
//! router served over TCP.

use crate::common;

use common::*;
use serde_json::{json, Value};
use tower_mcp_auth::{EndpointPolicy, JwtVerifier, McpAuth};

/// The four modes side by side, plus private and scoped endpoints.
async fn server() -> String {
    serve(|base| {
        routes().layer(
            McpAuth::builder()
                .api_keys(registry())
                .bearer(JwtVerifier::hs256(SECRET).build().unwrap())
                .public_base_url(base)
                .endpoint("/open", EndpointPolicy::open())
                .endpoint("/health", EndpointPolicy::open())
                .endpoint("/key", EndpointPolicy::api_key_only())
                .endpoint("/oauth", EndpointPolicy::oauth_only())
                .endpoint(
                    "/users/alice/mcp",
                    EndpointPolicy::both().private_to("alice"),
                )
                .endpoint("/scoped", EndpointPolicy::both().require(["tools/call"]))
                .build()
                .unwrap(),
        )
    })
    .await
}

async fn post(base: &str, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = client().post(format!("{base}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

async fn ok_json(res: reqwest::Response) -> Value {
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

// ---- open -------------------------------------------------------------------------------

#[tokio::test]
async fn open_passes_without_credentials() {
    let base = server().await;
    assert_eq!(
        ok_json(post(&base, "/open", &[]).await).await,
        json!({"method": null})
    );
}

#[tokio::test]
async fn open_does_not_check_wrong_credentials() {
    let base = server().await;
    let res = post(
        &base,
        "/open",
        &[("x-api-key", "wrong"), ("authorization", "Bearer garbage")],
    )
    .await;
    assert_eq!(ok_json(res).await, json!({"method": null}));
}

// ---- api-key only -----------------------------------------------------------------------

#[tokio::test]
async fn api_key_only_missing_is_401_without_challenge() {
    let base = server().await;
    let res = post(&base, "/key", &[]).await;
    assert_eq!(
        challenge(&res),
        None,
        "no Bearer challenge in api-key-only mode"
    );
    let body = assert_error(res, 401, "authentication_required").await;
    assert_eq!(
        body["error_description"],
        "Authentication required via API key"
    );
    assert_eq!(
        body["supported_methods"],
        json!(["X-API-Key header", "query parameter (api_key or apikey)"])
    );
    assert!(body.get("resource_metadata").is_none());
}

#[tokio::test]
async fn api_key_only_wrong_key_is_invalid_credentials() {
    let base = server().await;
    for key in ["nope", EXPIRED_KEY, REVOKED_KEY] {
        let res = post(&base, "/key", &[("x-api-key", key)]).await;
        assert_eq!(challenge(&res), None);
        let body = assert_error(res, 401, "invalid_credentials").await;
        assert_eq!(
            body["error_description"],
            "Authentication failed. Invalid credentials provided."
        );
        assert!(!body.to_string().contains(key), "the key is never echoed");
    }
}

#[tokio::test]
async fn api_key_only_accepts_header_and_query() {
    let base = server().await;
    let body = ok_json(post(&base, "/key", &[("x-api-key", ALICE_KEY)]).await).await;
    assert_eq!(body["method"], "api_key");
    assert_eq!(body["user_id"], "alice");
    assert_eq!(body["role"], "admin");
    for name in ["api_key", "apikey"] {
        let res = post(&base, &format!("/key?{name}={ALICE_KEY}"), &[]).await;
        assert_eq!(ok_json(res).await["user_id"], "alice");
    }
}

#[tokio::test]
async fn api_key_only_ignores_bearer_tokens() {
    let base = server().await;
    let res = post(
        &base,
        "/key",
        &[("authorization", &bearer(&token("alice")))],
    )
    .await;
    assert_eq!(challenge(&res), None);
    assert_error(res, 401, "authentication_required").await;
}

// ---- both -------------------------------------------------------------------------------

#[tokio::test]
async fn both_missing_is_401_with_bearer_challenge() {
    let base = server().await;
    let res = post(&base, "/both", &[]).await;
    let metadata = format!("{base}/.well-known/oauth-protected-resource/both");
    assert_eq!(
        challenge(&res).unwrap(),
        format!(r#"Bearer realm="mcp", resource_metadata="{metadata}""#)
    );
    let body = assert_error(res, 401, "authentication_required").await;
    assert_eq!(
        body["error_description"],
        "Authentication required via OAuth bearer token or API key"
    );
    assert_eq!(
        body["supported_methods"],
        json!([
            "Authorization header (Bearer token)",
            "X-API-Key header",
            "query parameter (api_key or apikey)"
        ])
    );
    assert_eq!(body["resource_metadata"], metadata);
}

#[tokio::test]
async fn both_wrong_key_is_invalid_credentials() {
    let base = server().await;
    let res = post(&base, "/both", &[("x-api-key", "nope")]).await;
    assert!(challenge(&res).unwrap().starts_with("Bearer realm=\"mcp\""));
    assert_error(res, 401, "invalid_credentials").await;
}

#[tokio::test]
async fn both_wrong_token_is_invalid_token_with_error_in_challenge() {
    let base = server().await;
    let mut c = claims("alice");
    c["exp"] = json!(now() - 3600);
    let res = post(&base, "/both", &[("authorization", &bearer(&hs256(&c)))]).await;
    let ch = challenge(&res).unwrap();
    assert!(ch.contains(r#"error="invalid_token""#), "{ch}");
    assert!(
        ch.contains(r#"error_description="The access token has expired""#),
        "{ch}"
    );
    assert!(ch.contains("resource_metadata="), "{ch}");
    let body = assert_error(res, 401, "invalid_token").await;
    assert_eq!(body["error_description"], "The access token has expired");
}

#[tokio::test]
async fn both_accepts_either_and_key_takes_precedence() {
    let base = server().await;
    let body = ok_json(
        post(
            &base,
            "/both",
            &[("authorization", &bearer(&token("carol")))],
        )
        .await,
    )
    .await;
    assert_eq!(body["method"], "bearer");
    assert_eq!(body["user_id"], "carol");
    assert_eq!(body["scopes"], json!(["tools/call", "tools/list"]));
    assert_eq!(
        body["permissions"],
        json!([]),
        "token scopes are not permissions"
    );

    let both = [
        ("x-api-key", ALICE_KEY),
        ("authorization", &bearer(&token("carol"))),
    ];
    let body = ok_json(post(&base, "/both", &both).await).await;
    assert_eq!(body["method"], "api_key");
    assert_eq!(body["user_id"], "alice");

    // A good key next to a bad token: the key wins.
    let body = ok_json(
        post(
            &base,
            "/both",
            &[
                ("x-api-key", ALICE_KEY),
                ("authorization", "Bearer bad.token.here"),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(body["method"], "api_key");
}

#[tokio::test]
async fn both_wrong_key_is_an_error_even_next_to_a_good_token() {
    let base = server().await;
    let res = post(
        &base,
        "/both",
        &[
            ("x-api-key", "nope"),
            ("authorization", &bearer(&token("carol"))),
        ],
    )
    .await;
    assert_error(res, 401, "invalid_credentials").await;
}

// ---- oauth only -------------------------------------------------------------------------

#[tokio::test]
async fn oauth_only_missing_is_401_with_challenge() {
    let base = server().await;
    let res = post(&base, "/oauth", &[]).await;
    assert!(challenge(&res).unwrap().contains("resource_metadata="));
    let body = assert_error(res, 401, "authentication_required").await;
    assert_eq!(
        body["error_description"],
        "Authentication required via OAuth bearer token"
    );
    assert_eq!(
        body["supported_methods"],
        json!(["Authorization header (Bearer token)"])
    );
}

#[tokio::test]
async fn oauth_only_wrong_token_is_invalid_token() {
    let base = server().await;
    let res = post(&base, "/oauth", &[("authorization", "Bearer not-a-jwt")]).await;
    assert!(challenge(&res)
        .unwrap()
        .contains(r#"error="invalid_token""#));
    let body = assert_error(res, 401, "invalid_token").await;
    assert_eq!(body["error_description"], "The access token is malformed");
}

#[tokio::test]
async fn oauth_only_ignores_api_keys() {
    let base = server().await;
    let res = post(&base, "/oauth", &[("x-api-key", ALICE_KEY)]).await;
    assert_error(res, 401, "authentication_required").await;
    // ... and a wrong key is not an error there either.
    let res = post(
        &base,
        "/oauth",
        &[
            ("x-api-key", "nope"),
            ("authorization", &bearer(&token("carol"))),
        ],
    )
    .await;
    assert_eq!(ok_json(res).await["method"], "bearer");
}

// ---- 403 ------------------------------------------------------------------------------

#[tokio::test]
async fn public_key_on_private_endpoint_is_access_denied() {
    let base = server().await;
    let res = post(&base, "/users/alice/mcp", &[("x-api-key", PUBLIC_KEY)]).await;
    assert_eq!(
        challenge(&res),
        None,
        "403 access_denied carries no challenge"
    );
    let body = assert_error(res, 403, "access_denied").await;
    assert_eq!(
        body["error_description"],
        "Public API keys cannot access private endpoints"
    );
}

#[tokio::test]
async fn other_users_private_endpoint_is_access_denied() {
    let base = server().await;
    let res = post(&base, "/users/alice/mcp", &[("x-api-key", BOB_KEY)]).await;
    assert_error(res, 403, "access_denied").await;
    let res = post(
        &base,
        "/users/alice/mcp",
        &[("authorization", &bearer(&token("bob")))],
    )
    .await;
    assert_error(res, 403, "access_denied").await;
    // The owner gets in with a key or a token.
    assert_eq!(
        ok_json(post(&base, "/users/alice/mcp", &[("x-api-key", ALICE_KEY)]).await).await
            ["user_id"],
        "alice"
    );
    let res = post(
        &base,
        "/users/alice/mcp",
        &[("authorization", &bearer(&token("alice")))],
    )
    .await;
    assert_eq!(ok_json(res).await["method"], "bearer");
}

#[tokio::test]
async fn missing_permission_is_insufficient_scope_with_step_up_challenge() {
    let base = server().await;
    let res = post(&base, "/scoped", &[("x-api-key", BOB_KEY)]).await;
    let ch = challenge(&res).unwrap();
    assert!(ch.contains(r#"error="insufficient_scope""#), "{ch}");
    assert!(ch.contains(r#"scope="tools/call""#), "{ch}");
    let body = assert_error(res, 403, "insufficient_scope").await;
    assert_eq!(body["scope"], "tools/call");

    let mut c = claims("carol");
    c["scope"] = json!("tools/list");
    let res = post(&base, "/scoped", &[("authorization", &bearer(&hs256(&c)))]).await;
    assert_error(res, 403, "insufficient_scope").await;
    // `*` grants everything; a token with the scope passes.
    assert_eq!(
        post(&base, "/scoped", &[("x-api-key", ALICE_KEY)])
            .await
            .status(),
        200
    );
    assert_eq!(
        post(&base, "/scoped", &[("authorization", &bearer(&token("c")))])
            .await
            .status(),
        200
    );
}

// ---- defaults ---------------------------------------------------------------------------

#[tokio::test]
async fn unmatched_paths_get_the_closed_default_and_health_is_open() {
    let base = server().await;
    let res = post(&base, "/mcp", &[]).await;
    assert_error(res, 401, "authentication_required").await;
    let res = client().get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(res.status(), 200);
}
