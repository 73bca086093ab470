//! Each state error has its own log line (in its own test binary: `tracing` caches callsite
//! interest per process, so other tests logging without a subscriber must not run beside it).
#![cfg(feature = "oauth-client")]

use crate::oauth_common;

use std::sync::Arc;
use std::time::Duration;

use oauth_common::*;
use tower_mcp_auth::oauth::{Expected, StartOptions};
use tower_mcp_auth::store::{MemoryStore, StateStore};

fn memory() -> Arc<dyn StateStore> {
    Arc::new(MemoryStore::new())
}

mod logs {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    /// Collects what the fmt subscriber writes.
    #[derive(Clone, Default)]
    pub struct Logs(pub Arc<Mutex<Vec<u8>>>);

    impl Write for Logs {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
        type Writer = Logs;
        fn make_writer(&'a self) -> Logs {
            self.clone()
        }
    }

    impl Logs {
        pub fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn each_state_error_has_its_own_log_line() {
    let logs = logs::Logs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    // Current-thread runtime: the servers' tasks log on this thread too.
    let _guard = tracing::subscriber::set_default(subscriber);

    let provider = LocalProvider::start().await;
    let p = provider.oidc();
    let app = serve_app(&provider, memory(), |b| {
        b.provider(p)
            .state_ttl(Duration::from_secs(2))
            .upstream("gw-a", "oidc")
            .token_encryption_key(tower_mcp_auth::oauth::EncryptionKey::generate())
    })
    .await;
    let start = format!("{}/auth/oauth/oidc/start", app.base);

    // Replay.
    let browser = Browser::new();
    let callback = browser.until_callback(&start).await;
    let cookies = browser.cookie_header();
    assert_eq!(browser.get(&callback).await.status(), 302);
    let res = no_redirects()
        .get(&callback)
        .header("cookie", cookies)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    // Forged.
    let res = browser.get(&with_param(&callback, "state", "x.y")).await;
    assert_eq!(res.status(), 403);
    // Unknown: same secret, another store.
    let p2 = provider.oidc();
    let other = serve_app(&provider, memory(), |b| b.provider(p2)).await;
    let late = Browser::new();
    let callback = late.until_callback(&start).await;
    let res = late.get(&callback.replace(&app.base, &other.base)).await;
    assert_eq!(res.status(), 400);
    // Gateway mismatch.
    let started = app
        .client
        .start(
            "oidc",
            StartOptions::default().upstream("gw-a").user("alice"),
        )
        .await
        .unwrap();
    let cb = Browser::new().authorize(started.url()).await;
    let parts = http::Request::get(cb.as_str())
        .header(
            "cookie",
            started
                .cookie()
                .unwrap()
                .to_str()
                .unwrap()
                .split(';')
                .next()
                .unwrap(),
        )
        .body(())
        .unwrap()
        .into_parts()
        .0;
    assert!(app
        .client
        .callback_expecting(&parts, &Expected::default().upstream("gw-b"))
        .await
        .is_err());
    // Expired.
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert_eq!(late.get(&callback).await.status(), 400);

    let text = logs.text();
    for line in [
        "State was already used - possible replay attack",
        "Invalid state signature - possible CSRF attack",
        "State not found in the state store",
        "State parameter gateway mismatch",
        "State has expired",
    ] {
        assert!(text.contains(line), "missing log line {line:?} in:\n{text}");
    }
    // Nothing secret in the logs: no state, code, token or verifier values.
    assert!(!text.contains(&param(&callback, "state").unwrap()));
    assert!(!text.contains(&param(&callback, "code").unwrap()));
}
