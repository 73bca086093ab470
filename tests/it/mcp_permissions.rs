//! `McpPermissionsLayer` through a real axum router over TCP: per-method and per-tool
//! permissions with API keys and tokens, batches, size limits, malformed bodies,
//! notifications, `tools/list` filtering (JSON and event streams) and the refusal contract.

use crate::common;

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
            ApiKeySpec::new("search bot").user_id("sam").permissions([
                "tools/call:search_*",
                "resources/read:docs://*",
                "resources/read:file:///srv/docs/*",
            ]),
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
            .route("/excluded", post(mcp_json))
            .route("/deep", post(deep_json))
            .route("/deep-sse", post(deep_sse))
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
                            .path("/open")
                            .exclude_path("/excluded"),
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

// ---- fail closed: nested mounts, notifications, deep responses, resource URIs -------------

/// A real rmcp server (stateless, JSON responses) with two tools; `ran` counts every tool
/// that actually executed.
mod rmcp_tools {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use rmcp::model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ListToolsResult,
        PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
    };
    use rmcp::service::RequestContext;
    use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
    use rmcp::transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService,
    };
    use rmcp::{ErrorData, RoleServer, ServerHandler};

    #[derive(Clone)]
    pub struct Tools(pub Arc<AtomicUsize>);

    fn tools() -> Vec<Tool> {
        let schema = Arc::new(serde_json::Map::from_iter([(
            "type".to_owned(),
            serde_json::Value::from("object"),
        )]));
        vec![
            Tool::new("echo", "echo", schema.clone()),
            Tool::new("delete_repo", "deletes", schema),
        ]
    }

    impl ServerHandler for Tools {
        fn get_info(&self) -> ServerConfig {
            ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
        }

        async fn list_tools(
            &self,
            _: Option<PaginatedRequestParams>,
            _: RequestContext<RoleServer>,
        ) -> Result<ListToolsResult, ErrorData> {
            Ok(ListToolsResult::with_all_items(tools()))
        }

        fn get_tool(&self, name: &str) -> Option<Tool> {
            tools().into_iter().find(|t| t.name == name)
        }

        async fn call_tool(
            &self,
            request: CallToolRequestParams,
            _: RequestContext<RoleServer>,
        ) -> Result<CallToolResponse, ErrorData> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(CallToolResult::success(vec![ContentBlock::text(request.name.to_string())]).into())
        }
    }

    pub fn service(ran: Arc<AtomicUsize>) -> StreamableHttpService<Tools, LocalSessionManager> {
        StreamableHttpService::new(
            move || Ok(Tools(ran.clone())),
            Arc::new(LocalSessionManager::default()),
            StreamableHttpServerConfig::default()
                .with_legacy_session_mode(false)
                .with_json_response(true),
        )
    }
}

fn echo_only_keys() -> ApiKeyRegistry {
    ApiKeyRegistry::builder()
        .key(
            SEARCH_KEY,
            ApiKeySpec::new("echo bot").permissions(["tools/call:echo"]),
        )
        .build()
}

#[tokio::test]
async fn nested_rmcp_refuses_forbidden_tool_calls_at_every_path() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let ran = Arc::new(AtomicUsize::new(0));
    // The layer outside the nest, on the Router, with the MCP endpoint named.
    let outside = {
        let ran = ran.clone();
        serve(move |_| {
            Router::new()
                .nest_service("/mcp", rmcp_tools::service(ran))
                .layer(
                    McpAuth::builder()
                        .api_keys(echo_only_keys())
                        .mcp_permissions(McpRules::new().path("/mcp"))
                        .build()
                        .unwrap(),
                )
        })
        .await
    };
    // The layer inside the nest: it sees the stripped path (`/`, `/x`).
    let inside = {
        let ran = ran.clone();
        serve(move |_| {
            let svc = tower::ServiceBuilder::new()
                .layer(
                    McpAuth::builder()
                        .api_keys(echo_only_keys())
                        .mcp_permissions(McpRules::new().path("/mcp"))
                        .build()
                        .unwrap(),
                )
                .service(rmcp_tools::service(ran));
            Router::new().nest_service("/mcp", svc)
        })
        .await
    };
    for base in [&outside, &inside] {
        for path in ["/mcp", "/mcp/", "/mcp/x"] {
            // The allowed tool runs there: rmcp really serves this path.
            let before = ran.load(Ordering::SeqCst);
            let res = send(base, path, Cred::Key(SEARCH_KEY), &tool(1, "echo")).await;
            assert_eq!(res.status(), 200, "{base}{path}");
            let body: Value = res.json().await.unwrap();
            assert_eq!(body["result"]["content"][0]["text"], "echo", "{body}");
            assert_eq!(ran.load(Ordering::SeqCst), before + 1);

            let res = send(base, path, Cred::Key(SEARCH_KEY), &tool(2, "delete_repo")).await;
            let body = refusal(res, 403).await;
            assert_eq!(body["id"], 2, "{base}{path}");
            assert_eq!(body["error"]["code"], INSUFFICIENT_SCOPE_CODE);
            assert_eq!(
                body["error"]["data"]["permission"],
                "tools/call:delete_repo"
            );
            assert_eq!(ran.load(Ordering::SeqCst), before + 1, "{base}{path} ran");
        }
    }
}

