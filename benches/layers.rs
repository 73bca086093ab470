//! Per-request cost of each layer and of the full stack, each beside a bare service in the
//! same run.
//!
//! Targets (see the README for measured figures):
//! - valid API key path: at most 3x one SHA-256 of the key (`api_key/sha256_of_key`);
//! - HS256 JWT verification: at most 1.2x a bare `jsonwebtoken::decode` of the same token;
//! - full stack on a valid key: under 1 µs added per request, on a bare service and in an
//!   axum `Router`;
//! - `McpPermissionsLayer` on a small `tools/call`: about 1 µs added (body read, JSON-RPC
//!   parse, permission match).
//!
//! Every request is built inside the timed closure, for the bare service too, so request
//! construction cancels out of the differences and the request is as warm in cache as a
//! freshly parsed one in a server.
//!
//! `cargo bench --bench layers`

use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use axum::body::Body;
use axum::routing::post;
use axum::Router;
use criterion::{criterion_group, criterion_main, Criterion};
use http::{Request, Response};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tower::{Layer, Service};
use tower_mcp_auth::store::{MemoryStore, Quota, StateStore};
use tower_mcp_auth::{
    api_key::{generate_api_key, ApiKeyLayer},
    bearer::BearerLayer,
    policy::EndpointPolicyLayer,
    rate_limit::{ClientAddr, FailedAuthLimitLayer, RateLimitLayer},
    ApiKeyRegistry, ApiKeySpec, EndpointPolicy, JwtVerifier, McpAuth,
};

const SECRET: &[u8] = b"bench-secret-that-is-at-least-32-bytes!!";

/// The innermost service: answers at once, like a cheap handler.
#[derive(Clone, Copy)]
struct Bare;

impl<B> Service<Request<B>> for Bare {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        black_box(&req);
        ready(Ok(Response::new(String::new())))
    }
}

/// Drives a future that completes without waiting (every future here does).
fn now<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn call<S, B>(svc: &mut S, req: Request<B>) -> S::Response
where
    S: Service<Request<B>>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    assert!(svc.poll_ready(&mut cx).is_ready());
    now(svc.call(req)).unwrap()
}

fn keyed_request(key: &str) -> Request<()> {
    Request::post("/mcp")
        .header("x-api-key", key)
        .body(())
        .unwrap()
}

/// What a server hands the stack: axum's `into_make_service_with_connect_info` (needed for
/// per-IP limits) has already put the peer address in the extensions, so their map exists.
fn served_request(key: &str) -> Request<()> {
    let mut req = keyed_request(key);
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            40000,
        ))));
    req
}

/// A served request that also carries the client address the lockout counts.
fn addressed_request(key: &str) -> Request<()> {
    let mut req = served_request(key);
    req.extensions_mut()
        .insert(ClientAddr(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            40000,
        ))));
    req
}

