//! The audit trail (`AuditLayer` through `McpAuthBuilder::audit`) through a real axum router
//! over TCP: one event per decision with its reason (401, 403, 429 lockout / quota / tool
//! quota, MCP refusals, origin), identity, endpoint pattern, JSON-RPC method and target (one
//! event per batch message), client IP and request id; the queued sinks drop and count when
//! full; and no sink ever writes a presented key, token or cookie.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing;
use axum::Router;
use serde_json::{json, Value};
use tower_mcp_auth::audit::{
    AuditEvent, AuditLayer, AuditReceiver, AuditSink, ChannelSink, JsonLinesSink, Outcome,
    TracingSink,
};
use tower_mcp_auth::origin::OriginLayer;
use tower_mcp_auth::rate_limit::{FailedAuthLimitLayer, RateLimitLayer, ToolQuotas};
use tower_mcp_auth::store::{MemoryStore, Quota};
use tower_mcp_auth::{EndpointPolicy, JwtVerifier, McpAuth, McpRules};

use crate::common::{client, hs256, now, registry, serve, token, ALICE_KEY, BOB_KEY, SECRET};

const REPLY: &str = r#"{"jsonrpc":"2.0","id":1,"result":{}}"#;

fn routes() -> Router {
    Router::new()
        .route("/mcp", routing::post(|| async { REPLY }))
        .route("/users/alice/mcp", routing::post(|| async { REPLY }))
}

fn verifier() -> JwtVerifier {
    JwtVerifier::hs256(SECRET).build().unwrap()
}

/// Keys and tokens, alice's private endpoint, MCP permissions, events into a channel.
async fn audited(sink: impl AuditSink) -> String {
    let layer = AuditLayer::new(sink);
    serve(move |_| {
        let auth = McpAuth::builder()
            .api_keys(registry())
            .bearer(verifier())
            .session_cookie("mcp_session")
            .endpoint(
                "/users/alice/mcp",
                EndpointPolicy::both().private_to("alice"),
            )
            .mcp_permissions(McpRules::new())
            .audit(layer)
            .build()
            .unwrap();
        routes().layer(auth)
    })
    .await
}

fn next(events: &AuditReceiver) -> AuditEvent {
    events
        .recv_timeout(Duration::from_secs(5))
        .expect("an audit event")
}

fn call(id: i64, method: &str, name: Option<&str>) -> Value {
    match name {
        Some(name) => {
            json!({"jsonrpc": "2.0", "id": id, "method": method, "params": {"name": name}})
        }
        None => json!({"jsonrpc": "2.0", "id": id, "method": method}),
    }
}

fn post(base: &str, path: &str) -> reqwest::RequestBuilder {
    client().post(format!("{base}{path}"))
}

async fn sent(req: reqwest::RequestBuilder, body: &Value) -> reqwest::Response {
    req.json(body).send().await.unwrap()
}

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

