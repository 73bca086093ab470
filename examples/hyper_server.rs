//! The auth stack on bare hyper 1 (with hyper-util), no web framework: a `tower::ServiceBuilder`
//! around a `service_fn`, served connection by connection. Configured like `four_modes`.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `MCP_AUTH_ADDR` | `127.0.0.1:8080` | bind address |
//! | `PUBLIC_BASE_URL` | `http://<bound address>` | externally visible URL (challenges, metadata) |
//! | `ENABLE_API_KEY_AUTH`, `ENABLE_OAUTH` | `true`, `false` | the mode of `POST /mcp` |
//! | `MCP_API_KEYS`, `USE_QUERY_PARAM_AUTH` | —, `true` | API keys, as in `four_modes` |
//! | `JWT_SECRET`, `JWT_ISSUER`, `JWT_AUDIENCE` | — | HS256 bearer tokens, as in `four_modes` |
//! | `FAILED_AUTH_LIMIT`, `FAILED_AUTH_WINDOW_SECS` | `20`, `60` | failed-auth lockout per client IP |
//! | `TRUSTED_PROXIES` | none | proxy addresses / CIDRs whose `CLIENT_IP_HEADER` gives the client IP |
//! | `CLIENT_IP_HEADER` | `X-Forwarded-For` | the one header read from trusted proxies: `X-Forwarded-For`, `Forwarded` or a single-address header (`CF-Connecting-IP`, `X-Real-IP`) |
//! | `STATE_STORE` | `memory` | where the lockout is counted, as in `four_modes` |
//!
//! Routes: `POST /mcp` (a minimal JSON-RPC MCP endpoint with tools `whoami` and `echo`, and
//! per-tool permissions: `tools/call` needs `tools/call:<tool>`), `GET /health` (open) and,
//! with OAuth on, `GET /.well-known/oauth-protected-resource/mcp`.
//!
//! ```sh
//! MCP_API_KEYS='{"k-echo":{"name":"Echo only","permissions":["tools/call:echo"]}}' \
//!   cargo run --example hyper_server
//! curl -s localhost:8080/mcp -H 'X-API-Key: k-echo' -H 'content-type: application/json' \
//!   -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami"}}'   # 403
//! ```

#[path = "common/env.rs"]
mod env;

use std::convert::Infallible;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde_json::{json, Value};
use tower::ServiceBuilder;
use tower_mcp_auth::metadata::{metadata_path, resource_url};
use tower_mcp_auth::{mcp::McpRequestBody, rate_limit::ClientAddr, Identity, McpRules};

use env::{env_or, AuthEnv, Error};

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("hyper_server: {e}");
        std::process::exit(2);
    }
}

async fn run() -> Result<(), Error> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    let addr = env_or("MCP_AUTH_ADDR", "127.0.0.1:8080");
    let auth_env = AuthEnv::from_env()?;
    let (lockout, state_store) = env::lockout_from_env().await?;

    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let bound = listener.local_addr()?;
    let base = env_or("PUBLIC_BASE_URL", &format!("http://{bound}"));
    let base = base.trim_end_matches('/').to_owned();

    let resource = resource_url(&base, "/mcp");
    let auth = auth_env
        .builder(&base, &resource)
        .await?
        .endpoint("/mcp", auth_env.mode())
        .mcp_permissions(
            McpRules::new()
                .public(["tools/list"])
                .filter_tools_list(true)
                .path("/mcp"),
        )
        .build()?;
    let metadata = auth_env.oauth.then(|| auth_env.metadata(&resource));
    let metadata_route = metadata_path("/mcp");

    // lockout (per client IP) → auth → MCP permissions → handler. `ServiceBuilder` lists
    // layers outermost first.
    let app = ServiceBuilder::new().layer(lockout).layer(auth).service_fn(
        move |req: Request<McpRequestBody<Incoming>>| {
            let metadata = metadata.clone();
            let metadata_route = metadata_route.clone();
            async move {
                let res = match (req.method(), req.uri().path()) {
                    (&Method::POST, "/mcp") => mcp(req).await,
                    (&Method::GET, "/health") => text(StatusCode::OK, "ok"),
                    (&Method::GET, path) if path == metadata_route => match &metadata {
                        Some(doc) => json_response(serde_json::to_value(doc).unwrap_or_default()),
                        None => text(StatusCode::NOT_FOUND, "not found"),
                    },
                    _ => text(StatusCode::NOT_FOUND, "not found"),
                };
                Ok::<_, Infallible>(res)
            }
        },
    );

    tracing::info!(%base, api_keys = auth_env.api_keys, oauth = auth_env.oauth, state_store, "hyper_server listening");
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        // Hand the peer address to the lockout layer, as axum's `ConnectInfo` would.
        let svc = ServiceBuilder::new()
            .map_request(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(ClientAddr(peer));
                req
            })
            .service(app.clone());
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc));
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %peer, "connection ended");
            }
        });
    }
}

/// A minimal MCP endpoint: `initialize`, `tools/list` and `tools/call` for `whoami` and
/// `echo`; notifications get 202. The permission layer has already checked every request.
async fn mcp(req: Request<McpRequestBody<Incoming>>) -> Response<Full<Bytes>> {
    let identity = req.extensions().get::<Identity>().cloned();
    let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
        return text(StatusCode::BAD_REQUEST, "unreadable body");
    };
    let Ok(message) = serde_json::from_slice::<Value>(&body) else {
        return text(StatusCode::BAD_REQUEST, "not JSON");
    };
    let Some(id) = message.get("id").cloned() else {
        return text(StatusCode::ACCEPTED, "");
    };
    let result = match message["method"].as_str() {
        Some("initialize") => json!({
            "protocolVersion": "2025-06-18",
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "tower-mcp-auth-hyper-example", "version": env!("CARGO_PKG_VERSION")}
        }),
        Some("tools/list") => json!({"tools": [
            {"name": "whoami", "inputSchema": {"type": "object"}},
            {"name": "echo", "inputSchema": {"type": "object",
                "properties": {"text": {"type": "string"}}, "required": ["text"]}}
        ]}),
        Some("tools/call") => {
            let text = match message["params"]["name"].as_str() {
                Some("whoami") => json!({
                    "user_id": identity.as_ref().and_then(|i| i.user_id()),
                    "method": identity.as_ref().map(|i| i.method().as_str()),
                })
                .to_string(),
                Some("echo") => message["params"]["arguments"]["text"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                _ => return rpc_error(id, -32602, "unknown tool"),
            };
            json!({"content": [{"type": "text", "text": text}]})
        }
        Some("ping") => json!({}),
        _ => return rpc_error(id, -32601, "method not found"),
    };
    json_response(json!({"jsonrpc": "2.0", "id": id, "result": result}))
}

fn rpc_error(id: Value, code: i64, message: &str) -> Response<Full<Bytes>> {
    json_response(json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}))
}

fn json_response(value: Value) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from(value.to_string())));
    res.headers_mut().insert(
        CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    res
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *res.status_mut() = status;
    res
}
