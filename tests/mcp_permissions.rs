//! `McpPermissionsLayer` through a real axum router over TCP: per-method and per-tool
//! permissions with API keys and tokens, batches, size limits, malformed bodies,
//! notifications, `tools/list` filtering (JSON and event streams) and the refusal contract.

mod common;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::Extension;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use common::{assert_error, client, hs256, now, serve, SECRET};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower_mcp_auth::mcp::{INSUFFICIENT_SCOPE_CODE, INVALID_REQUEST_CODE, PARSE_ERROR_CODE};
use tower_mcp_auth::{
    ApiKeyRegistry, ApiKeySpec, EndpointPolicy, Identity, JwtVerifier, McpAuth, McpRules,
};

const SEARCH_KEY: &str = "k-search-0001";
const ALL_KEY: &str = "k-all-0001";
const NONE_KEY: &str = "k-none-0001";
const LIMIT: usize = 64 * 1024;
const TOOLS: [&str; 4] = ["search_docs", "admin_reset", "echo", "delete_repo"];

fn keys() -> ApiKeyRegistry {
    ApiKeyRegistry::builder()
        .key(
            SEARCH_KEY,
            ApiKeySpec::new("search bot")
                .user_id("sam")
                .permissions(["tools/call:search_*", "resources/read:docs://*"]),
        )
        .key(ALL_KEY, ApiKeySpec::new("admin").permissions(["*"]))
        .key(NONE_KEY, ApiKeySpec::new("nothing"))
        .build()
}

fn token(scope: &str) -> String {
    hs256(&json!({"sub": "carol", "exp": now() + 600, "scope": scope}))
}

/// A tiny MCP-like JSON-RPC server: answers every request of a message or batch, and tells
/// what it received and from whom.
fn answer(body: &[u8], identity: Option<&Identity>) -> Option<Value> {
    let one = |m: &Value| -> Option<Value> {
        let id = m.get("id")?.clone();
        m.get("method")?;
        let result = match m["method"].as_str() {
            Some("tools/list") => json!({"tools": TOOLS.iter()
                .map(|n| json!({"name": n, "inputSchema": {"type": "object"}}))
                .collect::<Vec<_>>()}),
            Some("tools/call") => {
                json!({"content": [{"type": "text", "text": m["params"]["name"]}]})
            }
            _ => json!({}),
        };
        Some(json!({"jsonrpc": "2.0", "id": id, "result": result,
            "caller": identity.map(|i| i.name().to_owned())}))
    };
    match serde_json::from_slice::<Value>(body).ok()? {
        Value::Array(items) => {
            let out: Vec<Value> = items.iter().filter_map(one).collect();
            (!out.is_empty()).then_some(Value::Array(out))
        }
        m => one(&m),
    }
}

async fn mcp_json(identity: Option<Extension<Identity>>, body: Bytes) -> Response {
    match answer(&body, identity.as_ref().map(|e| &e.0)) {
        Some(v) => axum::Json(v).into_response(),
        // Notifications and responses: 202 Accepted, as streamable HTTP answers them.
        None => axum::http::StatusCode::ACCEPTED.into_response(),
    }
}

/// The same answers as an event stream, cut into awkward chunks, after a priming event and a
/// notification.
async fn mcp_sse(identity: Option<Extension<Identity>>, body: Bytes) -> Response {
    let Some(v) = answer(&body, identity.as_ref().map(|e| &e.0)) else {
        return axum::http::StatusCode::ACCEPTED.into_response();
    };
    let messages = match v {
        Value::Array(items) => items,
        m => vec![m],
    };
    let mut text = String::from("id: 0\nretry: 3000\ndata: \n\n");
    text.push_str("data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"data\":\"tools: admin_reset\"}}\n\n");
    for (i, m) in messages.iter().enumerate() {
        text.push_str(&format!(
            "id: {}\r\nevent: message\r\ndata: {m}\r\n\r\n",
            i + 1
        ));
    }
    let chunks: VecDeque<Bytes> = text
        .as_bytes()
        .chunks(37)
        .map(Bytes::copy_from_slice)
        .collect();
    Response::builder()
        .header(CONTENT_TYPE, "text/event-stream")
        .body(Body::new(Chunks(chunks)))
        .unwrap()
}

