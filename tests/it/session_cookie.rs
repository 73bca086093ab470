//! The opt-in session cookie source of `BearerLayer` / `McpAuth` (default features).

use crate::common;

use axum::routing::post;
use axum::Router;
use common::*;
use tower_mcp_auth::{
    bearer::BearerLayer, policy::EndpointPolicyLayer, EndpointPolicy, JwtVerifier, McpAuth,
};

fn verifier() -> JwtVerifier {
    JwtVerifier::hs256(SECRET).build().unwrap()
}

async fn app(cookie: Option<&str>) -> String {
    let cookie = cookie.map(str::to_owned);
    serve(move |_| {
        let mut auth = McpAuth::builder()
            .bearer(verifier())
            .default_policy(EndpointPolicy::oauth_only());
        if let Some(name) = cookie {
            auth = auth.session_cookie(name);
        }
        Router::new()
            .route("/mcp", post(whoami))
            .layer(auth.build().unwrap())
    })
    .await
}

fn post_mcp(base: &str) -> reqwest::RequestBuilder {
    client()
        .post(format!("{base}/mcp"))
        .json(&serde_json::json!({}))
}

#[tokio::test]
async fn the_cookie_is_accepted_only_when_enabled() {
    let on = app(Some("mcp_session")).await;
    let off = app(None).await;
    let cookie = format!("theme=dark; mcp_session={}", token("alice"));

    let res = post_mcp(&on)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["user_id"], "alice");
    assert_eq!(body["method"], "bearer");

    let res = post_mcp(&off)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "authentication_required").await;
    // Another cookie name is not read.
    let res = post_mcp(&on)
        .header("cookie", format!("session={}", token("alice")))
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "authentication_required").await;
}

#[tokio::test]
async fn the_header_wins_and_bad_cookies_are_invalid_tokens() {
    let base = app(Some("mcp_session")).await;
    // A bad header is not rescued by a good cookie.
    let res = post_mcp(&base)
        .bearer_auth("not-a-jwt")
        .header("cookie", format!("mcp_session={}", token("alice")))
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "invalid_token").await;
    // A good header wins over a bad cookie.
    let res = post_mcp(&base)
        .bearer_auth(token("bob"))
        .header("cookie", "mcp_session=garbage")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["user_id"], "bob");
    for bad in [
        "mcp_session=garbage".to_owned(),
        "mcp_session=".to_owned(),
        "mcp_session=a b; mcp_session=%%".to_owned(),
        format!("mcp_session={}", "a".repeat(20_000)),
    ] {
        let res = post_mcp(&base).header("cookie", bad).send().await.unwrap();
        let challenge = challenge(&res).unwrap();
        assert!(challenge.contains("invalid_token"), "{challenge}");
        assert_error(res, 401, "invalid_token").await;
    }
    // Never from the query string.
    let res = client()
        .post(format!(
            "{base}/mcp?mcp_session={0}&access_token={0}",
            token("alice")
        ))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "authentication_required").await;
}

#[tokio::test]
async fn bearer_layer_alone_with_a_cookie() {
    let base = serve(|_| {
        Router::new()
            .route("/mcp", post(whoami))
            .layer(EndpointPolicyLayer::new(EndpointPolicy::oauth_only()))
            .layer(BearerLayer::new(verifier()).session_cookie("sid"))
    })
    .await;
    let res = post_mcp(&base)
        .header("cookie", format!("sid=\"{}\"", token("carol")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

/// Cookie tossing: a sibling subdomain plants a second session cookie of the same name. The
/// browser sends both; whichever order they come in, the valid one is used.
#[tokio::test]
async fn a_planted_duplicate_cookie_does_not_break_a_valid_session() {
    let base = app(Some("__Host-mcp_session")).await;
    let good = token("alice");
    let forged = format!("{}x", token("mallory"));
    for cookie in [
        format!("__Host-mcp_session={forged}; __Host-mcp_session={good}"),
        format!("__Host-mcp_session={good}; __Host-mcp_session={forged}"),
        format!("__Host-mcp_session=not/a token!; theme=dark; __Host-mcp_session={good}"),
    ] {
        let res = post_mcp(&base)
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{cookie}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["user_id"], "alice");
    }
    // In two Cookie headers (HTTP/2 may split them) too.
    let res = post_mcp(&base)
        .header("cookie", format!("__Host-mcp_session={forged}"))
        .header("cookie", format!("__Host-mcp_session={good}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Only forged ones: still an invalid token, never a pass.
    let res = post_mcp(&base)
        .header(
            "cookie",
            format!("__Host-mcp_session={forged}; __Host-mcp_session={forged}y"),
        )
        .send()
        .await
        .unwrap();
    let challenge = challenge(&res).unwrap();
    assert!(challenge.contains("invalid_token"), "{challenge}");
    assert_error(res, 401, "invalid_token").await;
}
