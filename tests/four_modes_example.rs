//! Runs the `four_modes` example binary with environment variables, as a user would from a
//! shell, and checks each mode over HTTP.

mod common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::assert_error;

const KEYS: &str = r#"{"k-alice":{"name":"Alice","userId":"alice","permissions":["*"]},"k-pub":{"name":"Shared"}}"#;
const SECRET: &str = "four-modes-test-secret-of-32-bytes!!";

/// `cargo test` builds examples next to the test binaries' `deps` folder.
fn example_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?.parent()?.join("examples");
    let path = dir.join(format!("four_modes{}", std::env::consts::EXE_SUFFIX));
    path.exists().then_some(path)
}

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start(vars: &[(&str, &str)]) -> Option<Server> {
    let Some(bin) = example_binary() else {
        assert!(
            std::env::var("CI").is_err(),
            "four_modes example binary not found next to the test binary"
        );
        eprintln!("skipping: build the examples first (cargo test builds them)");
        return None;
    };
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut cmd = Command::new(bin);
    cmd.env_clear()
        .env("MCP_AUTH_ADDR", &addr)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let child = cmd.spawn().unwrap();
    let server = Server {
        child,
        base: format!("http://{addr}"),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::get(format!("{}/health", server.base))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "four_modes did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Some(server)
}

fn post(base: &str, path: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(format!("{base}{path}"))
        .json(&serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
}

fn token(base: &str, sub: &str) -> String {
    tower_mcp_auth::install_crypto_provider();
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
