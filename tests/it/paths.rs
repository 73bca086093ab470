//! Policies match the decoded, canonical path the router dispatches on: a percent-encoded
//! path cannot slip past an endpoint's owner, and non-canonical forms (`%2F`, dot segments,
//! NUL, ...) are refused with 400 `invalid_request`.
//!
//! Requests go out through a raw hyper client: reqwest (the `url` crate) would resolve
//! `/a/../b` and `%2e%2e` before sending, hiding exactly what an attacker sends.

use crate::common;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Request};
use axum::middleware::{self, Next};
use axum::routing::post;
use axum::{Extension, Json, Router};
use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tower_mcp_auth::store::{MemoryStore, Quota};
use tower_mcp_auth::{
    policy::CanonicalPath, rate_limit::FailedAuthLimitLayer, AuthFailure, AuthFailureKind,
    EndpointPolicy, Identity, McpAuth,
};

/// What the handler of `/users/{id}/mcp` sees: axum's decoded `id` and the decided identity.
async fn user_mcp(Path(id): Path<String>, identity: Option<Extension<Identity>>) -> Json<Value> {
    Json(json!({
        "id": id,
        "user_id": identity.as_ref().and_then(|Extension(i)| i.user_id().map(str::to_owned)),
    }))
}

type Seen = Arc<Mutex<Vec<Option<AuthFailure>>>>;

/// `/users/alice/mcp` private to alice; everything else API-key-only and public. The
/// lockout allows two wrong keys a minute, so a malformed path counted as one would show.
async fn server(seen: Seen) -> String {
    serve(move |_| {
        Router::new()
            .route("/users/{id}/mcp", post(user_mcp))
            .route("/mcp", post(whoami))
            .layer(
                McpAuth::builder()
                    .api_keys(registry())
                    .default_policy(EndpointPolicy::api_key_only())
                    .endpoint(
                        "/users/alice/mcp",
                        EndpointPolicy::api_key_only().private_to("alice"),
                    )
                    .failed_auth_limit(FailedAuthLimitLayer::new(
                        MemoryStore::new(),
                        Quota::per_minute(2).unwrap(),
                    ))
                    .build()
                    .unwrap(),
            )
            .layer(middleware::from_fn(move |req: Request, next: Next| {
                let seen = seen.clone();
                async move {
                    let res = next.run(req).await;
                    let failure = res.extensions().get::<AuthFailure>().copied();
                    seen.lock().unwrap().push(failure);
                    Ok::<_, Infallible>(res)
                }
            }))
    })
    .await
}

struct Answer {
    status: u16,
    headers: http::HeaderMap,
    body: Value,
}

/// Sends `POST <path>` exactly as written (no client-side normalization).
async fn raw_post(base: &str, path: &str, key: &str) -> Answer {
    let addr = base.trim_start_matches("http://");
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::post(path)
        .header("host", addr)
        .header("x-api-key", key)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let res = sender.send_request(req).await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
    }
}

/// The whole error contract for a refused path.
fn assert_malformed(a: &Answer, path: &str) {
    assert_eq!(a.status, 400, "{path}: {}", a.body);
    assert_eq!(a.headers["content-type"], "application/json", "{path}");
    assert_eq!(a.headers["cache-control"], "no-store", "{path}");
    assert!(a.headers.get("www-authenticate").is_none(), "{path}");
    assert_eq!(a.body["error"], "invalid_request", "{path}: {}", a.body);
    let description = a.body["error_description"].as_str().unwrap();
    assert!(
        description.starts_with("Malformed request path"),
        "{path}: {description}"
    );
    let ts = a.body["timestamp"].as_str().expect("timestamp");
    assert!(ts.len() == 24 && ts.ends_with('Z'), "{ts}");
    assert!(a.body.get("supported_methods").is_none(), "{path}");
}

#[tokio::test]
async fn percent_encoded_owner_segment_gets_the_owners_policy() {
    let seen = Seen::default();
    let base = server(seen.clone()).await;
    for path in ["/users/alic%65/mcp", "/users/%61%6C%69%63%65/mcp"] {
        // Bob's key on alice's endpoint, however it is spelled.
        let a = raw_post(&base, path, BOB_KEY).await;
        assert_eq!(a.status, 403, "{path}: {}", a.body);
        assert_eq!(a.headers["content-type"], "application/json");
        assert_eq!(a.headers["cache-control"], "no-store");
        assert_eq!(a.body["error"], "access_denied", "{path}");
        // Alice still reaches her endpoint, and the handler sees the decoded id.
        let a = raw_post(&base, path, ALICE_KEY).await;
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        assert_eq!(a.body, json!({"id": "alice", "user_id": "alice"}));
    }
    // Bob on his own (unlisted, public) endpoint is unaffected.
    let a = raw_post(&base, "/users/b%6Fb/mcp", BOB_KEY).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["id"], "bob");
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].unwrap().kind, AuthFailureKind::AccessDenied);
}

