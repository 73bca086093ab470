//! Inputs found by the fuzz targets in `fuzz/` that expose a bug, each replayed through a real
//! axum `Router` over TCP. Each test failed when the input was found and passes since its fix.

use crate::common;

use axum::body::Body;
use axum::http::header::CONTENT_TYPE;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde_json::json;
use tower_mcp_auth::{ApiKeyRegistry, ApiKeySpec, McpAuth, McpRules};

const KEY: &str = "k-search-0001";

/// Found by `fuzz/fuzz_targets/sse.rs` (no-leak invariant): `SseRewriter::rewrite` returned an
/// event unchanged when its bytes were not valid UTF-8 (`src/mcp/sse.rs`, the
/// `std::str::from_utf8(&event)` early return), so one stray byte anywhere in the event (here
/// in a comment line, `: \xff`) makes the `tools/list` response pass unfiltered. Clients decode
/// event streams as UTF-8 with replacement characters (HTML standard), so they read every
/// tool. Fuzzer input: a `tools/list` response event with byte 0xA0 inside a tool name.
/// Fail-open of the filter (a courtesy, not the enforcement: `tools/call` is still checked),
/// but the rest of the layer fails closed. Fixed: the rewriter reads events lossily, as
/// clients do, and filters them.
#[tokio::test]
async fn sse_event_with_invalid_utf8_is_filtered_too() {
    tools_list_event_is_filtered(b": \xff\n").await;
}

/// The same stream without the stray byte is filtered: the setup above is sound.
#[tokio::test]
async fn sse_event_control_valid_utf8_is_filtered() {
    tools_list_event_is_filtered(b": ok\n").await;
}

async fn tools_list_event_is_filtered(comment: &'static [u8]) {
    let base = common::serve(move |_| {
        let keys = ApiKeyRegistry::builder()
            .key(
                KEY,
                ApiKeySpec::new("search bot").permissions(["tools/call:search_*"]),
            )
            .build();
        let auth = McpAuth::builder()
            .api_keys(keys)
            .mcp_permissions(
                McpRules::new()
                    .public(["tools/list"])
                    .filter_tools_list(true),
            )
            .build()
            .unwrap();
        Router::new()
            .route(
                "/mcp",
                post(move || async move {
                    let tools = json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": [
                        {"name": "search_docs"}, {"name": "admin_reset"}]}});
                    let mut event = b"id: 1\n".to_vec();
                    event.extend_from_slice(comment);
                    event.extend_from_slice(b"data: ");
                    event.extend_from_slice(tools.to_string().as_bytes());
                    event.extend_from_slice(b"\n\n");
                    Response::builder()
                        .header(CONTENT_TYPE, "text/event-stream")
                        .body(Body::from(event))
                        .unwrap()
                }),
            )
            .layer(auth)
    })
    .await;
    let res = common::client()
        .post(format!("{base}/mcp"))
        .header("x-api-key", KEY)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let text = String::from_utf8_lossy(&res.bytes().await.unwrap()).into_owned();
    assert!(text.contains("search_docs"), "{text}");
    assert!(
        !text.contains("admin_reset"),
        "the filter let an uncallable tool through: {text}"
    );
}
