//! Without `public_base_url`, OAuth challenges name a metadata URL built from the request's
//! `Host` header: building such a stack logs one warning. (Its own test binary: `tracing`
//! caches callsite interest per process, so tests logging without a subscriber must not run
//! beside it.)

use crate::common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
use tower_mcp_auth::{policy::EndpointPolicyLayer, EndpointPolicy, JwtVerifier, McpAuth};

/// Collects what the fmt subscriber writes.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

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
    /// How many warnings about the missing base URL were logged so far.
    fn warnings(&self) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|l| l.contains("WARN") && l.contains("no public_base_url is set"))
            .count()
    }
}

fn verifier() -> JwtVerifier {
    JwtVerifier::hs256(SECRET).build().unwrap()
}

#[test]
fn building_oauth_without_public_base_url_warns_once() {
    let logs = Logs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // OAuth on the default policy (keys and a verifier: "both"), no base URL: one warning.
    let _ = McpAuth::builder()
        .api_keys(registry())
        .bearer(verifier())
        .build()
        .unwrap();
    assert_eq!(logs.warnings(), 1);

    // OAuth on one endpoint only, through the policy builder and the plain constructor.
    let _ = EndpointPolicyLayer::builder(EndpointPolicy::api_key_only())
        .route("/mcp", EndpointPolicy::oauth_only())
        .build()
        .unwrap();
    assert_eq!(logs.warnings(), 2);
    let _ = EndpointPolicyLayer::new(EndpointPolicy::both());
    assert_eq!(logs.warnings(), 3);

    // With a base URL, or without OAuth anywhere: silent.
    let _ = McpAuth::builder()
        .bearer(verifier())
        .public_base_url("https://mcp.example.com")
        .build()
        .unwrap();
    let _ = McpAuth::builder()
        .api_keys(registry())
        .bearer(verifier())
        .default_policy(EndpointPolicy::api_key_only())
        .endpoint("/health", EndpointPolicy::open())
        .build()
        .unwrap();
    let _ = EndpointPolicyLayer::new(EndpointPolicy::api_key_only());
    assert_eq!(logs.warnings(), 3);
}