#[tokio::test]
async fn every_decision_is_one_event_with_its_reason() {
    let (sink, events) = ChannelSink::bounded(1000);
    let base = audited(sink.clone()).await;
    let echo = call(1, "tools/call", Some("echo"));

    // 401: nothing presented.
    let res = sent(post(&base, "/mcp"), &echo).await;
    assert_eq!(res.status(), 401);
    let e = next(&events);
    assert_eq!(e.outcome, Outcome::Refused);
    assert_eq!(e.status, 401);
    assert_eq!(e.reason, Some("authentication_required"));
    assert!(e.identity.is_none());
    assert_eq!(e.endpoint.as_deref(), Some("default"));
    assert_eq!((e.http_method.as_str(), e.path.as_str()), ("POST", "/mcp"));
    assert_eq!(e.client_ip, Some(LOCALHOST));
    assert!(e.rpc.is_none(), "refused before the body was read");

    // 401: a wrong key, a wrong token.
    let res = sent(post(&base, "/mcp").header("x-api-key", "nope-0001"), &echo).await;
    assert_eq!(res.status(), 401);
    assert_eq!(next(&events).reason, Some("invalid_credentials"));
    let res = sent(post(&base, "/mcp").bearer_auth("not.a.jwt"), &echo).await;
    assert_eq!(res.status(), 401);
    assert_eq!(next(&events).reason, Some("invalid_token"));

    // Allowed, with the request id.
    let res = sent(
        post(&base, "/mcp")
            .header("x-api-key", ALICE_KEY)
            .header("x-request-id", "req-42"),
        &echo,
    )
    .await;
    assert_eq!(res.status(), 200);
    let e = next(&events);
    assert_eq!(
        (e.outcome, e.status, e.reason),
        (Outcome::Allowed, 200, None)
    );
    let id = e.identity.as_ref().unwrap();
    assert_eq!((id.name(), id.user_id()), ("alice laptop", Some("alice")));
    assert_eq!(id.method().as_str(), "api_key");
    assert_eq!(e.request_id.as_deref(), Some("req-42"));
    let rpc = e.rpc.as_ref().unwrap();
    assert_eq!(rpc.method, "tools/call");
    assert_eq!(rpc.id, Some(json!(1)));
    assert_eq!(rpc.target.as_deref(), Some("echo"));
    assert_eq!(rpc.refusal, None);

    // A bearer token, allowed.
    let res = post(&base, "/mcp")
        .bearer_auth(token("carol"))
        .json(&call(2, "tools/list", None))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let e = next(&events);
    assert_eq!(e.outcome, Outcome::Allowed);
    let id = e.identity.as_ref().unwrap();
    assert_eq!((id.name(), id.method().as_str()), ("carol", "bearer"));

    // 403 at the MCP layer: bob may list tools, not call them.
    let res = sent(post(&base, "/mcp").header("x-api-key", BOB_KEY), &echo).await;
    assert_eq!(res.status(), 403);
    let e = next(&events);
    assert_eq!(
        (e.outcome, e.reason),
        (Outcome::Refused, Some("insufficient_scope"))
    );
    assert_eq!(e.identity.as_ref().unwrap().user_id(), Some("bob"));
    assert_eq!(e.rpc.as_ref().unwrap().refusal, Some("insufficient_scope"));

    // A refused batch: one event per message; only the one lacking its permission is the cause.
    let batch = json!([
        call(3, "tools/list", None),
        call(4, "tools/call", Some("echo"))
    ]);
    let res = sent(post(&base, "/mcp").header("x-api-key", BOB_KEY), &batch).await;
    assert_eq!(res.status(), 403);
    let (a, b) = (next(&events), next(&events));
    for e in [&a, &b] {
        assert_eq!(
            (e.outcome, e.reason),
            (Outcome::Refused, Some("insufficient_scope"))
        );
    }
    let (a, b) = (a.rpc.unwrap(), b.rpc.unwrap());
    assert_eq!(
        (a.method.as_str(), a.id, a.refusal),
        ("tools/list", Some(json!(3)), None)
    );
    assert_eq!(
        (b.target.as_deref(), b.refusal),
        (Some("echo"), Some("insufficient_scope"))
    );

    // An allowed batch with a notification: three events.
    let batch = json!([
        call(5, "tools/list", None),
        call(6, "tools/call", Some("search")),
        {"jsonrpc": "2.0", "method": "notifications/initialized"}
    ]);
    let res = sent(post(&base, "/mcp").header("x-api-key", ALICE_KEY), &batch).await;
    assert_eq!(res.status(), 200);
    let batch_events: Vec<_> = (0..3).map(|_| next(&events)).collect();
    assert!(batch_events.iter().all(|e| e.outcome == Outcome::Allowed));
    let methods: Vec<_> = batch_events
        .iter()
        .map(|e| e.rpc.as_ref().unwrap().method.as_str())
        .collect();
    assert_eq!(
        methods,
        ["tools/list", "tools/call", "notifications/initialized"]
    );
    assert_eq!(batch_events[2].rpc.as_ref().unwrap().id, None);

    // 403 at the policy: bob on alice's endpoint, attributed to bob, with the route pattern.
    let res = sent(
        post(&base, "/users/alice/mcp").header("x-api-key", BOB_KEY),
        &echo,
    )
    .await;
    assert_eq!(res.status(), 403);
    let e = next(&events);
    assert_eq!(e.reason, Some("access_denied"));
    assert_eq!(e.endpoint.as_deref(), Some("/users/alice/mcp"));
    assert_eq!(e.identity.as_ref().unwrap().user_id(), Some("bob"));

    // 400 at the MCP layer: not JSON.
    let res = post(&base, "/mcp")
        .header("x-api-key", ALICE_KEY)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let e = next(&events);
    assert_eq!(
        (e.outcome, e.status, e.reason),
        (Outcome::Refused, 400, Some("invalid_request"))
    );

    assert!(events.try_recv().is_none(), "one event per decision");
    assert_eq!(sink.dropped(), 0);
}

