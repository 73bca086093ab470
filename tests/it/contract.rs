//! The rest of the response contract: 503 from a failing store or verifier, 429 rendering,
//! the `AuthFailure` marker seen by an outer layer, and the layers on plain hyper.

use crate::common;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use common::*;
use tower_mcp_auth::{
    api_key::{KeyHash, KeyLookup, KeyLookupError, StoredKey},
    bearer::TokenError,
    AuthError, AuthFailure, AuthFailureKind, Deferred, EndpointPolicy, ErrorContext, Identity,
    McpAuth, TokenVerifier,
};

struct DownKeyStore;
impl KeyLookup for DownKeyStore {
    fn find(&self, _: &KeyHash) -> Deferred<Result<Option<StoredKey>, KeyLookupError>> {
        Deferred::boxed(async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            Err(KeyLookupError("connection refused".into()))
        })
    }
}

struct DownVerifier;
impl TokenVerifier for DownVerifier {
    fn verify(&self, _: &str) -> Deferred<Result<Identity, TokenError>> {
        Deferred::boxed(async { Err(TokenError::Unavailable("JWKS unreachable".into())) })
    }
}

/// A database-like store that answers after an await, to exercise the deferred path.
struct SlowStore(tower_mcp_auth::ApiKeyRegistry);
impl KeyLookup for SlowStore {
    fn find(&self, hash: &KeyHash) -> Deferred<Result<Option<StoredKey>, KeyLookupError>> {
        let found = self.0.get(hash);
        Deferred::boxed(async move {
            tokio::time::sleep(Duration::from_millis(2)).await;
            Ok(found)
        })
    }
}

#[tokio::test]
async fn unavailable_store_or_verifier_is_503() {
    let base = serve(|_| {
        routes().layer(
            McpAuth::builder()
                .api_keys(DownKeyStore)
                .bearer(DownVerifier)
                .build()
                .unwrap(),
        )
    })
    .await;
    let res = client()
        .post(format!("{base}/mcp"))
        .header("x-api-key", ALICE_KEY)
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("www-authenticate").is_none());
    assert!(res.headers().get("retry-after").is_none());
    assert_error(res, 503, "temporarily_unavailable").await;
    let res = client()
        .post(format!("{base}/mcp"))
        .bearer_auth("x.y.z")
        .send()
        .await
        .unwrap();
    assert_error(res, 503, "temporarily_unavailable").await;
}

#[tokio::test]
async fn deferred_key_store_authenticates() {
    let base = serve(|_| {
        routes().layer(
            McpAuth::builder()
                .api_keys(SlowStore(registry()))
                .build()
                .unwrap(),
        )
    })
    .await;
    let res = client()
        .post(format!("{base}/mcp"))
        .header("x-api-key", ALICE_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["user_id"], "alice");
    let res = client()
        .post(format!("{base}/mcp"))
        .header("x-api-key", "nope")
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "invalid_credentials").await;
}

#[tokio::test]
async fn too_many_requests_contract() {
    async fn limited() -> Response {
        AuthError::TooManyRequests {
            retry_after: Duration::from_millis(2_100),
        }
        .to_response(&ErrorContext::both())
        .into_response()
    }
    let base = serve(|_| Router::new().route("/mcp", post(limited))).await;
    let res = client().post(format!("{base}/mcp")).send().await.unwrap();
    assert_eq!(res.headers()["retry-after"], "3");
    assert!(res.headers().get("www-authenticate").is_none());
    let body = assert_error(res, 429, "too_many_requests").await;
    assert_eq!(body["retry_after"], 3);
}

#[tokio::test]
async fn outer_layers_see_the_auth_failure_marker() {
    type Seen = Vec<(u16, Option<AuthFailure>)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let record = seen.clone();
    let base = serve(move |_| {
        routes()
            .layer(
                McpAuth::builder()
                    .api_keys(registry())
                    .default_policy(EndpointPolicy::api_key_only())
                    .build()
                    .unwrap(),
            )
            .layer(middleware::from_fn(move |req: Request, next: Next| {
                let record = record.clone();
                async move {
                    let res = next.run(req).await;
                    let failure = res.extensions().get::<AuthFailure>().copied();
                    record
                        .lock()
                        .unwrap()
                        .push((res.status().as_u16(), failure));
                    Ok::<_, Infallible>(res)
                }
            }))
    })
    .await;
    for key in [None, Some("nope"), Some(ALICE_KEY)] {
        let mut req = client().post(format!("{base}/mcp"));
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        req.send().await.unwrap();
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].0, 401);
    assert_eq!(seen[0].1.unwrap().kind, AuthFailureKind::MissingCredentials);
    assert!(
        !seen[0].1.unwrap().is_invalid_credential(),
        "missing never counts"
    );
    assert_eq!(seen[1].1.unwrap().kind, AuthFailureKind::InvalidCredentials);
    assert!(seen[1].1.unwrap().is_invalid_credential());
    assert_eq!(seen[2], (200, None));
}

#[tokio::test]
async fn layers_work_on_plain_hyper_with_service_builder() {
    use http_body_util::Full;
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;
    use tower::ServiceBuilder;
    use tower_mcp_auth::{
        api_key::ApiKeyLayer, bearer::BearerLayer, policy::EndpointPolicyLayer, CredentialSources,
        JwtVerifier,
    };

    let svc = ServiceBuilder::new()
        .layer(
            ApiKeyLayer::new(registry())
                .credential_sources(CredentialSources::new().query_param(false)),
        )
        .layer(BearerLayer::new(
            JwtVerifier::hs256(SECRET).build().unwrap(),
        ))
        .layer(EndpointPolicyLayer::new(EndpointPolicy::both()))
        .service_fn(|req: http::Request<hyper::body::Incoming>| async move {
            let who = req
                .extensions()
                .get::<Identity>()
                .map(|i| i.name().to_owned())
                .unwrap_or_default();
            Ok::<_, Infallible>(http::Response::new(Full::new(bytes::Bytes::from(who))))
        });

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let svc = TowerToHyperService::new(svc.clone());
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    let base = format!("http://{addr}");
    let res = client()
        .post(&base)
        .header("x-api-key", ALICE_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "alice laptop");
    let res = client()
        .post(&base)
        .bearer_auth(token("carol"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap(), "carol");
    // Query keys are switched off on this stack.
    let res = client()
        .post(format!("{base}/?api_key={ALICE_KEY}"))
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "authentication_required").await;
}
