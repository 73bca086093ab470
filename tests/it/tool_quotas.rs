//! Per-tool quotas (`ToolQuotas` through `McpRules::tool_quotas`) through a real axum router
//! over TCP, on the memory store and on Redis: 429 with `Retry-After`, `RateLimit-*` and a
//! JSON-RPC error per request carrying its id; other tools and other identities unaffected;
//! batches counted per message and refunded when refused.

use std::sync::Arc;

use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use tower_mcp_auth::mcp::TOO_MANY_REQUESTS_CODE;
use tower_mcp_auth::rate_limit::{RateLimitKey, ToolQuotas};
use tower_mcp_auth::store::{MemoryStore, Quota, StateStore};
use tower_mcp_auth::{ApiKeyRegistry, ApiKeySpec, EndpointPolicy, McpAuth, McpRules};

use crate::common::{client, serve};
use crate::store_common::{self, Backend};

const ALICE: &str = "tq-alice-key-0001";
const BOB: &str = "tq-bob-key-0001";

fn keys() -> ApiKeyRegistry {
    ApiKeyRegistry::builder()
        .key(
            ALICE,
            ApiKeySpec::new("alice bot")
                .user_id("alice")
                .permissions(["*"]),
        )
        .key(
            BOB,
            ApiKeySpec::new("bob bot").user_id("bob").permissions(["*"]),
        )
        .build()
}