#[tokio::test]
async fn other_paths_check_json_rpc_and_pass_other_media_types() {
    let base = server().await;
    // A path the rules do not name still gets its JSON-RPC checked.
    let res = send(
        &base,
        "/upload",
        Cred::Key(NONE_KEY),
        &tool(4, "delete_repo"),
    )
    .await;
    let body = refusal(res, 403).await;
    assert_eq!(body["id"], 4);
    // An upload with a non-JSON media type is not JSON-RPC: passed on, byte for byte.
    let res = client()
        .post(format!("{base}/upload"))
        .header("x-api-key", NONE_KEY)
        .header(CONTENT_TYPE, "application/pdf")
        .body("%PDF-1.7")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "%PDF-1.7");
    // ...but a JSON-RPC call is checked whatever media type it claims.
    let res = client()
        .post(format!("{base}/upload"))
        .header("x-api-key", NONE_KEY)
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(tool(5, "delete_repo").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(refusal(res, 403).await["id"], 5);
    // Not JSON, sent as JSON (or without a media type): 400 as on the MCP path.
    let res = send_raw(&base, "/upload", Cred::Key(NONE_KEY), "%PDF".into()).await;
    assert_eq!(refusal(res, 400).await["error"]["code"], PARSE_ERROR_CODE);
    // An excluded path is not read at all.
    let res = send_raw(
        &base,
        "/excluded",
        Cred::Key(NONE_KEY),
        tool(6, "delete_repo").to_string(),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["id"], 6);
}

#[tokio::test]
async fn id_less_calls_are_checked_like_requests() {
    let base = server().await;
    // A tools/call notification: a JSON-RPC server runs it, so it is checked.
    let note = json!({"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "delete_repo"}});
    let res = send(&base, "/mcp", Cred::Key(NONE_KEY), &note).await;
    let www = challenge(&res).unwrap();
    assert!(www.contains(r#"scope="tools/call:delete_repo""#), "{www}");
    let body = refusal(res, 403).await;
    // No id to answer: `id: null`.
    assert_eq!(body["id"], Value::Null);
    assert!(body.get("id").is_some());
    assert_eq!(body["error"]["code"], INSUFFICIENT_SCOPE_CODE);
    assert_eq!(
        body["error"]["data"]["permission"],
        "tools/call:delete_repo"
    );
    // The same in a batch: one error per checked message, null for the notification.
    let batch = json!([tool(1, "search_docs"), note]);
    let res = send(&base, "/mcp", Cred::Key(SEARCH_KEY), &batch).await;
    let body = refusal(res, 403).await;
    let ids: Vec<Value> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].clone())
        .collect();
    assert_eq!(ids, [json!(1), Value::Null]);
    // An allowed notification, MCP notifications and responses still pass.
    let allowed =
        json!({"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "search_docs"}});
    let res = send(&base, "/mcp", Cred::Key(SEARCH_KEY), &allowed).await;
    assert_eq!(res.status(), 202);
    for message in [
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}}),
        json!({"jsonrpc": "2.0", "id": 9, "result": {"action": "accept"}}),
    ] {
        let res = send(&base, "/mcp", Cred::Key(NONE_KEY), &message).await;
        assert_eq!(res.status(), 202, "{message}");
    }
}

/// A tools/list answer nested deeper than serde_json's recursion limit (128).
fn deep_tools_list(id: &Value) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"result":{{"tools":[{{"name":"delete_repo","inputSchema":{{}}}}],"x":{}1{}}}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    )
}

async fn deep_json(body: Bytes) -> Response {
    let id = serde_json::from_slice::<Value>(&body).unwrap()["id"].clone();
    Response::builder()
        .header(CONTENT_TYPE, "application/json")
        .body(Body::from(deep_tools_list(&id)))
        .unwrap()
}