fn bench_api_key(c: &mut Criterion) {
    let (registry, plaintext) = generated_key();

    let mut g = c.benchmark_group("api_key");
    g.bench_function("sha256_of_key", |b| {
        b.iter(|| Sha256::digest(black_box(plaintext.as_bytes())))
    });
    // The floor under any authenticator: putting its outcome into an empty `http::Extensions`
    // (which allocates the map, its table and the boxed value) and dropping it again.
    let outcome = tower_mcp_auth::api_key::ApiKeyOutcome::Verified(
        tower_mcp_auth::Identity::builder(tower_mcp_auth::AuthMethod::ApiKey, "bench").build(),
    );
    g.bench_function("extensions_insert_and_drop", |b| {
        b.iter(|| {
            let mut ext = http::Extensions::new();
            ext.insert(black_box(outcome.clone()));
            black_box(ext)
        })
    });
    let mut bare = Bare;
    g.bench_function("bare_service", |b| {
        b.iter(|| call(&mut bare, keyed_request(&plaintext)))
    });
    let mut layered = ApiKeyLayer::new(registry).layer(Bare);
    g.bench_function("api_key_layer_valid_key", |b| {
        b.iter(|| call(&mut layered, keyed_request(&plaintext)))
    });
    g.bench_function("bare_service_served_request", |b| {
        b.iter(|| call(&mut bare, served_request(&plaintext)))
    });
    g.bench_function("api_key_layer_valid_key_served_request", |b| {
        b.iter(|| call(&mut layered, served_request(&plaintext)))
    });
    // The same pair with request construction outside the timed section (one call per
    // timing sample, so both include the same timer overhead).
    g.bench_function("bare_service_prebuilt_request", |b| {
        b.iter_batched(
            || served_request(&plaintext),
            |r| call(&mut bare, r),
            criterion::BatchSize::PerIteration,
        )
    });
    g.bench_function("api_key_layer_valid_key_prebuilt_request", |b| {
        b.iter_batched(
            || served_request(&plaintext),
            |r| call(&mut layered, r),
            criterion::BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn bench_jwt(c: &mut Criterion) {
    tower_mcp_auth::bearer::install_crypto_provider();
    let claims = json!({"sub": "alice", "scope": "tools/call tools/list", "iss": "https://as",
                        "aud": "https://mcp/mcp", "exp": 4_000_000_000u64, "iat": 1_700_000_000u64});
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    let verifier = JwtVerifier::hs256(SECRET)
        .issuer("https://as")
        .audience("https://mcp/mcp")
        .build()
        .unwrap();
    // The bare baseline: the same checks, Validation built once, same claims type.
    let key = jsonwebtoken::DecodingKey::from_secret(SECRET);
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_issuer(&["https://as"]);
    validation.set_audience(&["https://mcp/mcp"]);

    let mut g = c.benchmark_group("jwt_hs256");
    g.bench_function("bare_jsonwebtoken_decode", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<Map<String, Value>>(black_box(&token), &key, &validation)
                .unwrap()
        })
    });
    g.bench_function("jwt_verifier", |b| {
        b.iter(|| verifier.verify_now(black_box(&token)).unwrap())
    });
    let mut bearer = BearerLayer::new(verifier.clone()).layer(Bare);
    let bearer_req = || {
        Request::post("/mcp")
            .header("authorization", format!("Bearer {token}"))
            .body(())
            .unwrap()
    };
    g.bench_function("bearer_layer", |b| {
        b.iter(|| call(&mut bearer, bearer_req()))
    });
    g.finish();
}

fn stack(registry: ApiKeyRegistry) -> tower_mcp_auth::McpAuthLayer {
    McpAuth::builder()
        .api_keys(registry)
        .bearer(JwtVerifier::hs256(SECRET).build().unwrap())
        .public_base_url("http://127.0.0.1:8080")
        .endpoint("/health", EndpointPolicy::open())
        .endpoint("/mcp", EndpointPolicy::both())
        .build()
        .unwrap()
}

/// A registry holding one generated key, and that key.
fn generated_key() -> (ApiKeyRegistry, String) {
    let key = generate_api_key().unwrap();
    let registry = ApiKeyRegistry::builder()
        .hashed_key(
            key.hash(),
            ApiKeySpec::new("bench").user_id("u").permissions(["*"]),
        )
        .build();
    (registry, key.plaintext().to_owned())
}

fn bench_stack(c: &mut Criterion) {
    let (registry, plaintext) = generated_key();

    let mut g = c.benchmark_group("stack");
    let mut bare = Bare;
    g.bench_function("bare_service", |b| {
        b.iter(|| call(&mut bare, keyed_request(&plaintext)))
    });
    let mut full = stack(registry.clone()).layer(Bare);
    g.bench_function("full_stack_valid_key", |b| {
        b.iter(|| call(&mut full, keyed_request(&plaintext)))
    });
    // The same three layers composed by hand, without the limiters `McpAuth` carries switched
    // off: the difference to `full_stack_valid_key` is what the pass-through limiters cost.
    let mut by_hand = tower::ServiceBuilder::new()
        .layer(ApiKeyLayer::new(registry.clone()))
        .layer(BearerLayer::new(
            JwtVerifier::hs256(SECRET).build().unwrap(),
        ))
        .layer(
            EndpointPolicyLayer::builder(EndpointPolicy::open())
                .route("/health", EndpointPolicy::open())
                .route("/mcp", EndpointPolicy::both())
                .public_base_url("http://127.0.0.1:8080")
                .build()
                .unwrap(),
        )
        .service(Bare);
    g.bench_function("hand_composed_stack_valid_key", |b| {
        b.iter(|| call(&mut by_hand, keyed_request(&plaintext)))
    });
    g.bench_function("bare_service_served_request", |b| {
        b.iter(|| call(&mut bare, served_request(&plaintext)))
    });
    g.bench_function("full_stack_valid_key_served_request", |b| {
        b.iter(|| call(&mut full, served_request(&plaintext)))
    });
    // With both limiters on a MemoryStore: a lockout peek per client IP and a GCRA decision
    // per key, plus the `RateLimit-*` headers. The quota is large enough never to refuse.
    let store: std::sync::Arc<dyn StateStore> = std::sync::Arc::new(MemoryStore::new());
    let mut limited = McpAuth::builder()
        .api_keys(registry.clone())
        .endpoint("/mcp", EndpointPolicy::api_key_only())
        .rate_limit(RateLimitLayer::from_shared(
            store.clone(),
            Quota::new(1_000_000_000, std::time::Duration::from_secs(1)).unwrap(),
        ))
        .failed_auth_limit(FailedAuthLimitLayer::from_shared(
            store,
            Quota::per_minute(20).unwrap(),
        ))
        .build()
        .unwrap()
        .layer(Bare);
    g.bench_function("bare_service_addressed_request", |b| {
        b.iter(|| call(&mut bare, addressed_request(&plaintext)))
    });
    g.bench_function("full_stack_with_limits_valid_key", |b| {
        b.iter(|| call(&mut limited, addressed_request(&plaintext)))
    });
    let mut policy_only = EndpointPolicyLayer::new(EndpointPolicy::open()).layer(Bare);
    g.bench_function("policy_layer_open", |b| {
        b.iter(|| call(&mut policy_only, keyed_request(&plaintext)))
    });
    let mut missing = stack(registry.clone()).layer(Bare);
    g.bench_function("full_stack_missing_credentials_401", |b| {
        b.iter(|| call(&mut missing, Request::post("/mcp").body(()).unwrap()))
    });

    // The same in an axum Router, where `.layer()` wraps every route.
    let axum_req = || {
        Request::post("/mcp")
            .header("x-api-key", plaintext.as_str())
            .body(Body::empty())
            .unwrap()
    };
    let mut bare_router = Router::new().route("/mcp", post(|| async { "ok" }));
    g.bench_function("axum_router_bare", |b| {
        b.iter(|| call(&mut bare_router, axum_req()))
    });
    let mut auth_router = Router::new()
        .route("/mcp", post(|| async { "ok" }))
        .layer(stack(registry));
    g.bench_function("axum_router_full_stack_valid_key", |b| {
        b.iter(|| call(&mut auth_router, axum_req()))
    });
    g.finish();
}

/// `McpPermissionsLayer` on one `tools/call`: reading the body, parsing `method`, `id` and
/// `params.name` (the arguments are skipped, not materialized) and matching permissions.
fn bench_mcp_permissions(c: &mut Criterion) {
    use bytes::Bytes;
    use http_body_util::Full;
    use tower_mcp_auth::{mcp::McpPermissionsLayer, AuthMethod, Identity, McpRules};

    let identity = Identity::builder(AuthMethod::ApiKey, "bench")
        .permissions(["tools/list", "tools/call:search_*"])
        .build();
    let body = Bytes::from(
        json!({"jsonrpc": "2.0", "id": 42, "method": "tools/call",
            "params": {"name": "search_docs", "arguments": {"query": "tower layers", "limit": 10}}})
        .to_string(),
    );
    let request = || {
        let mut req = Request::post("/mcp").body(Full::new(body.clone())).unwrap();
        req.extensions_mut().insert(identity.clone());
        req
    };

    let mut g = c.benchmark_group("mcp_permissions");
    let mut bare = Bare;
    g.bench_function("bare_service", |b| b.iter(|| call(&mut bare, request())));
    let mut checked = McpPermissionsLayer::new().layer(Bare);
    g.bench_function("tools_call_allowed", |b| {
        b.iter(|| call(&mut checked, request()))
    });
    let mut ruled = McpRules::new()
        .public(["tools/list"])
        .rule("tools/call:admin_*", ["admin"])
        .build()
        .unwrap()
        .layer(Bare);
    g.bench_function("tools_call_allowed_with_rules", |b| {
        b.iter(|| call(&mut ruled, request()))
    });
    g.finish();
}

/// The audit layer (and, with `--features metrics`, the metrics) beside the same full stack
/// without them, same run: target under 5 % of the stack's cost with the `tracing` sink at
/// INFO filtered off (no subscriber here).
fn bench_audit(c: &mut Criterion) {
    use tower_mcp_auth::audit::{AuditEvent, AuditLayer, AuditSink};

    struct Discard;
    impl AuditSink for Discard {
        fn record(&self, event: AuditEvent) {
            black_box(event);
        }
    }

    let (registry, plaintext) = generated_key();
    let full = || {
        let store: std::sync::Arc<dyn StateStore> = std::sync::Arc::new(MemoryStore::new());
        McpAuth::builder()
            .api_keys(registry.clone())
            .bearer(JwtVerifier::hs256(SECRET).build().unwrap())
            .endpoint("/mcp", EndpointPolicy::both())
            .public_base_url("http://127.0.0.1:8080")
            .rate_limit(RateLimitLayer::from_shared(
                store.clone(),
                Quota::new(1_000_000_000, std::time::Duration::from_secs(1)).unwrap(),
            ))
            .failed_auth_limit(FailedAuthLimitLayer::from_shared(
                store,
                Quota::per_minute(20).unwrap(),
            ))
    };
    let request = || addressed_request(&plaintext);

    let mut g = c.benchmark_group("audit");
    let mut plain = full().build().unwrap().layer(Bare);
    g.bench_function("full_stack", |b| b.iter(|| call(&mut plain, request())));
    let mut traced = full()
        .audit(AuditLayer::tracing())
        .build()
        .unwrap()
        .layer(Bare);
    g.bench_function("full_stack_audit_tracing_off", |b| {
        b.iter(|| call(&mut traced, request()))
    });
    let mut events = full()
        .audit(AuditLayer::new(Discard))
        .build()
        .unwrap()
        .layer(Bare);
    g.bench_function("full_stack_audit_every_event", |b| {
        b.iter(|| call(&mut events, request()))
    });
    #[cfg(feature = "metrics")]
    {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .unwrap();
        let mut metered = full()
            .audit(AuditLayer::tracing())
            .metrics()
            .build()
            .unwrap()
            .layer(Bare);
        g.bench_function("full_stack_audit_tracing_off_metrics_prometheus", |b| {
            b.iter(|| call(&mut metered, request()))
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    bench_api_key,
    bench_jwt,
    bench_stack,
    bench_mcp_permissions,
    bench_audit
);
criterion_main!(benches);
