//! RFC 8693 token exchange (on-behalf-of tokens) against a local identity provider that
//! implements the exchange: a tool handler behind the auth stack asks for a downstream token
//! for its caller; answers are cached per (subject, downstream), single-flight, and errors
//! are the provider's codes. The caller's token goes only to the token endpoint.
#![cfg(feature = "token-exchange")]

use crate::common::{self, *};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{request::Parts, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};
use tower_mcp_auth::exchange::{
    Downstream, ExchangeError, TokenExchange, ACCESS_TOKEN_TYPE, GRANT_TYPE,
};
use tower_mcp_auth::{EndpointPolicy, JwtVerifier, McpAuth};

const CLIENT_ID: &str = "mcp-server";
const CLIENT_SECRET: &str = "exchange-client-secret";

/// What the provider saw and how it answers.
#[derive(Default)]
struct IdpState {
    exchanges: AtomicUsize,
    /// Every subject token it was sent.
    subject_tokens: Mutex<Vec<String>>,
    /// `expires_in` of its answers.
    expires_in: Mutex<Option<u64>>,
}

/// A token endpoint implementing RFC 8693 for the test's HS256 tokens. Audience `forbidden`
/// is `invalid_target`, `broken` a 500, `slow` answers after 300 ms.
async fn token_endpoint(
    State(state): State<Arc<IdpState>>,
    headers: HeaderMap,
    body: String,
) -> axum::response::Response {
    let form: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let get = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let basic = format!(
        "Basic {}",
        STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(basic.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    if get("grant_type") != GRANT_TYPE || get("subject_token_type") != ACCESS_TOKEN_TYPE {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "unsupported_grant_type"})),
        )
            .into_response();
    }
    let subject = get("subject_token");
    let Ok(identity) = JwtVerifier::hs256(SECRET)
        .build()
        .unwrap()
        .verify_now(&subject)
    else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant"})),
        )
            .into_response();
    };
    state.subject_tokens.lock().unwrap().push(subject);
    let audience = get("audience");
    match audience.as_str() {
        "forbidden" => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "invalid_target"})),
            )
                .into_response()
        }
        "broken" => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        "slow" => tokio::time::sleep(Duration::from_millis(300)).await,
        _ => {}
    }
    let n = state.exchanges.fetch_add(1, Ordering::SeqCst);
    let mut answer = json!({
        "access_token": format!("downstream-{audience}-{}-{n}", identity.user_id().unwrap()),
        "issued_token_type": ACCESS_TOKEN_TYPE,
        "token_type": "Bearer",
        "scope": get("scope"),
    });
    if let Some(secs) = *state.expires_in.lock().unwrap() {
        answer["expires_in"] = json!(secs);
    }
    Json(answer).into_response()
}

async fn idp() -> (String, Arc<IdpState>) {
    let state = Arc::new(IdpState::default());
    *state.expires_in.lock().unwrap() = Some(300);
    let app = Router::new()
        .route("/token", post(token_endpoint))
        .with_state(Arc::clone(&state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, state)
}

#[derive(serde::Deserialize)]
struct Target {
    aud: String,
    scope: Option<String>,
}

/// A tool handler: the downstream token for its caller, or the exchange error.
async fn tool(
    State(exchange): State<TokenExchange>,
    Query(target): Query<Target>,
    parts: Parts,
) -> axum::response::Response {
    let downstream =
        Downstream::audience(target.aud).scopes(target.scope.iter().flat_map(|s| s.split(' ')));
    match exchange.on_behalf_of(&parts, &downstream).await {
        Ok(token) => Json(json!({"token": token.access_token(),
            "scopes": token.granted_scopes()}))
        .into_response(),
        Err(ExchangeError::NoSubjectToken) => StatusCode::FORBIDDEN.into_response(),
        Err(ExchangeError::Refused { code }) => {
            (StatusCode::BAD_GATEWAY, Json(json!({"refused": code}))).into_response()
        }
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            Json(json!({"unavailable": e.to_string()})),
        )
            .into_response(),
    }
}

async fn server(exchange: TokenExchange) -> String {
    common::serve(move |_| {
        Router::new()
            .route("/tool", post(tool))
            .with_state(exchange)
            .layer(
                McpAuth::builder()
                    .api_keys(registry())
                    .bearer(JwtVerifier::hs256(SECRET).build().unwrap())
                    .endpoint("/tool", EndpointPolicy::both())
                    .build()
                    .unwrap(),
            )
    })
    .await
}

async fn call(base: &str, query: &str, auth: (&str, &str)) -> reqwest::Response {
    client()
        .post(format!("{base}/tool?{query}"))
        .header(auth.0, auth.1)
        .send()
        .await
        .unwrap()
}

/// [`call`]'s JSON body.
async fn json(base: &str, query: &str, auth: (&str, &str)) -> Value {
    call(base, query, auth).await.json().await.unwrap()
}

