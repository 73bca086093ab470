//! Bad input of any kind gets a documented 4xx, never a panic or a 500.

mod common;

use common::*;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tower_mcp_auth::{EndpointPolicy, JwtVerifier, McpAuth};

async fn server() -> String {
    serve(|base| {
        routes().layer(
            McpAuth::builder()
                .api_keys(registry())
                .bearer(JwtVerifier::hs256(SECRET).build().unwrap())
                .public_base_url(base)
                .default_policy(EndpointPolicy::both())
                .build()
                .unwrap(),
        )
    })
    .await
}

async fn send(base: &str, path: &str, pairs: &[(&str, &[u8])]) -> reqwest::Response {
    let mut headers = HeaderMap::new();
    for (k, v) in pairs {
        headers.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_bytes(v).unwrap(),
        );
    }
    client()
        .post(format!("{base}{path}"))
        .headers(headers)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn malformed_api_keys_are_invalid_credentials() {
    let base = server().await;
    let huge = vec![b'k'; 64 * 1024];
    let generated_typo = {
        let mut k = tower_mcp_auth::generate_api_key()
            .unwrap()
            .into_plaintext()
            .into_bytes();
        k[20] = if k[20] == b'x' { b'y' } else { b'x' };
        k
    };
    let cases: Vec<Vec<(&str, &[u8])>> = vec![
        vec![("x-api-key", b"caf\xc3\xa9-\xff")],
        vec![("x-api-key", &huge)],
        vec![("x-api-key", b"")],
        vec![("x-api-key", b"a"), ("x-api-key", ALICE_KEY.as_bytes())],
        vec![("x-api-key", &generated_typo)],
    ];
    for headers in cases {
        let res = send(&base, "/mcp", &headers).await;
        assert_error(res, 401, "invalid_credentials").await;
    }
    for query in ["api_key=%ff%fe", "api_key=", "api_key=a&apikey=b"] {
        let res = send(&base, &format!("/mcp?{query}"), &[]).await;
        assert_error(res, 401, "invalid_credentials").await;
    }
}

#[tokio::test]
async fn malformed_bearer_tokens_are_invalid_token() {
    let base = server().await;
    let mut huge = b"Bearer ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 64 * 1024));
    let none_token = {
        use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
        format!(
            "Bearer {}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(claims("root").to_string())
        )
    };
    let cases: Vec<Vec<(&str, &[u8])>> = vec![
        vec![("authorization", b"Bearer ")],
        vec![("authorization", b"Bearer")],
        vec![("authorization", b"Bearer not.a.jwt")],
        vec![("authorization", b"Bearer \xff\xfe")],
        vec![("authorization", &huge)],
        vec![("authorization", none_token.as_bytes())],
        vec![
            ("authorization", b"Bearer a"),
            ("authorization", b"Bearer b"),
        ],
    ];
    for headers in cases {
        let res = send(&base, "/mcp", &headers).await;
        let ch = challenge(&res).unwrap();
        assert!(ch.contains(r#"error="invalid_token""#), "{ch}");
        assert_error(res, 401, "invalid_token").await;
    }
}

#[tokio::test]
async fn other_schemes_count_as_missing() {
    let base = server().await;
    for value in [&b"Basic dXNlcjpwYXNz"[..], b"Digest x", b"Token abc"] {
        let res = send(&base, "/mcp", &[("authorization", value)]).await;
        assert_error(res, 401, "authentication_required").await;
    }
}

#[tokio::test]
async fn scheme_is_case_insensitive() {
    let base = server().await;
    let t = format!("bEaReR {}", token("alice"));
    let res = send(&base, "/mcp", &[("authorization", t.as_bytes())]).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn bearer_tokens_are_never_read_from_the_query() {
    let base = server().await;
    for q in ["access_token", "token", "bearer"] {
        let res = send(&base, &format!("/mcp?{q}={}", token("alice")), &[]).await;
        assert_error(res, 401, "authentication_required").await;
    }
}