/// Echoes the body it received, to prove the layer hands on the exact bytes.
async fn echo_body(body: Bytes) -> Bytes {
    body
}

struct Chunks(VecDeque<Bytes>);

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|b| Ok(http_body::Frame::data(b))))
    }
}

async fn server() -> String {
    serve(|base| {
        Router::new()
            .route("/mcp", post(mcp_json).get(|| async { "stream" }))
            .route("/mcp-sse", post(mcp_sse))
            .route("/key-only", post(mcp_json))
            .route("/echo", post(echo_body))
            .route("/open", post(echo_body))
            .route("/upload", post(echo_body))
            .layer(
                McpAuth::builder()
                    .api_keys(keys())
                    .bearer(JwtVerifier::hs256(SECRET).build().unwrap())
                    .public_base_url(base)
                    .endpoint("/open", EndpointPolicy::open())
                    .endpoint("/key-only", EndpointPolicy::api_key_only())
                    .mcp_permissions(
                        McpRules::new()
                            .public(["tools/list"])
                            .rule("tools/call:admin_*", ["admin"])
                            .filter_tools_list(true)
                            .max_body_bytes(LIMIT)
                            .path("/mcp")
                            .path("/mcp-sse")
                            .path("/key-only")
                            .path("/echo")
                            .path("/open"),
                    )
                    .build()
                    .unwrap(),
            )
    })
    .await
}

