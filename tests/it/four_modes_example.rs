//! Runs the `four_modes` example binary with environment variables, as a user would from a
//! shell, and checks each mode over HTTP.

use crate::common;
use crate::example_process;

use common::assert_error;

const KEYS: &str = r#"{"k-alice":{"name":"Alice","userId":"alice","permissions":["*"]},"k-pub":{"name":"Shared"}}"#;
const SECRET: &str = "four-modes-test-secret-of-32-bytes!!";

async fn start(vars: &[(&str, &str)]) -> Option<example_process::Example> {
    example_process::start("four_modes", vars).await
}

fn post(base: &str, path: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(format!("{base}{path}"))
        .json(&serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
}

fn token(base: &str, sub: &str) -> String {
    tower_mcp_auth::bearer::install_crypto_provider();
    let now = common::now();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &serde_json::json!({"sub": sub, "exp": now + 600, "aud": format!("{base}/mcp")}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn api_key_only_mode_from_the_environment() {
    let Some(s) = start(&[("MCP_API_KEYS", KEYS), ("FAILED_AUTH_LIMIT", "3")]).await else {
        return;
    };
    let res = post(&s.base, "/mcp").send().await.unwrap();
    assert!(res.headers().get("www-authenticate").is_none());
    assert_error(res, 401, "authentication_required").await;
    let res = post(&s.base, "/mcp")
        .header("x-api-key", "k-alice")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = post(&s.base, "/users/alice/mcp?api_key=k-pub")
        .send()
        .await
        .unwrap();
    let body = assert_error(res, 403, "access_denied").await;
    assert_eq!(
        body["error_description"],
        "Public API keys cannot access private endpoints"
    );
    // No metadata route without OAuth.
    let res = reqwest::get(format!(
        "{}/.well-known/oauth-protected-resource/mcp",
        s.base
    ))
    .await
    .unwrap();
    assert_eq!(res.status(), 404);

    // Failed-auth lockout: three wrong keys, then credentialed requests get 429 ...
    for _ in 0..3 {
        let res = post(&s.base, "/mcp")
            .header("x-api-key", "wrong")
            .send()
            .await
            .unwrap();
        assert_error(res, 401, "invalid_credentials").await;
    }
    let res = post(&s.base, "/mcp")
        .header("x-api-key", "k-alice")
        .send()
        .await
        .unwrap();
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    assert_error(res, 429, "too_many_requests").await;
    // ... while requests without credentials (discovery probes) are never locked out.
    let res = post(&s.base, "/mcp").send().await.unwrap();
    assert_error(res, 401, "authentication_required").await;
}

#[tokio::test]
async fn oauth_only_mode_from_the_environment() {
    let Some(s) = start(&[
        ("ENABLE_API_KEY_AUTH", "false"),
        ("ENABLE_OAUTH", "true"),
        ("JWT_SECRET", SECRET),
    ])
    .await
    else {
        return;
    };
    let res = post(&s.base, "/mcp").send().await.unwrap();
    let metadata_url = format!("{}/.well-known/oauth-protected-resource/mcp", s.base);
    assert!(res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains(&format!("resource_metadata=\"{metadata_url}\"")));
    assert_error(res, 401, "authentication_required").await;

    let meta: serde_json::Value = reqwest::get(&metadata_url)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["resource"], format!("{}/mcp", s.base));

    let res = post(&s.base, "/mcp")
        .bearer_auth(token(&s.base, "alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = post(&s.base, "/users/alice/mcp")
        .bearer_auth(token(&s.base, "mallory"))
        .send()
        .await
        .unwrap();
    assert_error(res, 403, "access_denied").await;
}

#[tokio::test]
async fn both_mode_checks_issuer_and_audience_when_set() {
    let Some(s) = start(&[
        ("MCP_API_KEYS", KEYS),
        ("ENABLE_OAUTH", "true"),
        ("JWT_SECRET", SECRET),
        ("JWT_AUDIENCE", "https://somewhere-else/mcp"),
    ])
    .await
    else {
        return;
    };
    let res = post(&s.base, "/mcp")
        .bearer_auth(token(&s.base, "alice"))
        .send()
        .await
        .unwrap();
    let body = assert_error(res, 401, "invalid_token").await;
    assert_eq!(
        body["error_description"],
        "The access token audience is not accepted"
    );
    let res = post(&s.base, "/mcp")
        .header("x-api-key", "k-alice")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn open_mode_from_the_environment() {
    let Some(s) = start(&[("ENABLE_API_KEY_AUTH", "false")]).await else {
        return;
    };
    let res = post(&s.base, "/mcp")
        .header("x-api-key", "anything")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}
