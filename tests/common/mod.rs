//! Shared fixtures for the integration tests: keys, tokens, a real axum server on
//! 127.0.0.1:0 and assertions for the error contract.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::Extension;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tower_mcp_auth::{api_key::KeyHash, ApiKeyRegistry, ApiKeySpec, Identity};

pub const SECRET: &[u8] = b"integration-test-secret-of-32-bytes-or-more";
pub const ALICE_KEY: &str = "alice-key-0001";
pub const BOB_KEY: &str = "bob-key-0001";
pub const PUBLIC_KEY: &str = "public-key-0001";
pub const EXPIRED_KEY: &str = "expired-key-0001";
pub const REVOKED_KEY: &str = "revoked-key-0001";

pub fn registry() -> ApiKeyRegistry {
    ApiKeyRegistry::builder()
        .key(
            ALICE_KEY,
            ApiKeySpec::new("alice laptop")
                .user_id("alice")
                .role("admin")
                .permissions(["*"]),
        )
        .key(
            BOB_KEY,
            ApiKeySpec::new("bob laptop")
                .user_id("bob")
                .permissions(["tools/list"]),
        )
        .key(
            PUBLIC_KEY,
            ApiKeySpec::new("shared connector").permissions(["*"]),
        )
        .key(
            EXPIRED_KEY,
            ApiKeySpec::new("old")
                .user_id("alice")
                .expires_at(UNIX_EPOCH + std::time::Duration::from_secs(1_000_000)),
        )
        .revoked_key(
            KeyHash::of(REVOKED_KEY),
            ApiKeySpec::new("leaked").user_id("alice"),
        )
        .build()
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims of a valid RFC 9068-style access token for `sub`.
pub fn claims(sub: &str) -> Value {
    json!({"sub": sub, "exp": now() + 3600, "iat": now(), "scope": "tools/call tools/list"})
}

pub fn hs256(claims: &Value) -> String {
    tower_mcp_auth::bearer::install_crypto_provider();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

pub fn token(sub: &str) -> String {
    hs256(&claims(sub))
}

/// Handler that answers with what it learnt about the caller.
pub async fn whoami(identity: Option<Extension<Identity>>) -> Json<Value> {
    Json(match identity {
        Some(Extension(id)) => json!({
            "method": id.method().as_str(),
            "name": id.name(),
            "user_id": id.user_id(),
            "role": id.role(),
            "permissions": id.permissions(),
            "scopes": id.scopes(),
            "issuer": id.issuer(),
        }),
        None => json!({"method": null}),
    })
}

/// A router with one route per mode plus private and scoped endpoints.
pub fn routes() -> Router {
    Router::new()
        .route("/open", post(whoami))
        .route("/key", post(whoami))
        .route("/both", post(whoami))
        .route("/oauth", post(whoami))
        .route("/mcp", post(whoami))
        .route("/users/alice/mcp", post(whoami))
        .route("/scoped", post(whoami))
        .route("/health", get(|| async { "ok" }))
}

/// Binds 127.0.0.1:0, builds the app with the server's base URL and serves it.
pub async fn serve<F>(make: F) -> String
where
    F: FnOnce(&str) -> Router,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let base = format!("http://{addr}");
    let app = with_client_addr(make(&base));
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    base
}

/// Without the `axum` feature the crate cannot read axum's `ConnectInfo`; copy it into the
/// crate's own `ClientAddr`, as a hyper or tonic server would. With the feature, the crate
/// reads `ConnectInfo` itself and this is a no-op.
fn with_client_addr(app: Router) -> Router {
    #[cfg(not(feature = "axum"))]
    let app = app.layer(axum::middleware::from_fn(
        |axum::extract::ConnectInfo(addr): axum::extract::ConnectInfo<SocketAddr>,
         mut req: axum::extract::Request,
         next: axum::middleware::Next| async move {
            req.extensions_mut()
                .insert(tower_mcp_auth::rate_limit::ClientAddr(addr));
            next.run(req).await
        },
    ));
    app
}

pub fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// Checks the whole error contract and returns the body.
pub async fn assert_error(res: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(res.status().as_u16(), status, "status of a {code} error");
    assert_eq!(res.headers()["content-type"], "application/json");
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], code, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{body}"
    );
    let ts = body["timestamp"].as_str().expect("timestamp");
    assert!(
        ts.len() == 24 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
        "{ts}"
    );
    body
}

pub fn challenge(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
}
