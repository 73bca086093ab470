//! Runs the `rmcp_server` example (the official Rust MCP SDK behind the auth stack) and talks
//! to it with rmcp's own streamable HTTP client: initialize, tools/list, tools/call, with an
//! `X-API-Key` header and with a bearer token.

use crate::common;
use crate::example_process;

use std::collections::HashMap;
use std::time::Duration;

use example_process::Example;
use http::{HeaderName, HeaderValue};
use rmcp::model::{CallToolRequestParams, CallToolResult, ContentBlock};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;
use serde_json::{json, Value};

const KEYS: &str = r#"{"k-alice":{"name":"Alice","userId":"alice","permissions":["*"]},"k-echo":{"name":"Echo only","permissions":["tools/call:echo"]}}"#;
const SECRET: &str = "rmcp-example-test-secret-of-32-bytes!";
const ISSUER: &str = "https://issuer.example";

async fn start(vars: &[(&str, &str)]) -> Option<Example> {
    example_process::start("rmcp_server", vars).await
}

pub(crate) enum Cred<'a> {
    Key(&'a str),
    Token(&'a str),
}

/// initialize + notifications/initialized over streamable HTTP, with the credential on
/// every request.
pub(crate) async fn connect(base: &str, cred: Cred<'_>) -> RunningService<RoleClient, ()> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(format!("{base}/mcp"));
    match cred {
        Cred::Key(key) => {
            let mut headers = HashMap::new();
            headers.insert(
                HeaderName::from_static("x-api-key"),
                HeaderValue::from_str(key).unwrap(),
            );
            config = config.custom_headers(headers);
        }
        // rmcp adds the `Bearer ` prefix.
        Cred::Token(token) => config = config.auth_header(token),
    }
    let transport = StreamableHttpClientTransport::with_client(reqwest::Client::new(), config);
    let client = tokio::time::timeout(Duration::from_secs(10), ().serve(transport))
        .await
        .expect("initialize timed out")
        .expect("initialize");
    let info = client.peer_info().expect("server info after initialize");
    let server = info.server_info.as_ref().expect("serverInfo");
    assert_eq!(server.name, "tower-mcp-auth-rmcp-example");
    client
}

pub(crate) async fn tool_names(client: &RunningService<RoleClient, ()>) -> Vec<String> {
    let mut names: Vec<String> = client
        .list_all_tools()
        .await
        .expect("tools/list")
        .into_iter()
        .map(|t| t.name.into_owned())
        .collect();
    names.sort();
    names
}

pub(crate) fn text(result: &CallToolResult) -> &str {
    match result.content.first() {
        Some(ContentBlock::Text(t)) => &t.text,
        other => panic!("expected text content, got {other:?}"),
    }
}

pub(crate) async fn whoami(client: &RunningService<RoleClient, ()>) -> Value {
    let result = client
        .call_tool(CallToolRequestParams::new("whoami"))
        .await
        .expect("tools/call whoami");
    serde_json::from_str(text(&result)).expect("whoami answers JSON")
}

pub(crate) async fn echo(
    client: &RunningService<RoleClient, ()>,
    message: &str,
) -> Result<CallToolResult, rmcp::ServiceError> {
    let args = json!({"text": message});
    client
        .call_tool(
            CallToolRequestParams::new("echo").with_arguments(args.as_object().unwrap().clone()),
        )
        .await
}

/// A token as a standard identity provider issues it: no `scope` claim when `scope` is `None`.
fn idp_token(base: &str, sub: &str, scope: Option<&str>) -> String {
    tower_mcp_auth::bearer::install_crypto_provider();
    let mut claims = json!({"sub": sub, "iss": ISSUER, "aud": format!("{base}/mcp"),
        "exp": common::now() + 600});
    if let Some(scope) = scope {
        claims["scope"] = json!(scope);
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn token(base: &str, sub: &str, scope: &str) -> String {
    tower_mcp_auth::bearer::install_crypto_provider();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": sub, "iss": ISSUER, "aud": format!("{base}/mcp"),
            "exp": common::now() + 600, "scope": scope}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn api_key_client_initializes_lists_and_calls_tools() {
    let Some(s) = start(&[("MCP_API_KEYS", KEYS), ("MCP_TOOL_PERMISSIONS", "true")]).await else {
        return;
    };
    let client = connect(&s.base, Cred::Key("k-alice")).await;
    assert_eq!(tool_names(&client).await, ["echo", "whoami"]);
    let me = whoami(&client).await;
    assert_eq!(me["user_id"], "alice");
    assert_eq!(me["method"], "api_key");
    assert_eq!(me["name"], "Alice");
    assert_eq!(text(&echo(&client, "hello").await.unwrap()), "hello");
    client.cancel().await.unwrap();

    // A key allowed only `echo` sees only `echo`, and whoami is refused.
    let client = connect(&s.base, Cred::Key("k-echo")).await;
    assert_eq!(tool_names(&client).await, ["echo"]);
    assert_eq!(text(&echo(&client, "hi").await.unwrap()), "hi");
    let refused = client
        .call_tool(CallToolRequestParams::new("whoami"))
        .await
        .expect_err("whoami needs tools/call:whoami");
    // api-key-only mode: a 403 without a Bearer challenge.
    assert!(refused.auth_challenge().is_none(), "{refused:?}");
    assert!(refused.to_string().contains("403"), "{refused}");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn bearer_token_client_in_both_mode() {
    let Some(s) = start(&[
        ("MCP_API_KEYS", KEYS),
        ("ENABLE_OAUTH", "true"),
        ("JWT_SECRET", SECRET),
        ("JWT_ISSUER", ISSUER),
        ("MCP_TOOL_PERMISSIONS", "true"),
    ])
    .await
    else {
        return;
    };
    // The metadata document the challenge points at is served, open.
    let meta: Value = reqwest::get(format!(
        "{}/.well-known/oauth-protected-resource/mcp",
        s.base
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(meta["resource"], format!("{}/mcp", s.base));

    let full = token(&s.base, "carol", "tools/call");
    let client = connect(&s.base, Cred::Token(&full)).await;
    assert_eq!(tool_names(&client).await, ["echo", "whoami"]);
    let me = whoami(&client).await;
    assert_eq!(me["user_id"], "carol");
    assert_eq!(me["method"], "bearer");
    assert_eq!(
        text(&echo(&client, "over oauth").await.unwrap()),
        "over oauth"
    );
    client.cancel().await.unwrap();

    // A narrower token: whoami only. tools/list is trimmed, echo gets the step-up challenge.
    let narrow = token(&s.base, "dave", "tools/call:whoami");
    let client = connect(&s.base, Cred::Token(&narrow)).await;
    assert_eq!(tool_names(&client).await, ["whoami"]);
    assert_eq!(whoami(&client).await["user_id"], "dave");
    let refused = echo(&client, "no").await.expect_err("echo is not in scope");
    let challenge = refused
        .auth_challenge()
        .expect("insufficient_scope challenge");
    assert!(
        challenge.contains(r#"error="insufficient_scope""#),
        "{challenge}"
    );
    assert!(
        challenge.contains(r#"scope="tools/call:echo""#),
        "{challenge}"
    );
    assert!(
        challenge.contains(&format!(
            "resource_metadata=\"{}/.well-known/oauth-protected-resource/mcp\"",
            s.base
        )),
        "{challenge}"
    );
    client.cancel().await.unwrap();

    // The API key still works next to OAuth.
    let client = connect(&s.base, Cred::Key("k-alice")).await;
    assert_eq!(whoami(&client).await["method"], "api_key");
    client.cancel().await.unwrap();
}

/// Clients look for the metadata at the path-inserted URL and at the root; an api-key-only
/// server serves none, so clients never start OAuth against it.
#[tokio::test]
async fn metadata_at_both_well_known_urls_only_when_oauth_is_on() {
    let Some(s) = start(&[
        ("MCP_API_KEYS", KEYS),
        ("ENABLE_OAUTH", "true"),
        ("JWT_SECRET", SECRET),
    ])
    .await
    else {
        return;
    };
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let res = reqwest::get(format!("{}{path}", s.base)).await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let meta: Value = res.json().await.unwrap();
        assert_eq!(meta["resource"], format!("{}/mcp", s.base), "{path}");
    }
    drop(s);

    let Some(s) = start(&[("MCP_API_KEYS", KEYS)]).await else {
        return;
    };
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let res = reqwest::get(format!("{}{path}", s.base)).await.unwrap();
        assert_eq!(res.status(), 404, "{path}");
    }
}

/// DNS-rebinding protection is on by default (the example binds 127.0.0.1): a foreign
/// `Origin` is 403 even in open mode; a loopback page's and an origin-less request pass.
#[tokio::test]
async fn open_mode_refuses_a_foreign_origin() {
    let Some(s) = start(&[("ENABLE_API_KEY_AUTH", "false")]).await else {
        return;
    };
    let init = |origin: Option<String>| {
        let mut req = reqwest::Client::new()
            .post(format!("{}/mcp", s.base))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        if let Some(origin) = origin {
            req = req.header("origin", origin);
        }
        req.body(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#)
            .send()
    };
    let res = init(Some("http://evil.example.com".into())).await.unwrap();
    common::assert_error(res, 403, "invalid_origin").await;
    let res = init(Some(s.base.clone())).await.unwrap();
    assert_eq!(res.status(), 200);
    let res = init(None).await.unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn missing_credentials_are_refused_before_mcp() {
    let Some(s) = start(&[("MCP_API_KEYS", KEYS)]).await else {
        return;
    };
    let res = reqwest::Client::new()
        .post(format!("{}/mcp", s.base))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#)
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("www-authenticate").is_none());
    common::assert_error(res, 401, "authentication_required").await;
}

#[tokio::test]
async fn wrong_keys_lock_the_client_out() {
    let Some(s) = start(&[
        ("MCP_API_KEYS", KEYS),
        ("FAILED_AUTH_LIMIT", "2"),
        ("FAILED_AUTH_WINDOW_SECS", "60"),
    ])
    .await
    else {
        return;
    };
    let post = |key: &'static str| {
        reqwest::Client::new()
            .post(format!("{}/mcp", s.base))
            .header("x-api-key", key)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#)
            .send()
    };
    for _ in 0..2 {
        common::assert_error(post("wrong").await.unwrap(), 401, "invalid_credentials").await;
    }
    // Locked out: even the right key waits.
    let res = post("k-alice").await.unwrap();
    assert!(res.headers().get("retry-after").is_some());
    common::assert_error(res, 429, "too_many_requests").await;
}

fn oauth_env<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut vars = vec![
        ("ENABLE_API_KEY_AUTH", "false"),
        ("ENABLE_OAUTH", "true"),
        ("JWT_SECRET", SECRET),
        ("JWT_ISSUER", ISSUER),
    ];
    vars.extend_from_slice(extra);
    vars
}

/// Issue 11: with `OAUTH_SCOPES=mcp:tools` and a token holding `openid mcp:tools`, as a
/// standard identity provider issues it, the SDK client saw an empty tool list.
#[tokio::test]
async fn standard_idp_scopes_list_and_call_every_tool() {
    let Some(s) = start(&oauth_env(&[("OAUTH_SCOPES", "mcp:tools")])).await else {
        return;
    };
    let full = idp_token(&s.base, "carol", Some("openid mcp:tools"));
    let client = connect(&s.base, Cred::Token(&full)).await;
    assert_eq!(tool_names(&client).await, ["echo", "whoami"]);
    let me = whoami(&client).await;
    assert_eq!(me["user_id"], "carol");
    assert_eq!(me["issuer"], ISSUER);
    assert_eq!(text(&echo(&client, "hi").await.unwrap()), "hi");
    client.cancel().await.unwrap();

    // Per-tool permissions on: the default mapping lets `mcp:tools` do everything.
    let Some(s) = start(&oauth_env(&[
        ("OAUTH_SCOPES", "mcp:tools"),
        ("MCP_TOOL_PERMISSIONS", "true"),
    ]))
    .await
    else {
        return;
    };
    let full = idp_token(&s.base, "carol", Some("openid mcp:tools"));
    let client = connect(&s.base, Cred::Token(&full)).await;
    assert_eq!(tool_names(&client).await, ["echo", "whoami"]);
    assert_eq!(text(&echo(&client, "hi").await.unwrap()), "hi");
    client.cancel().await.unwrap();

    // The 401 names the scope to ask for.
    let res = reqwest::Client::new()
        .post(format!("{}/mcp", s.base))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#)
        .send()
        .await
        .unwrap();
    let challenge = common::challenge(&res).expect("a Bearer challenge");
    assert!(challenge.contains(r#"scope="mcp:tools""#), "{challenge}");
    assert!(challenge.contains("resource_metadata="), "{challenge}");
    common::assert_error(res, 401, "authentication_required").await;
}

/// Issue 11: an HS256 token without `scope` authenticated, then got 403 on every tools/call.
#[tokio::test]
async fn token_without_scope_calls_tools_by_default() {
    let Some(s) = start(&oauth_env(&[])).await else {
        return;
    };
    let bare = idp_token(&s.base, "erin", None);
    let client = connect(&s.base, Cred::Token(&bare)).await;
    assert_eq!(tool_names(&client).await, ["echo", "whoami"]);
    assert_eq!(whoami(&client).await["user_id"], "erin");
    client.cancel().await.unwrap();
}

/// An identity provider issuing the scope `*` grants nothing special: with per-tool
/// permissions on, the token sees no tool and its call is refused.
#[tokio::test]
async fn wildcard_scope_from_the_idp_grants_no_tool() {
    let Some(s) = start(&oauth_env(&[("MCP_TOOL_PERMISSIONS", "true")])).await else {
        return;
    };
    let star = idp_token(&s.base, "mallory", Some("* tools/call:*"));
    let client = connect(&s.base, Cred::Token(&star)).await;
    assert!(tool_names(&client).await.is_empty());
    let refused = echo(&client, "no").await.expect_err("`*` is just a name");
    let challenge = refused
        .auth_challenge()
        .expect("insufficient_scope challenge");
    assert!(
        challenge.contains(r#"error="insufficient_scope""#),
        "{challenge}"
    );
    client.cancel().await.unwrap();
}

/// `MCP_SCOPE_PERMISSIONS` maps the identity provider's scopes to tools; a refusal names
/// the scope to ask for (step-up), not the internal permission.
#[tokio::test]
async fn scope_permissions_from_the_environment() {
    let Some(s) = start(&oauth_env(&[
        ("MCP_TOOL_PERMISSIONS", "true"),
        (
            "MCP_SCOPE_PERMISSIONS",
            r#"{"repo:read": ["tools/call:echo"], "mcp:tools": ["tools/call:*"]}"#,
        ),
    ]))
    .await
    else {
        return;
    };
    // `repo` is the parent of `repo:read`: it gets its tools.
    for scope in ["openid repo:read", "repo"] {
        let narrow = idp_token(&s.base, "dave", Some(scope));
        let client = connect(&s.base, Cred::Token(&narrow)).await;
        assert_eq!(tool_names(&client).await, ["echo"], "{scope}");
        assert_eq!(text(&echo(&client, "hi").await.unwrap()), "hi");
        let refused = client
            .call_tool(CallToolRequestParams::new("whoami"))
            .await
            .expect_err("whoami needs mcp:tools");
        let challenge = refused
            .auth_challenge()
            .expect("insufficient_scope challenge");
        assert!(challenge.contains(r#"scope="mcp:tools""#), "{challenge}");
        client.cancel().await.unwrap();
    }
}
