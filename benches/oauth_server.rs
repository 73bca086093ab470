//! The embedded authorization server: one refresh-token rotation at the token endpoint
//! (hash lookup, atomic take, reuse marker, new refresh token, ES256-signed JWT), and
//! `POST /mcp` with an issued token through `McpAuth` beside the bare handler, in one run.
//! The refresh token to start from comes from one real flow against the local OIDC provider
//! of the tests.
//!
//! `cargo bench --features oauth-server --bench oauth_server -- --warm-up-time 1 --measurement-time 3`

#[path = "../tests/oauth_common/mod.rs"]
mod oauth_common;

use std::hint::black_box;
use std::sync::Arc;

use axum::body::Body;
use axum::routing::post;
use axum::Router;
use base64::Engine as _;
use criterion::{criterion_group, criterion_main, Criterion};
use http::Request;
use oauth_common::{location, no_redirects, param, Browser, LocalProvider, STATE_SECRET};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tower::ServiceExt as _;
use tower_mcp_auth::oauth::server::AuthServer;
use tower_mcp_auth::oauth::OAuthClient;
use tower_mcp_auth::store::MemoryStore;
use tower_mcp_auth::{EndpointPolicy, McpAuth};

const REDIRECT: &str = "http://127.0.0.1/cb";

/// Serves a server, runs one flow, returns the server, its client id and a refresh token.
async fn setup() -> (AuthServer, String, Value) {
    let provider = LocalProvider::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    provider.register(&format!("{base}/auth/oauth/callback"));
    let store = Arc::new(MemoryStore::new());
    let oauth = OAuthClient::builder(format!("{base}/auth/oauth/callback"))
        .provider(provider.oidc())
        .state_secret(STATE_SECRET)
        .store_shared(store.clone())
        .allow_any_account()
        .build()
        .await
        .unwrap();
    let server = AuthServer::builder(&base, oauth, "oidc")
        .store_shared(store)
        .build()
        .unwrap();
    let app = Router::new().fallback_service(server.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let http = no_redirects();
    let reg: Value = http
        .post(format!("{base}/oauth/register"))
        .json(
            &serde_json::json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client = reg["client_id"].as_str().unwrap().to_owned();
    let verifier = "v".repeat(64);
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    let browser = Browser::new();
    let authorize = format!("{base}/oauth/authorize?response_type=code&client_id={client}&redirect_uri={REDIRECT}&code_challenge={challenge}&code_challenge_method=S256");
    let upstream = browser.start(&authorize).await;
    let page = browser
        .get(&browser.authorize(&upstream).await)
        .await
        .text()
        .await
        .unwrap();
    let field = |name: &str| {
        let marker = format!("name=\"{name}\" value=\"");
        let at = page.find(&marker).unwrap() + marker.len();
        page[at..].split('"').next().unwrap().to_owned()
    };
    let res = http
        .post(format!("{base}/oauth/consent"))
        .header("cookie", browser.cookie_header())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "ticket={}&csrf={}&decision=approve",
            field("ticket"),
            field("csrf")
        ))
        .send()
        .await
        .unwrap();
    let code = param(&location(&res), "code").unwrap();
    let tokens: Value = http.post(format!("{base}/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("grant_type=authorization_code&client_id={client}&code={code}&code_verifier={verifier}&redirect_uri={REDIRECT}"))
        .send().await.unwrap().json().await.unwrap();
    (server, client, tokens)
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (server, client, tokens) = runtime.block_on(setup());
    let mut refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let access = tokens["access_token"].as_str().unwrap().to_owned();

    c.bench_function("token endpoint: refresh rotation", |b| {
        b.iter(|| {
            let body =
                format!("grant_type=refresh_token&client_id={client}&refresh_token={refresh}");
            let req = Request::post("/oauth/token")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(body))
                .unwrap();
            let res = runtime.block_on(server.clone().oneshot(req)).unwrap();
            let bytes = runtime
                .block_on(http_body_util::BodyExt::collect(res.into_body()))
                .unwrap()
                .to_bytes();
            let answer: Value = serde_json::from_slice(&bytes).unwrap();
            refresh = answer["refresh_token"]
                .as_str()
                .expect("rotated")
                .to_owned();
        });
    });

    let handler = || Router::new().route("/mcp", post(|| async { "ok" }));
    let auth = McpAuth::builder()
        .bearer(server.verifier())
        .endpoint("/mcp", EndpointPolicy::oauth_only())
        .build()
        .unwrap();
    let protected = handler().layer(auth);
    let bare = handler();
    let mut group = c.benchmark_group("POST /mcp");
    for (name, app) in [("bare", bare), ("issued token", protected)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let req = Request::post("/mcp")
                    .header("authorization", format!("Bearer {access}"))
                    .body(Body::empty())
                    .unwrap();
                let res = runtime.block_on(app.clone().oneshot(req)).unwrap();
                assert_eq!(res.status(), 200);
                black_box(res);
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
