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
    let mcp = |body: serde_json::Value| http.post(format!("{base}/mcp")).json(&body);
    let whoami =
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "whoami"}});
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});

    assert_eq!(mcp(whoami.clone()).send().await.unwrap().status(), 401);
    let res = mcp(whoami.clone())
        .header("x-api-key", "wrong-0001")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    for expected in [200, 200, 429] {
        let res = mcp(whoami.clone())
            .header("x-api-key", "mk-alice-0001")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), expected);
    }
    let bearer = token("carol");
    for _ in 0..2 {
        let res = mcp(list.clone()).bearer_auth(&bearer).send().await.unwrap();
        assert_eq!(res.status(), 200);
    }

    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let decisions = "mcp_auth_decisions_total";
    assert_eq!(
        sample(
            &text,
            decisions,
            &[
                ("outcome", "refused"),
                ("reason", "authentication_required")
            ]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            decisions,
            &[("reason", "invalid_credentials"), ("auth_method", "none")]
        ),
        1.0,
        "{text}"
    );
    let allowed_calls = [
        ("outcome", "allowed"),
        ("auth_method", "api_key"),
        ("endpoint", "default"),
        ("rpc_method", "tools/call"),
    ];
    assert_eq!(sample(&text, decisions, &allowed_calls), 2.0, "{text}");
    assert_eq!(
        sample(
            &text,
            decisions,
            &[("reason", "tool_quota"), ("rpc_method", "tools/call")]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            decisions,
            &[("auth_method", "bearer"), ("rpc_method", "tools/list")]
        ),
        2.0,
        "{text}"
    );
    assert_eq!(
        sample(&text, "mcp_auth_quota_refusals_total", &[("quota", "tool")]),
        1.0,
        "{text}"
    );
    // One verification, then the cache.
    assert_eq!(
        sample(&text, "mcp_auth_token_cache_total", &[("result", "miss")]),
        1.0,
        "{text}"
    );
    assert_eq!(
        sample(&text, "mcp_auth_token_cache_total", &[("result", "hit")]),
        1.0,
        "{text}"
    );
    let verified = [("verifier", "jwt"), ("result", "ok")];
    assert_eq!(
        sample(&text, "mcp_auth_verify_duration_seconds_count", &verified),
        1.0,
        "{text}"
    );
    // The lockout's reservation, the quota and the tool quota all ask the store.
    assert!(
        sample(
            &text,
            "mcp_auth_store_op_duration_seconds_count",
            &[("op", "gcra")]
        ) >= 7.0,
        "{text}"
    );
    assert_eq!(
        sample(&text, "mcp_auth_store_errors_total", &[]),
        0.0,
        "{text}"
    );
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
    for _ in 0..20 {
        let res = http
            .post(format!("{base}/mcp"))
            .header("x-api-key", "wrong-0001")
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
    }
    let res = http
        .post(format!("{base}/mcp"))
        .header("x-api-key", "wrong-0001")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(sample(&text, "mcp_auth_lockouts_total", &[]), 1.0, "{text}");
    assert_eq!(
        sample(
            &text,
            "mcp_auth_decisions_total",
            &[("reason", "lockout"), ("endpoint", "none")]
        ),
        1.0,
        "{text}"
    );
}
