//! Runs the `oauth_login` example binary against the local OIDC provider, as a user would
//! from a shell: a login on one process, and (feature `redis`) two processes with the same
//! `STATE_SECRET` and a shared Redis `STATE_STORE` completing a login that starts on one and
//! returns to the other.
#![cfg(feature = "oauth-client")]

use crate::oauth_common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oauth_common::*;
use serde_json::Value;

const SECRET: &str = "example-test-state-secret-0123456789abcdef";

/// `cargo test` builds examples next to the test binaries' `deps` folder.
fn example_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?.parent()?.join("examples");
    let path = dir.join(format!("oauth_login{}", std::env::consts::EXE_SUFFIX));
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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn spawn(port: u16, vars: &[(&str, String)]) -> Option<Server> {
    let Some(bin) = example_binary() else {
        assert!(
            std::env::var("CI").is_err(),
            "oauth_login example binary not found next to the test binary"
        );
        eprintln!(
            "skipping: build the examples first (cargo test --features oauth-client builds them)"
        );
        return None;
    };
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
    let mut server = Server {
        child: cmd.spawn().unwrap(),
        base: format!("http://{addr}"),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::get(format!("{}/health", server.base))
        .await
        .is_err()
    {
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("oauth_login exited early: {status}");
        }
        assert!(Instant::now() < deadline, "oauth_login did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Some(server)
}

pub(crate) fn vars(
    provider: &LocalProvider,
    redirect_uri: &str,
    store: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("OAUTH_PROVIDER", "oidc".into()),
        ("OAUTH_ISSUER", provider.base.clone()),
        ("OAUTH_CLIENT_ID", CLIENT_ID.into()),
        ("OAUTH_CLIENT_SECRET", CLIENT_SECRET.into()),
        ("OAUTH_SCOPES", "openid email profile".into()),
        // The example refuses every login until told who may log in.
        ("OAUTH_ALLOWED_EMAILS", "ada@example.com".into()),
        ("OAUTH_REDIRECT_URI", redirect_uri.into()),
        ("STATE_SECRET", SECRET.into()),
        ("STATE_TTL_SECS", "300".into()),
        ("STATE_STORE", store.into()),
    ]
}

#[tokio::test]
async fn login_then_call_mcp_with_the_session() {
    let provider = LocalProvider::start().await;
    let port = free_port();
    let redirect = format!("http://127.0.0.1:{port}/auth/oauth/callback");
    provider.register(&redirect);
    let Some(server) = spawn(port, &vars(&provider, &redirect, "memory")).await else {
        return;
    };
    let browser = Browser::new();
    let home: Value = browser
        .get(&format!("{}/", server.base))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(home["logged_in"], false);
    assert_eq!(home["login"], "/auth/oauth/oidc/start");
    assert_eq!(browser.post_mcp(&server.base).await.status(), 401);

    let res = browser
        .login(&format!("{}/auth/oauth/oidc/start", server.base))
        .await;
    assert_eq!(res.status(), 302);
    assert_eq!(location(&res), "/");
    let home: Value = browser
        .get(&format!("{}/", server.base))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(home["logged_in"], true);
    assert_eq!(home["user_id"], oidc_user_id(&provider, SUB));
    assert_eq!(home["provider"], "oidc");
    let res = browser.post_mcp(&server.base).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["caller"]["user_id"], oidc_user_id(&provider, SUB));
}

/// Two processes spawned from the example binary, same `STATE_SECRET`, one Redis: the flow
/// starts on A; the provider sends the browser to B (the shared redirect URI); the session
/// B sets is then accepted by A.
#[cfg(feature = "redis")]
#[tokio::test]
async fn two_processes_sharing_redis_complete_one_login() {
    let redis = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    if let Err(err) = tower_mcp_auth::store::connect(&redis).await {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("Redis is unreachable (CI=true makes this a failure): {err}");
        }
        eprintln!("SKIPPED: Redis is unreachable: {err}");
        return;
    }
    let provider = LocalProvider::start().await;
    let (port_a, port_b) = (free_port(), free_port());
    let redirect = format!("http://127.0.0.1:{port_b}/auth/oauth/callback");
    provider.register(&redirect);
    let Some(a) = spawn(port_a, &vars(&provider, &redirect, &redis)).await else {
        return;
    };
    let Some(b) = spawn(port_b, &vars(&provider, &redirect, &redis)).await else {
        return;
    };
    let browser = Browser::new();
    let callback = browser
        .until_callback(&format!("{}/auth/oauth/oidc/start", a.base))
        .await;
    assert!(callback.starts_with(&b.base), "{callback}");
    let res = browser.get(&callback).await;
    assert_eq!(res.status(), 302, "{}", res.text().await.unwrap());
    for base in [&a.base, &b.base] {
        let res = browser.post_mcp(base).await;
        assert_eq!(res.status(), 200, "POST /mcp on {base}");
    }

    // The same two processes with in-memory state cannot do this: the known pitfall.
    let (port_c, port_d) = (free_port(), free_port());
    let redirect = format!("http://127.0.0.1:{port_d}/auth/oauth/callback");
    provider.register(&redirect);
    let c = spawn(port_c, &vars(&provider, &redirect, "memory"))
        .await
        .unwrap();
    let _d = spawn(port_d, &vars(&provider, &redirect, "memory"))
        .await
        .unwrap();
    let browser = Browser::new();
    let callback = browser
        .until_callback(&format!("{}/auth/oauth/oidc/start", c.base))
        .await;
    let body = assert_oauth_error(browser.get(&callback).await, 400, "invalid_state").await;
    assert_eq!(body["reason"], "unknown");
}

/// The example's safe default: with no `OAUTH_ALLOWED_*` list, every login is refused (403,
/// no session cookie); a list that does not name the user refuses too; the domain list allows.
#[tokio::test]
async fn the_example_refuses_logins_unless_told_who_may_log_in() {
    let provider = LocalProvider::start().await;
    for (allow, want) in [
        (None, 403),
        (Some(("OAUTH_ALLOWED_EMAILS", "bob@example.com")), 403),
        (Some(("OAUTH_ALLOWED_DOMAINS", "evil-example.com")), 403),
        (Some(("OAUTH_ALLOWED_DOMAINS", "example.com")), 302),
    ] {
        let port = free_port();
        let redirect = format!("http://127.0.0.1:{port}/auth/oauth/callback");
        provider.register(&redirect);
        let mut env: Vec<_> = vars(&provider, &redirect, "memory")
            .into_iter()
            .filter(|(k, _)| *k != "OAUTH_ALLOWED_EMAILS")
            .collect();
        if let Some((k, v)) = allow {
            env.push((k, v.to_owned()));
        }
        let Some(server) = spawn(port, &env).await else {
            return;
        };
        let browser = Browser::new();
        let res = browser
            .login(&format!("{}/auth/oauth/oidc/start", server.base))
            .await;
        assert_eq!(res.status().as_u16(), want, "{allow:?}");
        if want == 403 {
            assert!(res.headers().get("set-cookie").is_none(), "{allow:?}");
            assert_oauth_error(res, 403, "access_denied").await;
            assert_eq!(browser.post_mcp(&server.base).await.status(), 401);
        } else {
            assert_eq!(browser.post_mcp(&server.base).await.status(), 200);
        }
    }
}
