//! Changing an `ApiKeyRegistry` at run time, behind a real router: every change made through
//! the registry's methods is effective on the next request, although the registry answers
//! keys it has seen before from its verified-key cache.

use crate::common;

use common::*;
use tower_mcp_auth::{api_key::KeyHash, ApiKeySpec, EndpointPolicy, McpAuth};

/// Serves `/mcp` (API key only) with `registry` and returns its URL.
async fn serve_keys(registry: tower_mcp_auth::ApiKeyRegistry) -> String {
    let base = serve(move |base| {
        routes().layer(
            McpAuth::builder()
                .api_keys(registry)
                .public_base_url(base)
                .endpoint("/mcp", EndpointPolicy::api_key_only())
                .build()
                .unwrap(),
        )
    })
    .await;
    format!("{base}/mcp")
}

async fn call(url: &str, key: &str) -> reqwest::Response {
    client()
        .post(url)
        .header("x-api-key", key)
        .send()
        .await
        .unwrap()
}

async fn assert_user(url: &str, key: &str, user: &str) {
    let res = call(url, key).await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["user_id"], user, "{body}");
}

#[tokio::test]
async fn revoking_a_cached_key_refuses_its_next_request() {
    let keys = registry();
    let url = serve_keys(keys.clone()).await;
    // Twice: the second request is answered from the verified-key cache.
    assert_user(&url, ALICE_KEY, "alice").await;
    assert_user(&url, ALICE_KEY, "alice").await;

    assert!(keys.revoke(&KeyHash::of(ALICE_KEY)));
    let res = call(&url, ALICE_KEY).await;
    assert!(res.headers().get("www-authenticate").is_none());
    let body = assert_error(res, 401, "invalid_credentials").await;
    assert!(!body.to_string().contains(ALICE_KEY), "{body}");
    // Other keys are unaffected.
    assert_user(&url, BOB_KEY, "bob").await;
}

#[tokio::test]
async fn removed_replaced_and_resynced_keys_take_effect_at_once() {
    let keys = registry();
    let url = serve_keys(keys.clone()).await;
    assert_user(&url, BOB_KEY, "bob").await;

    // Replaced: the same key now names another user.
    keys.insert(
        KeyHash::of(BOB_KEY),
        ApiKeySpec::new("moved").user_id("carol").into(),
    );
    assert_user(&url, BOB_KEY, "carol").await;

    // Removed: unknown from now on.
    assert!(keys.remove(&KeyHash::of(BOB_KEY)));
    assert_error(call(&url, BOB_KEY).await, 401, "invalid_credentials").await;

    // A sync step that drops alice's key and adds a new one, in one change.
    assert_user(&url, ALICE_KEY, "alice").await;
    keys.apply(
        [(
            KeyHash::of("fresh-key-0001"),
            ApiKeySpec::new("fresh").user_id("dave").into(),
        )],
        [KeyHash::of(ALICE_KEY)],
    );
    assert_error(call(&url, ALICE_KEY).await, 401, "invalid_credentials").await;
    assert_user(&url, "fresh-key-0001", "dave").await;
}

#[tokio::test]
async fn a_key_that_expires_while_cached_is_refused() {
    let keys = registry();
    let url = serve_keys(keys.clone()).await;
    let soon = std::time::SystemTime::now() + std::time::Duration::from_secs(1);
    keys.insert(
        KeyHash::of("short-key-0001"),
        ApiKeySpec::new("short")
            .user_id("erin")
            .expires_at(soon)
            .into(),
    );
    assert_user(&url, "short-key-0001", "erin").await;
    // Wait until the expiry has passed (a state to reach, not a timing assertion).
    while std::time::SystemTime::now() <= soon {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_error(
        call(&url, "short-key-0001").await,
        401,
        "invalid_credentials",
    )
    .await;
}