#[tokio::test]
async fn non_canonical_paths_are_400_invalid_request() {
    let seen = Seen::default();
    let base = server(seen.clone()).await;
    let paths = [
        "/users/alice%2Fx/mcp",
        "/users/alice%2fx/mcp",
        "/users/alice%5Cx/mcp",
        "/users/%2e%2e/mcp",
        "/users/.%2E/mcp",
        "/users/%2e/mcp",
        "/users/bob/../alice/mcp",
        "/users/./alice/mcp",
        "/users/alice%00/mcp",
        "/users/alice%0A/mcp",
        "/users/alice%7F/mcp",
        "/users/alic%ff/mcp",
        "/users/alic%6/mcp",
        "/users/alic%zz/mcp",
        "/users/alic%2565/mcp",
        "/users//mcp",
        "/users/alice/mcp/..",
    ];
    for path in paths {
        // A wrong key, so a 400 that the lockout counted would lock the client out.
        let a = raw_post(&base, path, "wrong-key").await;
        assert_malformed(&a, path);
    }
    let failures = seen.lock().unwrap().clone();
    assert_eq!(failures.len(), paths.len());
    for failure in failures {
        let failure = failure.expect("AuthFailure marker");
        assert_eq!(failure.kind, AuthFailureKind::MalformedRequest);
        assert!(!failure.is_invalid_credential());
    }
    // Not counted by the failed-auth lockout: a good key still passes.
    let a = raw_post(&base, "/users/alice/mcp", ALICE_KEY).await;
    assert_eq!(a.status, 200, "{}", a.body);
    // Plain paths, trailing slashes and non-ASCII keep working.
    let a = raw_post(&base, "/mcp", BOB_KEY).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let a = raw_post(&base, "/users/caf%C3%A9/mcp", BOB_KEY).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["id"], "café");
}

#[tokio::test]
async fn resolvers_see_the_decoded_path() {
    // Ownership from the path itself: `/users/{id}/mcp` is private to `id`.
    let base = serve(|_| {
        Router::new()
            .route("/users/{id}/mcp", post(user_mcp))
            .layer(
                McpAuth::builder()
                    .api_keys(registry())
                    .default_policy(EndpointPolicy::api_key_only())
                    .resolver(|parts| {
                        let path = CanonicalPath::of(parts);
                        let user = path.strip_prefix("/users/")?.strip_suffix("/mcp")?;
                        Some(EndpointPolicy::api_key_only().private_to(user))
                    })
                    .build()
                    .unwrap(),
            )
    })
    .await;
    let a = raw_post(&base, "/users/alic%65/mcp", BOB_KEY).await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert_eq!(a.body["error"], "access_denied");
    let a = raw_post(&base, "/users/alic%65/mcp", ALICE_KEY).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body, json!({"id": "alice", "user_id": "alice"}));
    let a = raw_post(&base, "/users/bob/mcp", BOB_KEY).await;
    assert_eq!(a.status, 200, "{}", a.body);
}

#[tokio::test]
async fn nested_routers_match_the_full_path_and_handlers_read_their_own() {
    // The policy sees `/api/...`; the nested handler's URI has the prefix stripped.
    async fn echo(req: Request) -> Json<Value> {
        Json(json!({"canonical": CanonicalPath::of_request(&req), "uri": req.uri().path()}))
    }
    let base = serve(|_| {
        Router::new()
            .nest("/api", Router::new().route("/users/{id}/mcp", post(echo)))
            .layer(
                McpAuth::builder()
                    .api_keys(registry())
                    .default_policy(EndpointPolicy::api_key_only())
                    .endpoint(
                        "/api/users/alice/mcp",
                        EndpointPolicy::api_key_only().private_to("alice"),
                    )
                    .build()
                    .unwrap(),
            )
    })
    .await;
    let a = raw_post(&base, "/api/users/alic%65/mcp", BOB_KEY).await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert_eq!(a.body["error"], "access_denied");
    let a = raw_post(&base, "/api/users/alic%65/mcp", ALICE_KEY).await;
    assert_eq!(a.status, 200, "{}", a.body);
    // However it was spelled, the handler reads the canonical form of its own URI.
    assert_eq!(
        a.body,
        json!({"canonical": "/users/alice/mcp", "uri": "/users/alic%65/mcp"})
    );
    let a = raw_post(&base, "/api/users/alice/mcp", ALICE_KEY).await;
    assert_eq!(
        a.body,
        json!({"canonical": "/users/alice/mcp", "uri": "/users/alice/mcp"})
    );
}