#[tokio::test]
async fn lockouts_quotas_tool_quotas_and_origins_are_told_apart() {
    let (sink, events) = ChannelSink::bounded(100);
    let base = serve(move |_| {
        let store = Arc::new(MemoryStore::new());
        let auth = McpAuth::builder()
            .api_keys(registry())
            .origin(OriginLayer::loopback())
            .failed_auth_limit(FailedAuthLimitLayer::from_shared(
                store.clone(),
                Quota::per_minute(2).unwrap(),
            ))
            .rate_limit(RateLimitLayer::from_shared(
                store.clone(),
                Quota::per_minute(3).unwrap(),
            ))
            .mcp_permissions(
                McpRules::new().tool_quotas(
                    ToolQuotas::from_shared(store)
                        .limit("tools/call:search_*", Quota::per_minute(1).unwrap()),
                ),
            )
            .audit(AuditLayer::new(sink))
            .build()
            .unwrap();
        routes().layer(auth)
    })
    .await;
    let alice = |body: &Value| {
        post(&base, "/mcp")
            .header("x-api-key", ALICE_KEY)
            .json(body)
    };
    let search = call(1, "tools/call", Some("search_docs"));

    assert_eq!(alice(&search).send().await.unwrap().status(), 200);
    assert_eq!(next(&events).outcome, Outcome::Allowed);
    // The tool quota: 429 with the message's id, reason tool_quota.
    let res = alice(&search).send().await.unwrap();
    assert_eq!(res.status(), 429);
    let e = next(&events);
    assert_eq!(
        (e.outcome, e.reason),
        (Outcome::Refused, Some("tool_quota"))
    );
    assert_eq!(e.rpc.as_ref().unwrap().refusal, Some("tool_quota"));
    assert_eq!(e.identity.as_ref().unwrap().user_id(), Some("alice"));
    // The per-identity quota (3 a minute, two spent): the third passes, the fourth is refused.
    assert_eq!(
        alice(&call(2, "ping", None)).send().await.unwrap().status(),
        200
    );
    assert_eq!(next(&events).outcome, Outcome::Allowed);
    let res = alice(&call(3, "ping", None)).send().await.unwrap();
    assert_eq!(res.status(), 429);
    let e = next(&events);
    assert_eq!(
        (e.reason, e.endpoint.as_deref()),
        (Some("quota"), Some("default"))
    );
    assert!(
        e.rpc.is_none(),
        "refused before the MCP layer read the body"
    );

    // Two wrong keys, then the lockout (before the policy: no endpoint, no identity).
    for _ in 0..2 {
        let res = sent(
            post(&base, "/mcp").header("x-api-key", "wrong-0001"),
            &search,
        )
        .await;
        assert_eq!(res.status(), 401);
        assert_eq!(next(&events).reason, Some("invalid_credentials"));
    }
    let res = sent(
        post(&base, "/mcp").header("x-api-key", "wrong-0001"),
        &search,
    )
    .await;
    assert_eq!(res.status(), 429);
    let e = next(&events);
    assert_eq!((e.reason, e.endpoint.as_deref()), (Some("lockout"), None));
    assert!(e.identity.is_none());

    // A page on another origin.
    let res = sent(
        post(&base, "/mcp").header("origin", "https://evil.example"),
        &search,
    )
    .await;
    assert_eq!(res.status(), 403);
    assert_eq!(next(&events).reason, Some("invalid_origin"));
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_without_holding_up_requests() {
    let (sink, events) = ChannelSink::bounded(2);
    let base = audited(sink.clone()).await;
    for id in 0..5 {
        let res = post(&base, "/mcp")
            .header("x-api-key", ALICE_KEY)
            .json(&call(id, "tools/list", None))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    assert_eq!(sink.dropped(), 3);
    assert!(events.try_recv().is_some());
    assert!(events.try_recv().is_some());
    assert!(events.try_recv().is_none());
}

/// Fans every event out to the three sinks of the crate.
struct Every(Vec<Box<dyn AuditSink>>);

impl AuditSink for Every {
    fn record(&self, event: AuditEvent) {
        for sink in &self.0 {
            sink.record(event.clone());
        }
    }
}

/// A `Write` into shared memory, for the JSON lines sink and the tracing subscriber.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buffer {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

// A current-thread runtime: the server runs on this thread, where the subscriber is set.
#[tokio::test(flavor = "current_thread")]
async fn no_sink_ever_writes_a_presented_credential() {
    let traced = Buffer::default();
    let writer = traced.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_env_filter("tower_mcp_auth::audit=info")
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    assert!(TracingSink::new().enabled());

    let lines = Buffer::default();
    let json_sink = JsonLinesSink::new(lines.clone(), 1000);
    let (channel, events) = ChannelSink::bounded(1000);
    let base = audited(Every(vec![
        Box::new(TracingSink::new()),
        Box::new(json_sink.clone()),
        Box::new(channel),
    ]))
    .await;

    let good_token = token("alice");
    let bad_token = hs256(&json!({"sub": "alice", "exp": now() - 3600}));
    let wrong_key = "wrong-key-that-must-never-be-logged-0001";
    let presented = [
        ALICE_KEY,
        BOB_KEY,
        wrong_key,
        good_token.as_str(),
        bad_token.as_str(),
    ];
    let body = call(1, "tools/call", Some("echo"));
    let mut count = 0;
    let mut send = |req: reqwest::RequestBuilder| {
        count += 1;
        req.json(&body).send()
    };
    send(post(&base, "/mcp").header("x-api-key", ALICE_KEY))
        .await
        .unwrap();
    send(post(&base, &format!("/mcp?api_key={ALICE_KEY}")))
        .await
        .unwrap();
    send(post(&base, &format!("/mcp?apikey={wrong_key}")))
        .await
        .unwrap();
    send(post(&base, "/mcp").header("x-api-key", BOB_KEY))
        .await
        .unwrap();
    send(post(&base, "/mcp").header("x-api-key", wrong_key))
        .await
        .unwrap();
    send(post(&base, "/mcp").bearer_auth(&good_token))
        .await
        .unwrap();
    send(post(&base, "/mcp").bearer_auth(&bad_token))
        .await
        .unwrap();
    send(post(&base, "/mcp").header("cookie", format!("mcp_session={good_token}")))
        .await
        .unwrap();
    send(post(&base, "/mcp").header("cookie", format!("mcp_session={bad_token}")))
        .await
        .unwrap();
    send(post(&base, "/users/alice/mcp").header("x-api-key", BOB_KEY))
        .await
        .unwrap();

    let received: Vec<AuditEvent> = (0..count).map(|_| next(&events)).collect();
    assert!(received.iter().any(|e| e.outcome == Outcome::Allowed));
    assert!(received.iter().any(|e| e.reason == Some("invalid_token")));
    // The writer thread flushes when its queue runs empty; wait for every line.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while lines.text().lines().count() < count {
        assert!(std::time::Instant::now() < deadline, "JSON lines written");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let written = lines.text();
    for line in written.lines() {
        let event: Value = serde_json::from_str(line).expect("one JSON object per line");
        assert!(
            event["outcome"].is_string() && event["status"].is_u64(),
            "{line}"
        );
    }
    let traced = traced.text();
    assert_eq!(traced.matches("auth decision").count(), count, "{traced}");
    let debugged = format!("{received:?}");
    let jsons: String = received.iter().map(|e| e.to_json().to_string()).collect();
    for (name, output) in [
        ("tracing", &traced),
        ("json lines", &written),
        ("debug", &debugged),
        ("to_json", &jsons),
    ] {
        for secret in presented {
            assert!(
                !output.contains(secret),
                "{name} output contains a presented credential"
            );
            // Not even the signature of a token.
            if let Some(signature) = secret.rsplit('.').next().filter(|s| s.len() > 20) {
                assert!(
                    !output.contains(signature),
                    "{name} output contains a token signature"
                );
            }
        }
        assert!(
            !output.contains("api_key="),
            "{name} output holds a query string"
        );
    }
    assert_eq!(json_sink.dropped(), 0);
}
