//! Metrics: an MCP-style server whose auth decisions, token verifications, cache lookups,
//! store operations, lockouts and quota refusals are exported in Prometheus text format at
//! `/metrics` (feature `metrics`; the recorder is `metrics-exporter-prometheus`, any other
//! `metrics` recorder works the same way).
//!
//! ```sh
//! cargo run --example metrics --features metrics
//! curl -s -X POST localhost:8080/mcp -H 'x-api-key: demo-key-0001' \
//!      -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami"}}'
//! curl -s localhost:8080/metrics | grep mcp_auth_
//! ```
//!
//! Environment: `MCP_AUTH_ADDR` (default 127.0.0.1:8080), `MCP_API_KEYS` (default: the demo
//! key `demo-key-0001`, all permissions), `JWT_SECRET` (also accept HS256 bearer tokens,
//! verified once and then cached), `TOOL_QUOTA_PER_MINUTE` (calls of the `whoami` tool per
//! identity per minute, default 5). `/metrics` is served outside the auth stack: in
//! production, serve it on a port that only the scraper reaches.

#[path = "common/client_addr.rs"]
mod client_addr;
#[path = "common/mcp.rs"]
mod mcp;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use metrics_exporter_prometheus::PrometheusBuilder;
use tower_mcp_auth::api_key::RegistryError;
use tower_mcp_auth::bearer::CachedVerifier;
use tower_mcp_auth::rate_limit::{FailedAuthLimitLayer, RateLimitLayer, ToolQuotas};
use tower_mcp_auth::store::{MemoryStore, Quota, StateStore};
use tower_mcp_auth::{ApiKeyRegistry, ApiKeySpec, JwtVerifier, McpAuth, McpRules};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The process-wide recorder: every `metrics` call of the crate lands here.
    let prometheus = PrometheusBuilder::new().install_recorder()?;

    let keys = match ApiKeyRegistry::from_env() {
        Ok(keys) => keys,
        Err(RegistryError::NotSet) => ApiKeyRegistry::builder()
            .key(
                "demo-key-0001",
                ApiKeySpec::new("demo").user_id("demo").permissions(["*"]),
            )
            .build(),
        Err(e) => return Err(e.into()),
    };
    let per_minute: u32 = std::env::var("TOOL_QUOTA_PER_MINUTE")
        .unwrap_or_else(|_| "5".to_owned())
        .parse()?;

    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    let quotas = ToolQuotas::from_shared(store.clone())
        .limit("tools/call:whoami", Quota::per_minute(per_minute)?);
    let mut auth = McpAuth::builder()
        .api_keys(keys)
        .failed_auth_limit(FailedAuthLimitLayer::from_shared(
            store.clone(),
            Quota::per_minute(20)?,
        ))
        .rate_limit(RateLimitLayer::from_shared(store, Quota::per_minute(600)?))
        .mcp_permissions(McpRules::new().tool_quotas(quotas))
        // Counts every decision: `mcp_auth_decisions_total`.
        .metrics();
    if let Ok(secret) = std::env::var("JWT_SECRET") {
        let verifier = JwtVerifier::hs256(secret.as_bytes()).build()?;
        auth = auth.bearer(CachedVerifier::new(verifier));
    }

    let app = Router::new()
        .route("/mcp", post(mcp::handle))
        .layer(auth.build()?)
        // Added after `.layer`: not behind the auth stack.
        .route(
            "/metrics",
            get(move || std::future::ready(prometheus.render())),
        );
    let app = client_addr::with_client_addr(app);

    let addr = std::env::var("MCP_AUTH_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("MCP endpoint http://{addr}/mcp, metrics http://{addr}/metrics");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .await?;
    Ok(())
}
