//! Metrics (feature `metrics`): runs the `metrics` example, sends a few requests (401s, tool
//! calls up to a per-tool quota, a cached bearer token), scrapes `/metrics` and checks the
//! counters, histograms and that labels stay bounded.

use std::collections::HashMap;

use serde_json::json;

use crate::common;
use crate::example_process;

const KEYS: &str = r#"{"mk-alice-0001":{"name":"alice bot","userId":"alice","permissions":["*"]}}"#;
const SECRET: &str = "metrics-example-test-secret-32-bytes!";

/// Sums the samples of `name` whose labels include every pair of `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut total = 0.0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (metric, rest) = series.split_once('{').unwrap_or((series, "}"));
        if metric != name {
            continue;
        }
        let found: HashMap<&str, &str> = rest
            .trim_end_matches('}')
            .split(',')
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k, v.trim_matches('"')))
            .collect();
        if labels.iter().all(|(k, v)| found.get(k) == Some(v)) {
            total += value.parse::<f64>().unwrap();
        }
    }
    total
}

fn token(sub: &str) -> String {
    tower_mcp_auth::bearer::install_crypto_provider();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": sub, "exp": common::now() + 600, "scope": "tools/list"}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// Asserts that the samples of `name` with `labels` add up to `n`.
fn expect(text: &str, name: &str, labels: &[(&str, &str)], n: f64) {
    assert_eq!(
        sample(text, name, labels),
        n,
        "{name} {labels:?} in:\n{text}"
    );
}

async fn scrape(base: &str) -> String {
    let res = common::client().get(format!("{base}/metrics")).send();
    res.await.unwrap().text().await.unwrap()
}

#[tokio::test]
async fn the_example_exports_decisions_and_component_metrics() {
    let vars = [
        ("MCP_API_KEYS", KEYS),
        ("JWT_SECRET", SECRET),
        ("TOOL_QUOTA_PER_MINUTE", "2"),
    ];
    let Some(example) = example_process::start("metrics", &vars).await else {
        return;
    };
    let base = &example.base;
    let http = common::client();
    let mcp = |body: &serde_json::Value| http.post(format!("{base}/mcp")).json(body);
    let whoami =
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "whoami"}});
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let bearer = token("carol");
    let requests = [
        (mcp(&whoami), 401),
        (mcp(&whoami).header("x-api-key", "wrong-0001"), 401),
        (mcp(&whoami).header("x-api-key", "mk-alice-0001"), 200),
        (mcp(&whoami).header("x-api-key", "mk-alice-0001"), 200),
        (mcp(&whoami).header("x-api-key", "mk-alice-0001"), 429),
        (mcp(&list).bearer_auth(&bearer), 200),
        (mcp(&list).bearer_auth(&bearer), 200),
    ];
    for (request, status) in requests {
        assert_eq!(request.send().await.unwrap().status(), status);
    }

    let text = scrape(base).await;
    let decisions = "mcp_auth_decisions_total";
    let refused = ("outcome", "refused");
    expect(
        &text,
        decisions,
        &[refused, ("reason", "authentication_required")],
        1.0,
    );
    expect(
        &text,
        decisions,
        &[("reason", "invalid_credentials"), ("auth_method", "none")],
        1.0,
    );
    let allowed_calls = [
        ("outcome", "allowed"),
        ("auth_method", "api_key"),
        ("endpoint", "default"),
        ("rpc_method", "tools/call"),
    ];
    expect(&text, decisions, &allowed_calls, 2.0);
    expect(
        &text,
        decisions,
        &[("reason", "tool_quota"), ("rpc_method", "tools/call")],
        1.0,
    );
    expect(
        &text,
        decisions,
        &[("auth_method", "bearer"), ("rpc_method", "tools/list")],
        2.0,
    );
    expect(
        &text,
        "mcp_auth_quota_refusals_total",
        &[("quota", "tool")],
        1.0,
    );
    // One verification, then the cache.
    expect(
        &text,
        "mcp_auth_token_cache_total",
        &[("result", "miss")],
        1.0,
    );
    expect(
        &text,
        "mcp_auth_token_cache_total",
        &[("result", "hit")],
        1.0,
    );
    let verified = [("verifier", "jwt"), ("result", "ok")];
    expect(
        &text,
        "mcp_auth_verify_duration_seconds_count",
        &verified,
        1.0,
    );
    // The lockout's reservation, the quota and the tool quota all ask the store.
    let store_ops = sample(
        &text,
        "mcp_auth_store_op_duration_seconds_count",
        &[("op", "gcra")],
    );
    assert!(store_ops >= 7.0, "{text}");
    expect(&text, "mcp_auth_store_errors_total", &[], 0.0);
    // Bounded labels: no user ids, key names or raw paths.
    for unbounded in ["alice", "carol", "/mcp", "whoami"] {
        assert!(
            !text.contains(unbounded),
            "{unbounded} in the metrics:\n{text}"
        );
    }
}

#[tokio::test]
async fn lockouts_are_counted() {
    let vars = [("MCP_API_KEYS", KEYS)];
    let Some(example) = example_process::start("metrics", &vars).await else {
        return;
    };
    let base = &example.base;
    let http = common::client();
    // The example locks a client out after 20 wrong credentials a minute.
    for attempt in 1..=21 {
        let res = http
            .post(format!("{base}/mcp"))
            .header("x-api-key", "wrong-0001")
            .json(&json!({}));
        let status = res.send().await.unwrap().status();
        assert_eq!(
            status,
            if attempt <= 20 { 401 } else { 429 },
            "attempt {attempt}"
        );
    }
    let text = scrape(base).await;
    expect(&text, "mcp_auth_lockouts_total", &[], 1.0);
    expect(
        &text,
        "mcp_auth_decisions_total",
        &[("reason", "lockout"), ("endpoint", "none")],
        1.0,
    );
}
