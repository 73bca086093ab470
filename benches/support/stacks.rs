//! The stacks the hot-path measurements compare, built once here for `hotpath` (callgrind)
//! and `load` (loopback throughput), so both measure exactly the same thing.

use std::sync::Arc;
use std::time::Duration;

use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;
use tower_mcp_auth::audit::{AuditEvent, AuditLayer, AuditSink};
use tower_mcp_auth::store::{MemoryStore, Quota, StateStore};
use tower_mcp_auth::{
    bearer::CachedVerifier,
    rate_limit::{FailedAuthLimitLayer, RateLimitLayer},
    ApiKeyRegistry, ApiKeySpec, EndpointPolicy, JwtVerifier, McpAuth, McpAuthBuilder,
};

const SECRET: &[u8] = b"bench-secret-that-is-at-least-32-bytes!!";
/// A fixed key as long as a generated one (53 bytes: one SHA-256 block), so every run hashes
/// the same bytes.
pub const KEY: &str = "hotpath-bench-key-0123456789abcdefghijklmnopqrstuvwxy";
const BASE_URL: &str = "http://127.0.0.1:8080";

/// Every stack name, bare first. `metered` needs the `metrics` feature.
pub const STACKS: &[&str] = &[
    "bare",
    "key",
    "limited",
    "audited",
    "audited_events",
    "metered",
    "key_audited",
    "key_events",
    "key_metered",
    "cached_token",
    "uncached_token",
];

/// An enabled audit sink that only looks at each event: what building events costs, without
/// a queue or a writer.
struct Discard;

impl AuditSink for Discard {
    fn record(&self, event: AuditEvent) {
        std::hint::black_box(event);
    }
}

/// The handler every stack wraps: a small JSON answer, like an MCP result.
fn handler_router() -> Router {
    Router::new().route(
        "/mcp",
        post(|| async { Json(json!({"jsonrpc": "2.0", "id": 1, "result": {}})) }),
    )
}

fn base() -> McpAuthBuilder {
    let registry = ApiKeyRegistry::builder()
        .key(
            KEY,
            ApiKeySpec::new("bench").user_id("u").permissions(["*"]),
        )
        .build();
    McpAuth::builder()
        .api_keys(registry)
        .public_base_url(BASE_URL)
        .endpoint("/mcp", EndpointPolicy::both())
}

/// `base` with a bearer verifier, the failed-auth lockout and a per-identity quota (large
/// enough never to refuse) on one `MemoryStore`: the full stack.
fn limited() -> McpAuthBuilder {
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    base()
        .bearer(verifier())
        .rate_limit(RateLimitLayer::from_shared(
            store.clone(),
            Quota::new(1_000_000_000, Duration::from_secs(1)).expect("quota"),
        ))
        .failed_auth_limit(FailedAuthLimitLayer::from_shared(
            store,
            Quota::per_minute(20).expect("quota"),
        ))
}

fn verifier() -> JwtVerifier {
    JwtVerifier::hs256(SECRET)
        .issuer("https://as")
        .audience(format!("{BASE_URL}/mcp"))
        .build()
        .expect("verifier")
}

/// An HS256 access token the stacks accept.
pub fn token() -> String {
    tower_mcp_auth::bearer::install_crypto_provider();
    let claims = json!({"sub": "alice", "scope": "mcp:tools", "iss": "https://as",
        "aud": format!("{BASE_URL}/mcp"), "exp": 4_000_000_000u64, "iat": 1_700_000_000u64});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET),
    )
    .expect("encode")
}

/// The router for `stack` and the credential header its requests carry, or `None` for an
/// unknown name.
pub fn build(stack: &str) -> Option<(Router, (&'static str, String))> {
    let key = ("x-api-key", KEY.to_owned());
    let bearer = ("authorization", format!("Bearer {}", token()));
    Some(match stack {
        "bare" => (handler_router(), key),
        "key" => (
            handler_router().layer(base().bearer(verifier()).build().expect("stack")),
            key,
        ),
        "limited" => (
            handler_router().layer(limited().build().expect("stack")),
            key,
        ),
        // The same with the audit trail's default sink, `tracing` at INFO, filtered off (no
        // subscriber is installed here).
        "audited" => {
            let layer = limited().audit(AuditLayer::tracing());
            (handler_router().layer(layer.build().expect("stack")), key)
        }
        // The same with a sink that wants every event.
        "audited_events" => {
            let layer = limited().audit(AuditLayer::new(Discard));
            (handler_router().layer(layer.build().expect("stack")), key)
        }
        // `audited` plus the metrics, recorded by a Prometheus recorder.
        #[cfg(feature = "metrics")]
        "metered" => {
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .install_recorder()
                .expect("the only recorder");
            let layer = limited().audit(AuditLayer::tracing()).metrics();
            (handler_router().layer(layer.build().expect("stack")), key)
        }
        // `key` (the full stack without the store-backed limiters, whose incremental sweep
        // depends on the clock and moves the count by a few thousand instructions between
        // runs) with the audit layer: the same comparison, repeatable to the instruction.
        "key_audited" => {
            let layer = base().bearer(verifier()).audit(AuditLayer::tracing());
            (handler_router().layer(layer.build().expect("stack")), key)
        }
        "key_events" => {
            let layer = base().bearer(verifier()).audit(AuditLayer::new(Discard));
            (handler_router().layer(layer.build().expect("stack")), key)
        }
        #[cfg(feature = "metrics")]
        "key_metered" => {
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .install_recorder()
                .expect("the only recorder");
            let layer = base()
                .bearer(verifier())
                .audit(AuditLayer::tracing())
                .metrics();
            (handler_router().layer(layer.build().expect("stack")), key)
        }
        "cached_token" => (
            handler_router().layer(
                base()
                    .bearer(CachedVerifier::new(verifier()))
                    .build()
                    .expect("stack"),
            ),
            bearer,
        ),
        "uncached_token" => (
            handler_router().layer(base().bearer(verifier()).build().expect("stack")),
            bearer,
        ),
        _ => return None,
    })
}
