//! Quickstart: an MCP-style server in "both" mode with a generated API key and a signed demo
//! token.
//!
//! ```sh
//! cargo run --example quickstart              # serve and print curl lines to paste
//! cargo run --example quickstart -- --self-test  # run those requests itself and exit
//! ```
//!
//! Binds `MCP_AUTH_ADDR` (default 127.0.0.1:8080, or a free port if that one is taken).

#[path = "common/mcp.rs"]
mod mcp;
#[path = "common/request_log.rs"]
mod request_log;

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::routing::{get, get_service, post};
use axum::Router;
use serde_json::json;
use tower_mcp_auth::metadata::{metadata_path, resource_url};
use tower_mcp_auth::{
    api_key::generate_api_key, metadata::ProtectedResourceMetadata, ApiKeyRegistry, ApiKeySpec,
    EndpointPolicy, JwtVerifier, McpAuth,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let self_test = std::env::args().any(|a| a == "--self-test");
    if !self_test {
        request_log::init_tracing();
    }

    let listener = bind(self_test).await?;
    let addr: SocketAddr = listener.local_addr()?;
    let base = format!("http://{addr}");
    let resource = resource_url(&base, "/mcp");

    // A fresh API key for user "demo-user": only its SHA-256 hash goes into the registry.
    let key = generate_api_key()?;
    let keys = ApiKeyRegistry::builder()
        .hashed_key(
            key.hash(),
            ApiKeySpec::new("quickstart key")
                .user_id("demo-user")
                .role("admin")
                .permissions(["*"]),
        )
        .build();

    // A random HS256 secret and a one-hour demo token for the same user, issued for this
    // resource (RFC 8707 audience).
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret)?;
    let verifier = JwtVerifier::hs256(&secret)
        .audience(resource.clone())
        .build()?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": "demo-user", "aud": resource, "scope": "tools/list tools/call",
                "iat": now, "exp": now + 3600}),
        &jsonwebtoken::EncodingKey::from_secret(&secret),
    )?;

    let auth = McpAuth::builder()
        .api_keys(keys)
        .bearer(verifier)
        .public_base_url(base.clone())
        .endpoint("/health", EndpointPolicy::open())
        .endpoint(metadata_path("/mcp"), EndpointPolicy::open())
        .endpoint("/mcp", EndpointPolicy::both())
        .build()?;

    let metadata = ProtectedResourceMetadata::new(resource.clone())
        .scopes_supported(["tools/list", "tools/call"])
        .resource_name("tower-mcp-auth quickstart");
    let app = Router::new()
        .route("/mcp", post(mcp::handle))
        .route("/health", get(|| async { "ok" }))
        .route(&metadata_path("/mcp"), get_service(metadata.into_service()));
    let app = request_log::with_auth_and_logging(app, auth);

    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });

    if self_test {
        let result = run_self_test(&base, key.plaintext(), &token).await;
        server.abort();
        return result;
    }

    let body = r#"'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami"}}'"#;
    let json = "-H 'content-type: application/json'";
    println!("tower-mcp-auth quickstart listening on {base} (mode: both)\n");
    println!("# 1. health, no auth:\ncurl -s {base}/health\n");
    println!("# 2. no credentials -> 401 with a Bearer challenge:\ncurl -si -X POST {base}/mcp {json} -d {body}\n");
    println!(
        "# 3. API key:\ncurl -s -X POST {base}/mcp {json} -H 'X-API-Key: {}' -d {body}\n",
        key.plaintext()
    );
    println!("# 4. bearer token:\ncurl -s -X POST {base}/mcp {json} -H 'Authorization: Bearer {token}' -d {body}\n");
    println!("# 5. a wrong key -> 401 invalid_credentials:\ncurl -s -X POST {base}/mcp {json} -H 'X-API-Key: wrong' -d {body}\n");
    println!(
        "# 6. protected resource metadata (RFC 9728):\ncurl -s {base}{}\n",
        metadata_path("/mcp")
    );
    println!("Press Ctrl-C to stop.");
    server.await??;
    Ok(())
}

async fn bind(ephemeral: bool) -> std::io::Result<tokio::net::TcpListener> {
    if ephemeral {
        return tokio::net::TcpListener::bind("127.0.0.1:0").await;
    }
    let addr = std::env::var("MCP_AUTH_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".into());
    match tokio::net::TcpListener::bind(&addr).await {
        Ok(l) => Ok(l),
        Err(e) if std::env::var("MCP_AUTH_ADDR").is_err() => {
            eprintln!("{addr} is not available ({e}); using a free port instead");
            tokio::net::TcpListener::bind("127.0.0.1:0").await
        }
        Err(e) => Err(e),
    }
}

/// Sends the printed requests and checks each answer, so CI proves the quickstart works.
async fn run_self_test(
    base: &str,
    key: &str,
    token: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let client = reqwest::Client::new();
    let call =
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "whoami"}});
    let mcp = || client.post(format!("{base}/mcp")).json(&call);

    let health = client.get(format!("{base}/health")).send().await?;
    check("health is open", health.status() == 200)?;

    let res = mcp().send().await?;
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap_or("").to_owned());
    check("no credentials -> 401", res.status() == 401)?;
    check(
        "challenge names the metadata",
        challenge.is_some_and(|c| {
            c.contains(&format!(
                "resource_metadata=\"{base}/.well-known/oauth-protected-resource/mcp\""
            ))
        }),
    )?;

    let res: serde_json::Value = mcp().header("x-api-key", key).send().await?.json().await?;
    check(
        "API key -> demo-user",
        res["caller"]["user_id"] == "demo-user" && res["caller"]["method"] == "api_key",
    )?;

    let res: serde_json::Value = mcp().bearer_auth(token).send().await?.json().await?;
    check(
        "bearer token -> demo-user",
        res["caller"]["user_id"] == "demo-user" && res["caller"]["method"] == "bearer",
    )?;

    let res = mcp().header("x-api-key", "wrong").send().await?;
    check("wrong key -> 401", res.status() == 401)?;
    let body: serde_json::Value = res.json().await?;
    check(
        "wrong key -> invalid_credentials",
        body["error"] == "invalid_credentials",
    )?;

    let meta: serde_json::Value = client
        .get(format!("{base}/.well-known/oauth-protected-resource/mcp"))
        .send()
        .await?
        .json()
        .await?;
    check(
        "metadata resource is the exact URL",
        meta["resource"] == format!("{base}/mcp"),
    )?;
    println!("quickstart self-test: all checks passed");
    Ok(())
}

fn check(what: &str, ok: bool) -> Result<(), Box<dyn std::error::Error>> {
    if ok {
        println!("ok   {what}");
        Ok(())
    } else {
        Err(format!("FAIL {what}").into())
    }
}
