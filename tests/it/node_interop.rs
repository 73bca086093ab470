//! Interop with the official MCP TypeScript SDK client (`@modelcontextprotocol/sdk`, pinned in
//! `tests/node/package.json`): `tests/node/client.mjs` connects to the `rmcp_server` example
//! with an API key or a bearer token from a local IdP, lists the tools and calls `whoami`.
//!
//! The SDK is installed into `target/node/interop` on first use. Without `node` / `npm` the
//! tests are skipped with a message locally and fail under `CI`.

use crate::example_process;
#[cfg(feature = "jwks")]
use crate::idp;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const KEYS: &str = r#"{"k-alice":{"name":"Alice","userId":"alice","permissions":["*"]}}"#;

fn has(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The install directory with the SDK and the client script, or `None` (skip) without Node.
/// Installed once per test process: the tests that use it run in parallel, and concurrent
/// `npm install`s into one directory break each other's `node_modules`.
pub(crate) fn client_dir() -> Option<PathBuf> {
    static DIR: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    DIR.get_or_init(install).clone()
}

fn install() -> Option<PathBuf> {
    if !has("node") || !has("npm") {
        assert!(
            std::env::var("CI").is_err(),
            "node and npm are needed for the interop tests in CI"
        );
        eprintln!("skipping: node / npm not found (install Node 20+ to run the interop tests)");
        return None;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("target/node/interop");
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = std::fs::read(root.join("tests/node/package.json")).unwrap();
    let installed = std::fs::read(dir.join("package.json")).ok();
    if installed.as_deref() != Some(&manifest[..])
        || !dir.join("node_modules/@modelcontextprotocol/sdk").exists()
    {
        std::fs::write(dir.join("package.json"), &manifest).unwrap();
        let status = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .status()
            .unwrap();
        assert!(status.success(), "npm install in {}", dir.display());
    }
    // Next to its node_modules, so its imports resolve.
    for script in ["client.mjs", "oauth_client.mjs"] {
        std::fs::copy(root.join("tests/node").join(script), dir.join(script)).unwrap();
    }
    Some(dir)
}

/// Runs the TypeScript SDK client; its JSON output, or the error it printed.
fn run_client(dir: &Path, url: &str, args: &[&str]) -> Result<Value, String> {
    let out = Command::new("node")
        .arg(dir.join("client.mjs"))
        .arg(url)
        .args(args)
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(serde_json::from_slice(&out.stdout).expect("client prints JSON"))
}

#[tokio::test]
async fn typescript_sdk_client_with_an_api_key() {
    let Some(dir) = client_dir() else { return };
    let Some(s) = example_process::start("rmcp_server", &[("MCP_API_KEYS", KEYS)]).await else {
        return;
    };
    let url = format!("{}/mcp", s.base);
    let out = tokio::task::spawn_blocking({
        let (dir, url) = (dir.clone(), url.clone());
        move || run_client(&dir, &url, &["--api-key", "k-alice"])
    })
    .await
    .unwrap()
    .expect("client with a good key");
    assert_eq!(out["tools"], serde_json::json!(["echo", "whoami"]));
    assert_eq!(out["whoami"]["user_id"], "alice");
    assert_eq!(out["whoami"]["method"], "api_key");

    let err = tokio::task::spawn_blocking(move || run_client(&dir, &url, &["--api-key", "nope"]))
        .await
        .unwrap()
        .expect_err("a wrong key is refused");
    assert!(err.contains("invalid_credentials"), "{err}");
    assert!(!err.contains("nope"), "the key is never echoed: {err}");
}

#[cfg(feature = "jwks")]
/// The SDK client against `rmcp_server` in OAuth-only mode with a token holding `scope`;
/// `required` is the example's `OAUTH_SCOPES` (unset when `None`).
async fn with_idp_token(scope: &str, required: Option<&str>) -> Option<Value> {
    let dir = client_dir()?;
    let key = idp::SigningKey::rsa();
    let idp = idp::Idp::start(&[&key]).await;
    let issuer = idp.issuer();
    let mut env = vec![
        ("ENABLE_API_KEY_AUTH", "false"),
        ("ENABLE_OAUTH", "true"),
        ("OAUTH_ISSUER", issuer.as_str()),
    ];
    if let Some(required) = required {
        env.push(("OAUTH_SCOPES", required));
    }
    let s = example_process::start("rmcp_server", &env).await?;
    let url = format!("{}/mcp", s.base);
    let mut claims = idp.claims("carol");
    claims["aud"] = url.clone().into();
    claims["scope"] = scope.into();
    let token = key.sign(&claims);
    let out = tokio::task::spawn_blocking(move || run_client(&dir, &url, &["--token", &token]))
        .await
        .unwrap()
        .expect("client with a bearer token");
    drop(s);
    Some(out)
}

#[cfg(feature = "jwks")]
#[tokio::test]
async fn typescript_sdk_client_with_a_bearer_token_from_a_local_idp() {
    // No OAUTH_SCOPES: any valid token calls every tool (per-tool permissions are opt-in).
    let Some(out) = with_idp_token("tools/call", None).await else {
        return;
    };
    assert_eq!(out["tools"], serde_json::json!(["echo", "whoami"]));
    assert_eq!(out["whoami"]["user_id"], "carol");
    assert_eq!(out["whoami"]["method"], "bearer");
}

#[cfg(feature = "jwks")]
#[tokio::test]
async fn typescript_sdk_client_with_openid_mcp_tools_scopes_lists_every_tool() {
    // What a standard IdP issues, with the example told to require it (issue 11's story).
    let Some(out) = with_idp_token("openid mcp:tools", Some("mcp:tools")).await else {
        return;
    };
    assert_eq!(out["tools"], serde_json::json!(["echo", "whoami"]));
    assert_eq!(out["whoami"]["user_id"], "carol");
}