#[tokio::test]
async fn a_tool_gets_a_downstream_token_for_its_caller_cached_per_subject_and_target() {
    let (url, state) = idp().await;
    let base = server(
        TokenExchange::builder(url, CLIENT_ID, CLIENT_SECRET)
            .build()
            .unwrap(),
    )
    .await;
    let alice = token("alice");
    let bearer = format!("Bearer {alice}");
    let res = call(&base, "aud=crm&scope=crm:read", ("authorization", &bearer)).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token"], "downstream-crm-alice-0");
    assert_eq!(body["scopes"], json!(["crm:read"]));
    // The provider got the caller's token as the subject; nothing else saw it.
    assert_eq!(*state.subject_tokens.lock().unwrap(), vec![alice.clone()]);

    // Same caller, same target: cached (another token of alice's too: per subject).
    let other_alice = format!("Bearer {}", hs256(&claims("alice")));
    for auth in [&bearer, &other_alice] {
        let body = json(&base, "aud=crm&scope=crm:read", ("authorization", auth)).await;
        assert_eq!(body["token"], "downstream-crm-alice-0");
    }
    assert_eq!(state.exchanges.load(Ordering::SeqCst), 1);
    // Another scope set, another audience, another subject: exchanged again.
    let bob = format!("Bearer {}", token("bob"));
    for (query, auth, expect) in [
        ("aud=crm&scope=crm:write", &bearer, "downstream-crm-alice-1"),
        ("aud=billing", &bearer, "downstream-billing-alice-2"),
        ("aud=crm&scope=crm:read", &bob, "downstream-crm-bob-3"),
    ] {
        let body = json(&base, query, ("authorization", auth)).await;
        assert_eq!(body["token"], expect, "{query}");
    }
}

#[tokio::test]
async fn concurrent_calls_make_one_exchange() {
    let (url, state) = idp().await;
    let base = server(
        TokenExchange::builder(url, CLIENT_ID, CLIENT_SECRET)
            .build()
            .unwrap(),
    )
    .await;
    let bearer = format!("Bearer {}", token("alice"));
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let (base, bearer) = (base.clone(), bearer.clone());
            tokio::spawn(async move { call(&base, "aud=slow", ("authorization", &bearer)).await })
        })
        .collect();
    for call in calls {
        let res = call.await.unwrap();
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["token"], "downstream-slow-alice-0");
    }
    assert_eq!(state.exchanges.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn tokens_near_expiry_or_without_expiry_are_exchanged_again() {
    let (url, state) = idp().await;
    let exchange = TokenExchange::builder(url, CLIENT_ID, CLIENT_SECRET)
        .build()
        .unwrap();
    let base = server(exchange).await;
    let bearer = format!("Bearer {}", token("alice"));
    // Expires within the 30 s refresh skew: not kept.
    *state.expires_in.lock().unwrap() = Some(20);
    for n in 0..2 {
        let body = json(&base, "aud=crm", ("authorization", &bearer)).await;
        assert_eq!(body["token"], format!("downstream-crm-alice-{n}"));
    }
    // No expires_in: the end is unknown, so not kept either.
    *state.expires_in.lock().unwrap() = None;
    for n in 2..4 {
        let body = json(&base, "aud=crm", ("authorization", &bearer)).await;
        assert_eq!(body["token"], format!("downstream-crm-alice-{n}"));
    }
}

#[tokio::test]
async fn refusals_outages_and_callers_without_a_bearer_token() {
    let (url, state) = idp().await;
    let base = server(
        TokenExchange::builder(&url, CLIENT_ID, CLIENT_SECRET)
            .build()
            .unwrap(),
    )
    .await;
    let bearer = format!("Bearer {}", token("alice"));
    let res = call(&base, "aud=forbidden", ("authorization", &bearer)).await;
    assert_eq!(res.status(), 502);
    assert_eq!(
        res.json::<Value>().await.unwrap()["refused"],
        "invalid_target"
    );
    let res = call(&base, "aud=broken", ("authorization", &bearer)).await;
    assert_eq!(res.status(), 502);
    let text = res.json::<Value>().await.unwrap()["unavailable"].to_string();
    assert!(text.contains("HTTP 500"), "{text}");
    assert!(!text.contains(&bearer[7..]), "no token in messages: {text}");
    // An API key caller has no token to exchange; nothing is sent.
    let before = state.subject_tokens.lock().unwrap().len();
    let res = call(&base, "aud=crm", ("x-api-key", ALICE_KEY)).await;
    assert_eq!(res.status(), 403);
    assert_eq!(state.subject_tokens.lock().unwrap().len(), before);
    // Wrong client secret: the provider's invalid_client.
    let wrong = server(
        TokenExchange::builder(&url, CLIENT_ID, "wrong")
            .build()
            .unwrap(),
    )
    .await;
    let res = call(&wrong, "aud=crm", ("authorization", &bearer)).await;
    assert_eq!(res.status(), 502);
    assert_eq!(
        res.json::<Value>().await.unwrap()["refused"],
        "invalid_client"
    );
    // Nothing listening: unavailable, not a panic.
    let closed = crate::idp::closed_port_url().await;
    let down = server(
        TokenExchange::builder(format!("{closed}/token"), CLIENT_ID, CLIENT_SECRET)
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap(),
    )
    .await;
    let res = call(&down, "aud=crm", ("authorization", &bearer)).await;
    assert_eq!(res.status(), 502);
    assert!(res.json::<Value>().await.unwrap()["unavailable"].is_string());
}