async fn deep_sse(body: Bytes) -> Response {
    let id = serde_json::from_slice::<Value>(&body).unwrap()["id"].clone();
    let text = format!(
        "id: 0\ndata: \n\ndata: {}\n\ndata: {}\n\n",
        deep_tools_list(&id),
        // The same id again, shallow: once refused, the answer must not leak later.
        json!({"jsonrpc": "2.0", "id": id, "result": {"tools": [{"name": "delete_repo"}]}})
    );
    Response::builder()
        .header(CONTENT_TYPE, "text/event-stream")
        .body(Body::from(text))
        .unwrap()
}

#[tokio::test]
async fn tools_list_too_deep_to_filter_is_an_error_not_passed_through() {
    let base = server().await;
    let list = call(json!(3), "tools/list", json!({}));
    let res = send(&base, "/deep", Cred::Key(SEARCH_KEY), &list).await;
    let body = refusal(res, 500).await;
    assert_eq!(
        body["error"]["code"],
        tower_mcp_auth::mcp::INTERNAL_ERROR_CODE
    );
    assert!(!body.to_string().contains("delete_repo"));

    let res = send(&base, "/deep-sse", Cred::Key(SEARCH_KEY), &list).await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(!text.contains("delete_repo"), "{text}");
    assert!(text.starts_with("id: 0\ndata: \n\n"), "{text}");
    let errors: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect();
    assert_eq!(errors.len(), 1, "{text}");
    assert_eq!(errors[0]["id"], 3);
    assert_eq!(
        errors[0]["error"]["code"],
        tower_mcp_auth::mcp::INTERNAL_ERROR_CODE
    );
}

#[tokio::test]
async fn resource_uris_that_escape_the_granted_prefix_are_refused() {
    let base = server().await;
    let read = |uri: &str| call(json!(8), "resources/read", json!({"uri": uri}));
    let res = send(
        &base,
        "/mcp",
        Cred::Key(SEARCH_KEY),
        &read("file:///srv/docs/intro.md"),
    )
    .await;
    assert_eq!(res.status(), 200);
    for uri in [
        "file:///srv/docs/../../etc/passwd",
        "file:///srv/docs/..",
        "file:///srv/docs/./x",
        "file:///srv/docs/%2e%2e/%2E%2E/etc/passwd",
        "file:///srv/docs/.%2e/secret",
        "file:///srv/docs/%2fetc%2fpasswd",
        "file:///srv/docs/..%5c..%5csecret",
        "file:///srv/docs\\..\\secret",
        "file:///srv/docs/%252e%252e/secret",
        "file:///srv/docs/x?../../secret",
    ] {
        let res = send(&base, "/mcp", Cred::Key(SEARCH_KEY), &read(uri)).await;
        let body = refusal(res, 403).await;
        assert_eq!(body["id"], 8, "{uri}");
        assert_eq!(body["error"]["code"], INSUFFICIENT_SCOPE_CODE, "{uri}");
        assert_eq!(body["error"]["data"]["scope"], "resources/read", "{uri}");
    }
    // Who holds the bare method (or `*`) may read any URI, canonical or not.
    let res = send(
        &base,
        "/mcp",
        Cred::Key(ALL_KEY),
        &read("file:///srv/docs/../x"),
    )
    .await;
    assert_eq!(res.status(), 200);
}

// ---- MCP 2026-07-28 Mcp-Method / Mcp-Name headers ------------------------------------------