fn call(id: Value, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

fn tool(id: u64, name: &str) -> Value {
    call(
        json!(id),
        "tools/call",
        json!({"name": name, "arguments": {}}),
    )
}

enum Cred<'a> {
    Key(&'a str),
    Token(&'a str),
}

async fn send(base: &str, path: &str, cred: Cred<'_>, body: &Value) -> reqwest::Response {
    send_raw(base, path, cred, body.to_string()).await
}

async fn send_raw(base: &str, path: &str, cred: Cred<'_>, body: String) -> reqwest::Response {
    let req = client()
        .post(format!("{base}{path}"))
        .header(CONTENT_TYPE, "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body);
    let req = match cred {
        Cred::Key(k) => req.header("x-api-key", k),
        Cred::Token(t) => req.bearer_auth(t),
    };
    req.send().await.unwrap()
}

/// Checks the refusal contract around a JSON-RPC body and returns the body.
async fn refusal(res: reqwest::Response, status: u16) -> Value {
    assert_eq!(res.status().as_u16(), status);
    assert_eq!(res.headers()["content-type"], "application/json");
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    for envelope in body
        .as_array()
        .cloned()
        .unwrap_or_else(|| vec![body.clone()])
    {
        assert_eq!(envelope["jsonrpc"], "2.0", "{envelope}");
        assert!(envelope.get("id").is_some(), "{envelope}");
        let error = &envelope["error"];
        assert!(
            error["code"].is_i64() && error["message"].is_string(),
            "{envelope}"
        );
        let data = &error["data"];
        assert!(data["error"].is_string() && data["error_description"].is_string());
        let ts = data["timestamp"].as_str().unwrap();
        assert!(ts.len() == 24 && ts.ends_with('Z'), "{ts}");
    }
    body
}

fn challenge(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
}

fn tool_names(message: &Value) -> Vec<String> {
    message["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

// ---- per method and per tool ------------------------------------------------------------

#[tokio::test]
async fn api_key_allowed_and_denied_per_tool() {
    let base = server().await;
    let res = send(
        &base,
        "/mcp",
        Cred::Key(SEARCH_KEY),
        &tool(1, "search_docs"),
    )
    .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["result"]["content"][0]["text"], "search_docs");
    assert_eq!(body["caller"], "search bot");

    let res = send(
        &base,
        "/mcp",
        Cred::Key(SEARCH_KEY),
        &tool(7, "delete_repo"),
    )
    .await;
    // Both modes on /mcp: the contract's Bearer challenge names the missing permission.
    let www = challenge(&res).expect("challenge");
    assert!(www.starts_with("Bearer realm=\"mcp\""), "{www}");
    assert!(www.contains(r#"error="insufficient_scope""#), "{www}");
    assert!(www.contains(r#"scope="tools/call:delete_repo""#), "{www}");
    assert!(
        www.contains(&format!(
            "resource_metadata=\"{base}/.well-known/oauth-protected-resource/mcp\""
        )),
        "{www}"
    );
    let body = refusal(res, 403).await;
    assert_eq!(body["id"], 7);
    assert_eq!(body["error"]["code"], INSUFFICIENT_SCOPE_CODE);
    assert_eq!(
        body["error"]["message"],
        "Insufficient scope: tools/call:delete_repo"
    );
    let data = &body["error"]["data"];
    assert_eq!(data["error"], "insufficient_scope");
    assert_eq!(data["permission"], "tools/call:delete_repo");
    assert_eq!(data["scope"], "tools/call:delete_repo");
    assert_eq!(
        data["resource_metadata"],
        format!("{base}/.well-known/oauth-protected-resource/mcp")
    );
    // Never a credential in the body.
    assert!(!body.to_string().contains(SEARCH_KEY));
}

#[tokio::test]
async fn per_method_and_resource_permissions() {
    let base = server().await;
    // tools/list is public in these rules; initialize and ping are public by default.
    for method in ["tools/list", "initialize", "ping"] {
        let res = send(
            &base,
            "/mcp",
            Cred::Key(NONE_KEY),
            &call(json!(1), method, json!({})),
        )
        .await;
        assert_eq!(res.status(), 200, "{method}");
    }
    let res = send(
        &base,
        "/mcp",
        Cred::Key(NONE_KEY),
        &call(json!("p"), "prompts/list", json!({})),
    )
    .await;
    let body = refusal(res, 403).await;
    assert_eq!(body["id"], "p");
    assert_eq!(body["error"]["data"]["permission"], "prompts/list");

    let read = |uri: &str| call(json!(2), "resources/read", json!({"uri": uri}));
    let res = send(&base, "/mcp", Cred::Key(SEARCH_KEY), &read("docs://intro")).await;
    assert_eq!(res.status(), 200);
    let res = send(
        &base,
        "/mcp",
        Cred::Key(SEARCH_KEY),
        &read("file:///etc/passwd"),
    )
    .await;
    let body = refusal(res, 403).await;
    assert_eq!(
        body["error"]["data"]["permission"],
        "resources/read:file:///etc/passwd"
    );
    // `*` holds everything, including rule-guarded tools... except that a rule's scopes
    // replace the permission: `*` grants `admin` too.
    let res = send(&base, "/mcp", Cred::Key(ALL_KEY), &tool(3, "admin_reset")).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn bearer_scopes_per_tool_and_rules() {
    let base = server().await;
    let echo_only = token("tools/call:echo");
    let res = send(&base, "/mcp", Cred::Token(&echo_only), &tool(1, "echo")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["caller"], "carol");
    let res = send(
        &base,
        "/mcp",
        Cred::Token(&echo_only),
        &tool(2, "search_docs"),
    )
    .await;
    assert!(challenge(&res)
        .unwrap()
        .contains(r#"scope="tools/call:search_docs""#));
    refusal(res, 403).await;

    // A bare `tools/call` scope allows every tool, except those a rule guards.
    let any_tool = token("tools/call");
    let res = send(
        &base,
        "/mcp",
        Cred::Token(&any_tool),
        &tool(3, "delete_repo"),
    )
    .await;
    assert_eq!(res.status(), 200);
    let res = send(
        &base,
        "/mcp",
        Cred::Token(&any_tool),
        &tool(4, "admin_reset"),
    )
    .await;
    assert!(challenge(&res).unwrap().contains(r#"scope="admin""#));
    let body = refusal(res, 403).await;
    assert_eq!(body["error"]["data"]["scope"], "admin");
    assert_eq!(
        body["error"]["data"]["permission"],
        "tools/call:admin_reset"
    );
    let admin = token("admin");
    let res = send(&base, "/mcp", Cred::Token(&admin), &tool(5, "admin_reset")).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn api_key_only_endpoint_refuses_without_a_challenge() {
    let base = server().await;
    let res = send(
        &base,
        "/key-only",
        Cred::Key(SEARCH_KEY),
        &tool(1, "delete_repo"),
    )
    .await;
    assert!(
        challenge(&res).is_none(),
        "no Bearer challenge in api-key-only mode"
    );
    let body = refusal(res, 403).await;
    assert_eq!(body["error"]["data"]["error"], "insufficient_scope");
    assert!(body["error"]["data"].get("resource_metadata").is_none());
}

#[tokio::test]
async fn authentication_still_comes_first() {
    let base = server().await;
    let res = client()
        .post(format!("{base}/mcp"))
        .json(&tool(1, "echo"))
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "authentication_required").await;
}

// ---- batches, notifications, responses -------------------------------------------------

#[tokio::test]
async fn batches_pass_only_when_every_request_is_allowed() {
    let base = server().await;
    let ok = json!([tool(1, "search_docs"), {"jsonrpc": "2.0", "method": "notifications/progress"},
        call(json!(2), "tools/list", json!({}))]);
    let res = send(&base, "/mcp", Cred::Key(SEARCH_KEY), &ok).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.unwrap().as_array().unwrap().len(),
        2
    );

    let mixed = json!([tool(1, "search_docs"), {"jsonrpc": "2.0", "method": "notifications/progress"},
        tool(2, "delete_repo"), call(json!("x"), "prompts/get", json!({"name": "p"}))]);
    let res = send(&base, "/mcp", Cred::Key(SEARCH_KEY), &mixed).await;
    let www = challenge(&res).unwrap();
    assert!(
        www.contains(r#"scope="tools/call:delete_repo prompts/get:p""#),
        "{www}"
    );
    let body = refusal(res, 403).await;
    let errors = body.as_array().unwrap();
    // One error per request, in order; the notification has none.
    assert_eq!(
        errors.iter().map(|e| e["id"].clone()).collect::<Vec<_>>(),
        [json!(1), json!(2), json!("x")]
    );
    assert!(errors[0]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("refused with its batch"));
    assert_eq!(
        errors[0]["error"]["data"]["scope"],
        "tools/call:delete_repo prompts/get:p"
    );
    assert_eq!(
        errors[1]["error"]["data"]["permission"],
        "tools/call:delete_repo"
    );
    assert_eq!(errors[2]["error"]["data"]["permission"], "prompts/get:p");
}

#[tokio::test]
async fn notifications_and_responses_pass_unchecked() {
    let base = server().await;
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let res = send(&base, "/mcp", Cred::Key(NONE_KEY), &note).await;
    assert_eq!(res.status(), 202);
    let cancel =
        json!({"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "delete_repo"}});
    let res = send(&base, "/mcp", Cred::Key(NONE_KEY), &cancel).await;
    assert_eq!(res.status(), 202, "a notification is never refused");
    let response = json!({"jsonrpc": "2.0", "id": 9, "result": {"action": "accept"}});
    let res = send(&base, "/mcp", Cred::Key(NONE_KEY), &response).await;
    assert_eq!(res.status(), 202);
}

// ---- bodies --------------------------------------------------------------------------------

#[tokio::test]
async fn inner_service_gets_the_exact_bytes() {
    let base = server().await;
    let raw = "  {\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"search_docs\",\"arguments\":{\"q\":\"\\u00e9\"}}}\n";
    let res = send_raw(&base, "/echo", Cred::Key(SEARCH_KEY), raw.to_owned()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), raw);
}

#[tokio::test]
async fn malformed_bodies_are_400_never_500() {
    let base = server().await;
    for (raw, code) in [
        ("", PARSE_ERROR_CODE),
        ("{", PARSE_ERROR_CODE),
        ("not json", PARSE_ERROR_CODE),
        ("{\"id\":1,\"method\":\"tools/call\"}{}", PARSE_ERROR_CODE),
        ("42", INVALID_REQUEST_CODE),
        ("[1]", INVALID_REQUEST_CODE),
        ("{\"id\":1,\"method\":7}", INVALID_REQUEST_CODE),
        ("{\"id\":{},\"method\":\"ping\"}", INVALID_REQUEST_CODE),
        (
            "{\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"search_docs\",\"name\":\"delete_repo\"}}",
            INVALID_REQUEST_CODE,
        ),
    ] {
        let res = send_raw(&base, "/mcp", Cred::Key(ALL_KEY), raw.to_owned()).await;
        let body = refusal(res, 400).await;
        assert_eq!(body["id"], Value::Null, "{raw:?}");
        assert_eq!(body["error"]["code"], code, "{raw:?}");
        assert_eq!(body["error"]["data"]["error"], "invalid_request");
    }
    // Invalid UTF-8 too.
    let res = client()
        .post(format!("{base}/mcp"))
        .header("x-api-key", ALL_KEY)
        .body(vec![0xff, 0xfe, b'{'])
        .send()
        .await
        .unwrap();
    assert_eq!(refusal(res, 400).await["error"]["code"], PARSE_ERROR_CODE);
}

#[tokio::test]
async fn oversize_bodies_get_413() {
    let base = server().await;
    let big = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "search_docs", "arguments": {"q": "x".repeat(LIMIT)}}});
    let res = send(&base, "/mcp", Cred::Key(ALL_KEY), &big).await;
    let body = refusal(res, 413).await;
    assert_eq!(body["error"]["code"], INVALID_REQUEST_CODE);

    // Chunked, without Content-Length: the limit holds while reading.
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nX-API-Key: {ALL_KEY}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b' '; 8 * 1024];
    for _ in 0..(LIMIT / chunk.len() + 2) {
        let frame = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
        if stream.write_all(&frame).await.is_err() {
            break; // the server may answer and close before reading everything
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply).await;
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");

    // Just under the limit passes.
    let mut fits = tool(2, "search_docs").to_string();
    fits.push_str(&" ".repeat(LIMIT - fits.len()));
    let res = send_raw(&base, "/mcp", Cred::Key(ALL_KEY), fits).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn uninspected_requests_pass_untouched() {
    let base = server().await;
    // Open endpoint: no identity, so no JSON-RPC check even on an inspected path.
    let res = client()
        .post(format!("{base}/open"))
        .body("not json at all")
        .send()
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap(), "not json at all");
    // A path outside the rules' paths.
    let res = send_raw(&base, "/upload", Cred::Key(NONE_KEY), "%PDF-1.7".into()).await;
    assert_eq!(res.text().await.unwrap(), "%PDF-1.7");
    // GET (the SSE stream of streamable HTTP) is not a JSON-RPC body.
    let res = client()
        .get(format!("{base}/mcp"))
        .header("x-api-key", NONE_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap(), "stream");
}

// ---- tools/list filtering ------------------------------------------------------------------

#[tokio::test]
async fn tools_list_json_is_filtered_per_identity() {
    let base = server().await;
    let list = call(json!(1), "tools/list", json!({}));
    for (cred, expected) in [
        (Cred::Key(SEARCH_KEY), vec!["search_docs"]),
        (Cred::Key(ALL_KEY), TOOLS.to_vec()),
        (Cred::Key(NONE_KEY), vec![]),
    ] {
        let res = send(&base, "/mcp", cred, &list).await;
        assert_eq!(res.status(), 200);
        let length: usize = res.headers()["content-length"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let text = res.text().await.unwrap();
        assert_eq!(length, text.len());
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(tool_names(&body), expected);
    }
    let any_tool = token("tools/call");
    let res = send(&base, "/mcp", Cred::Token(&any_tool), &list).await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(tool_names(&body), ["search_docs", "echo", "delete_repo"]);

    // In a batch, only the tools/list answer is touched.
    let batch = json!([call(json!("a"), "ping", json!({})), list]);
    let res = send(&base, "/mcp", Cred::Key(SEARCH_KEY), &batch).await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body[0]["result"], json!({}));
    assert_eq!(tool_names(&body[1]), ["search_docs"]);
}

#[tokio::test]
async fn tools_list_event_stream_is_filtered() {
    let base = server().await;
    let list = call(json!(1), "tools/list", json!({}));
    let res = send(&base, "/mcp-sse", Cred::Key(SEARCH_KEY), &list).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let text = res.text().await.unwrap();
    let events: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect();
    assert_eq!(events.len(), 2, "{text}");
    // Notifications stream through untouched (even when they mention a tool).
    assert_eq!(events[0]["method"], "notifications/message");
    assert_eq!(tool_names(&events[1]), ["search_docs"]);
    assert!(text.starts_with("id: 0\nretry: 3000\ndata: \n\n"), "{text}");
    assert!(text.contains("id: 1\nevent: message\ndata: "), "{text}");

    // tools/call answers in an event stream are left alone.
    let res = send(
        &base,
        "/mcp-sse",
        Cred::Key(SEARCH_KEY),
        &tool(2, "search_docs"),
    )
    .await;
    let text = res.text().await.unwrap();
    assert!(text.contains("id: 1\r\nevent: message\r\ndata: "), "{text}");
}
