//! The `Identity` axum extractor (feature `axum`).
#![cfg(feature = "axum")]

use crate::common;

use axum::routing::post;
use axum::Router;
use common::*;
use tower_mcp_auth::{EndpointPolicy, Identity, McpAuth};

async fn required(identity: Identity) -> String {
    format!(
        "{}:{}",
        identity.method(),
        identity.user_id().unwrap_or("-")
    )
}

async fn optional(identity: Option<Identity>) -> String {
    identity.map_or_else(|| "anonymous".to_owned(), |i| i.name().to_owned())
}

#[tokio::test]
async fn identity_and_option_identity_extractors() {
    let base = serve(|_| {
        Router::new()
            .route("/mcp", post(required))
            .route("/open", post(optional))
            .route("/open-required", post(required))
            .layer(
                McpAuth::builder()
                    .api_keys(registry())
                    .endpoint("/open", EndpointPolicy::open())
                    .endpoint("/open-required", EndpointPolicy::open())
                    .build()
                    .unwrap(),
            )
    })
    .await;
    let c = client();
    let res = c
        .post(format!("{base}/mcp"))
        .header("x-api-key", ALICE_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap(), "api_key:alice");
    let res = c.post(format!("{base}/open")).send().await.unwrap();
    assert_eq!(res.text().await.unwrap(), "anonymous");
    // A handler that needs an identity on an open endpoint gets the 401 contract, not a 500.
    let res = c
        .post(format!("{base}/open-required"))
        .send()
        .await
        .unwrap();
    let body = assert_error(res, 401, "authentication_required").await;
    assert_eq!(body["error_description"], "Authentication required");
}
