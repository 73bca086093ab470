//! Runs the `hyper_server` and `tonic_server` examples and checks the stack on each: HTTP/1
//! JSON-RPC on bare hyper, and gRPC over HTTP/2 on tonic.

use crate::common;
use crate::example_process;

use bytes::Bytes;
use common::assert_error;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};

const KEYS: &str = r#"{"k-echo":{"name":"Echo only","permissions":["tools/call:echo"]},"k-ops":{"name":"ops","userId":"alice"}}"#;

fn rpc(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
}

#[tokio::test]
async fn hyper_example_authenticates_and_authorizes_per_tool() {
    let Some(s) = example_process::start("hyper_server", &[("MCP_API_KEYS", KEYS)]).await else {
        return;
    };
    let post = |body: Value| {
        reqwest::Client::new()
            .post(format!("{}/mcp", s.base))
            .json(&body)
    };
    let res = post(rpc("tools/list", json!({}))).send().await.unwrap();
    assert!(res.headers().get("www-authenticate").is_none());
    assert_error(res, 401, "authentication_required").await;

    let res = post(rpc("tools/list", json!({})))
        .header("x-api-key", "k-echo")
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["result"]["tools"].as_array().unwrap().len(), 1);
    assert_eq!(body["result"]["tools"][0]["name"], "echo");

    let res = post(rpc(
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "hi"}}),
    ))
    .header("x-api-key", "k-echo")
    .send()
    .await
    .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["result"]["content"][0]["text"], "hi");

    let res = post(rpc("tools/call", json!({"name": "whoami"})))
        .header("x-api-key", "k-echo")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["data"]["error"], "insufficient_scope");

    let health = reqwest::get(format!("{}/health", s.base)).await.unwrap();
    assert_eq!(health.text().await.unwrap(), "ok");
}

/// One gRPC unary call over HTTP/2 (prior knowledge), with `headers` as metadata.
async fn grpc_check(addr: &str, headers: &[(&str, &str)]) -> http::Response<bytes::Bytes> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    // An empty HealthCheckRequest: uncompressed, length 0.
    let frame = Bytes::from_static(&[0, 0, 0, 0, 0]);
    let mut req = http::Request::post(format!("http://{addr}/grpc.health.v1.Health/Check"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = sender
        .send_request(req.body(Full::new(frame)).unwrap())
        .await
        .unwrap();
    let (parts, body) = res.into_parts();
    let collected = body.collect().await.unwrap();
    let mut parts = parts;
    if let Some(trailers) = collected.trailers() {
        parts.headers.extend(trailers.clone());
    }
    http::Response::from_parts(parts, collected.to_bytes())
}

#[tokio::test]
async fn tonic_example_authenticates_grpc_calls() {
    let Some(s) = example_process::start("tonic_server", &[("MCP_API_KEYS", KEYS)]).await else {
        return;
    };
    let res = grpc_check(&s.addr, &[("x-api-key", "k-ops")]).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["grpc-status"], "0");
    assert_eq!(res.headers()["x-authenticated-as"], "api_key:alice");
    // One message frame: uncompressed, 2 bytes, `status: SERVING`.
    assert_eq!(&res.body()[..], &[0, 0, 0, 0, 2, 0x08, 0x01]);

    // Refusals are plain HTTP statuses, which gRPC clients map to UNAUTHENTICATED.
    let res = grpc_check(&s.addr, &[]).await;
    assert_eq!(res.status(), 401);
    assert!(res.headers().get("www-authenticate").is_none());
    let body: Value = serde_json::from_slice(res.body()).unwrap();
    assert_eq!(body["error"], "authentication_required");
    assert_eq!(
        body["supported_methods"],
        json!(["X-API-Key header"]),
        "no query parameters for gRPC"
    );
    let res = grpc_check(&s.addr, &[("x-api-key", "wrong")]).await;
    assert_eq!(res.status(), 401);
    let body: Value = serde_json::from_slice(res.body()).unwrap();
    assert_eq!(body["error"], "invalid_credentials");
}