/// `/mcp` behind keys, permissions and per-tool quotas: `tools/call:search_*` 2 per minute,
/// `tools/call:echo` 1 per minute, per user.
async fn server(store: Arc<dyn StateStore>) -> String {
    let quotas = ToolQuotas::from_shared(store)
        .limit("tools/call:search_*", Quota::per_minute(2).unwrap())
        .limit("tools/call:echo", Quota::per_minute(1).unwrap())
        .key(RateLimitKey::User);
    let auth = McpAuth::builder()
        .api_keys(keys())
        .default_policy(EndpointPolicy::api_key_only())
        .mcp_permissions(McpRules::new().tool_quotas(quotas))
        .build()
        .unwrap();
    serve(|_| {
        Router::new()
            .route(
                "/mcp",
                post(|| async { r#"{"jsonrpc":"2.0","id":1,"result":{}}"# }),
            )
            .layer(auth)
    })
    .await
}

fn tool(id: i64, name: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": {}}})
}

async fn post_mcp(base: &str, key: &str, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{base}/mcp"))
        .header("x-api-key", key)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// The 429 contract around a JSON-RPC body, with the spent quota's `RateLimit-*` headers;
/// returns the body.
async fn assert_quota_refusal(res: reqwest::Response) -> Value {
    assert!(res.headers().get("ratelimit-limit").is_some());
    assert_eq!(res.headers()["ratelimit-remaining"], "0");
    assert_too_many(res).await
}

/// The 429 contract around a JSON-RPC body; returns the body.
async fn assert_too_many(res: reqwest::Response) -> Value {
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["content-type"], "application/json");
    assert_eq!(res.headers()["cache-control"], "no-store");
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert!(res.headers().get("www-authenticate").is_none());
    res.json().await.unwrap()
}

fn assert_envelope(e: &Value, id: i64, spent: bool) {
    assert_eq!(e["jsonrpc"], "2.0", "{e}");
    assert_eq!(e["id"], id, "{e}");
    assert_eq!(e["error"]["code"], TOO_MANY_REQUESTS_CODE, "{e}");
    let data = &e["error"]["data"];
    assert_eq!(data["error"], "too_many_requests", "{e}");
    assert!(data["retry_after"].as_u64().is_some_and(|s| s >= 1), "{e}");
    assert!(data["timestamp"].as_str().is_some(), "{e}");
    let message = e["error"]["message"].as_str().unwrap();
    assert_eq!(message.contains("quota is spent"), spent, "{message}");
}

async fn per_tool_case(backend: Arc<Backend>) {
    let base = server(backend.store.clone()).await;
    for id in 1..=2 {
        let res = post_mcp(&base, ALICE, &tool(id, "search_docs")).await;
        assert_eq!(res.status(), 200, "search {id}");
    }
    // The third search in the minute: refused, with the request's id.
    let body = assert_quota_refusal(post_mcp(&base, ALICE, &tool(3, "search_web")).await).await;
    assert_envelope(&body, 3, true);
    assert_eq!(body["error"]["data"]["quota"], "tools/call:search_*");
    // Another tool, an unlimited tool, another user: unaffected.
    assert_eq!(post_mcp(&base, ALICE, &tool(4, "echo")).await.status(), 200);
    assert_eq!(
        post_mcp(&base, ALICE, &tool(5, "fetch")).await.status(),
        200
    );
    assert_eq!(
        post_mcp(&base, BOB, &tool(6, "search_docs")).await.status(),
        200
    );
    let list = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list"});
    assert_eq!(post_mcp(&base, ALICE, &list).await.status(), 200);
}

async fn batch_case(backend: Arc<Backend>) {
    let base = server(backend.store.clone()).await;
    // Bob's searches: a batch of three never fits a burst of two (nothing was counted, so
    // there are no RateLimit-* headers to give).
    let three = json!([
        tool(1, "search_a"),
        tool(2, "search_b"),
        tool(3, "search_c")
    ]);
    let res = post_mcp(&base, BOB, &three).await;
    assert!(res.headers().get("ratelimit-limit").is_none());
    let body = assert_too_many(res).await;
    let errors = body.as_array().expect("one error per request");
    assert_eq!(errors.len(), 3);
    for (e, id) in errors.iter().zip(1..) {
        assert_envelope(e, id, true);
    }
    // A batch of two fits, and spends the quota.
    let two = json!([tool(4, "search_a"), tool(5, "search_b")]);
    assert_eq!(post_mcp(&base, BOB, &two).await.status(), 200);
    // [echo, search]: echo fits, search does not; the batch is refused and echo's cell is
    // given back, so echo (1 per minute) still works afterwards.
    let mixed = json!([tool(6, "echo"), tool(7, "search_a")]);
    let body = assert_quota_refusal(post_mcp(&base, BOB, &mixed).await).await;
    let errors = body.as_array().unwrap();
    assert_envelope(&errors[0], 6, false);
    assert_envelope(&errors[1], 7, true);
    assert_eq!(post_mcp(&base, BOB, &tool(8, "echo")).await.status(), 200);
    let body = assert_quota_refusal(post_mcp(&base, BOB, &tool(9, "echo")).await).await;
    assert_envelope(&body, 9, true);
    assert_eq!(body["error"]["data"]["quota"], "tools/call:echo");
}

#[tokio::test]
async fn per_tool_quota_memory() {
    store_common::run(store_common::memory().await, per_tool_case).await;
}

#[tokio::test]
async fn per_tool_quota_batches_memory() {
    store_common::run(store_common::memory().await, batch_case).await;
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn per_tool_quota_redis() {
    store_common::run(store_common::redis().await, per_tool_case).await;
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn per_tool_quota_batches_redis() {
    store_common::run(store_common::redis().await, batch_case).await;
}

#[tokio::test]
async fn a_notification_counts_against_its_tool_and_is_refused_with_a_null_id() {
    let base = server(Arc::new(MemoryStore::new())).await;
    let note = json!({"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "echo"}});
    assert_eq!(post_mcp(&base, ALICE, &note).await.status(), 200);
    let body = assert_quota_refusal(post_mcp(&base, ALICE, &note).await).await;
    assert_eq!(body["id"], Value::Null);
    assert_eq!(body["error"]["code"], TOO_MANY_REQUESTS_CODE);
}

#[test]
fn invalid_quota_patterns_are_refused_at_build() {
    for bad in ["", "tools/*/call"] {
        let quotas = ToolQuotas::new(MemoryStore::new()).limit(bad, Quota::per_minute(1).unwrap());
        let err = McpRules::new().tool_quotas(quotas).build().unwrap_err();
        assert!(matches!(err, tower_mcp_auth::mcp::McpRuleError::InvalidRule(p) if p == bad));
    }
}