async fn send_with(base: &str, headers: &[(&str, &str)], body: &Value) -> reqwest::Response {
    let mut req = client()
        .post(format!("{base}/mcp"))
        .header(CONTENT_TYPE, "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("x-api-key", ALL_KEY)
        .body(body.to_string());
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn mcp_method_and_name_headers_must_match_the_body() {
    use tower_mcp_auth::mcp::HEADER_MISMATCH_CODE;
    let base = server().await;
    let v = ("mcp-protocol-version", "2026-07-28");
    // Matching headers, and absent ones (2025-11-25 clients), pass.
    for headers in [
        vec![v, ("mcp-method", "tools/call"), ("mcp-name", "echo")],
        vec![],
        vec![("mcp-protocol-version", "2099-12-31")],
    ] {
        let res = send_with(&base, &headers, &tool(1, "echo")).await;
        assert_eq!(res.status(), 200, "{headers:?}");
    }
    // Non-ASCII names travel base64-encoded: `=?base64?…?=` of the UTF-8 bytes.
    let res = send_with(
        &base,
        &[
            v,
            ("mcp-method", "tools/call"),
            ("mcp-name", "=?base64?w6ljaG8=?="),
        ],
        &tool(2, "écho"),
    )
    .await;
    assert_eq!(res.status(), 200);
    let res = send_with(
        &base,
        &[
            v,
            ("mcp-method", "resources/read"),
            ("mcp-name", "docs://a"),
        ],
        &call(json!(3), "resources/read", json!({"uri": "docs://a"})),
    )
    .await;
    assert_eq!(res.status(), 200);
    // server/discover is understood and public by default.
    let res = send_with(
        &base,
        &[v, ("mcp-method", "server/discover")],
        &call(
            json!(4),
            "server/discover",
            json!({"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}),
        ),
    )
    .await;
    assert_eq!(res.status(), 200);

    // Mismatches: 400 with -32020, answering the message's id.
    for (headers, body, id) in [
        (
            vec![("mcp-method", "tools/list")],
            tool(5, "echo"),
            json!(5),
        ),
        (
            vec![("mcp-method", "tools/call"), ("mcp-name", "echo")],
            tool(6, "delete_repo"),
            json!(6),
        ),
        (
            vec![("mcp-method", "tools/call")],
            tool(7, "echo"),
            json!(7),
        ),
        (vec![("mcp-name", "echo")], tool(8, "echo"), json!(8)),
        (
            vec![
                ("mcp-method", "tools/call"),
                ("mcp-name", "=?base64?w6ljaG8=?="),
            ],
            tool(9, "echo"),
            json!(9),
        ),
        (
            vec![("mcp-method", "tools/call"), ("mcp-name", "=?base64?!!?=")],
            tool(10, "echo"),
            json!(10),
        ),
        (
            vec![("mcp-method", "tools/list"), ("mcp-name", "echo")],
            call(json!(11), "tools/list", json!({})),
            json!(11),
        ),
        (
            vec![("mcp-method", "tools/call"), ("mcp-name", "echo")],
            json!({"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "delete_repo"}}),
            Value::Null,
        ),
        // A batch cannot match headers that mirror one message.
        (
            vec![("mcp-method", "tools/call"), ("mcp-name", "echo")],
            json!([tool(12, "echo")]),
            Value::Null,
        ),
    ] {
        let mut all = vec![v];
        all.extend(headers.iter().copied());
        let res = send_with(&base, &all, &body).await;
        let reply = refusal(res, 400).await;
        assert_eq!(
            reply["error"]["code"], HEADER_MISMATCH_CODE,
            "{headers:?} {body}"
        );
        assert_eq!(reply["id"], id, "{headers:?}");
        assert_eq!(reply["error"]["data"]["error"], "invalid_request");
    }
    // Duplicate headers are a mismatch too.
    let res = send_with(
        &base,
        &[
            ("mcp-method", "tools/call"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "echo"),
        ],
        &tool(13, "echo"),
    )
    .await;
    assert_eq!(
        refusal(res, 400).await["error"]["code"],
        HEADER_MISMATCH_CODE
    );
}

// ---- the policy is decided once ---------------------------------------------------------

#[tokio::test]
async fn a_refusal_runs_the_resolver_once_and_keeps_its_challenge() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let base = serve(move |base| {
        Router::new().route("/mcp", post(mcp_json)).layer(
            McpAuth::builder()
                .api_keys(keys())
                .bearer(JwtVerifier::hs256(SECRET).build().unwrap())
                .public_base_url(base)
                // The resolver's policy (OAuth only) differs from the default (both), so a
                // refusal rendered without the recorded decision would show it.
                .resolver(move |_| {
                    counted.fetch_add(1, Ordering::SeqCst);
                    Some(EndpointPolicy::oauth_only())
                })
                .mcp_permissions(McpRules::new().path("/mcp"))
                .build()
                .unwrap(),
        )
    })
    .await;
    let res = send(
        &base,
        "/mcp",
        Cred::Token(&token("tools/list")),
        &tool(1, "rm"),
    )
    .await;
    let challenge = challenge(&res).expect("an OAuth endpoint challenges");
    assert!(
        challenge.contains(r#"error="insufficient_scope""#),
        "{challenge}"
    );
    let body = refusal(res, 403).await;
    assert_eq!(body["error"]["code"], INSUFFICIENT_SCOPE_CODE);
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the resolver ran once");
}
