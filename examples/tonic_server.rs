//! The auth stack on a tonic gRPC server: `Server::builder().layer(...)` with the same layers
//! as the HTTP examples, around a hand-written `grpc.health.v1.Health/Check` service (no
//! protoc, no prost: the two tiny messages are encoded by hand). Configured like
//! `four_modes` (`MCP_AUTH_ADDR`, `ENABLE_API_KEY_AUTH`, `ENABLE_OAUTH`, `MCP_API_KEYS`,
//! `JWT_SECRET`, `JWT_ISSUER`, `JWT_AUDIENCE`, `PUBLIC_BASE_URL`, `FAILED_AUTH_LIMIT`,
//! `FAILED_AUTH_WINDOW_SECS`, `STATE_STORE`, `TRUSTED_PROXIES`, `CLIENT_IP_HEADER`); `USE_QUERY_PARAM_AUTH` defaults to `false` here, since gRPC
//! clients send metadata, not query strings.
//!
//! Credentials travel as gRPC metadata (HTTP/2 headers): `x-api-key: …` or
//! `authorization: Bearer …`. A refused call gets the crate's HTTP error (401 / 403 / 429 /
//! 503 with the JSON body); gRPC clients map those statuses to `UNAUTHENTICATED`,
//! `PERMISSION_DENIED` and `UNAVAILABLE`. An accepted call answers `SERVING`, with the
//! caller's identity in the `x-authenticated-as` response metadata.
//!
//! ```sh
//! MCP_API_KEYS='{"k-ops":{"name":"ops","userId":"alice"}}' cargo run --example tonic_server
//! grpcurl -plaintext -H 'x-api-key: k-ops' 127.0.0.1:8080 grpc.health.v1.Health/Check
//! grpc_health_probe -addr 127.0.0.1:8080 -rpc-header 'x-api-key: k-ops'
//! ```

#[path = "common/env.rs"]
mod env;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, Bytes};
use tonic::body::Body;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::AsciiMetadataValue;
use tonic::server::Grpc;
use tonic::transport::server::{TcpConnectInfo, TcpIncoming};
use tonic::transport::Server;
use tonic::Status;
use tower::ServiceBuilder;
use tower_mcp_auth::{rate_limit::ClientAddr, Identity};

use env::{env_bool, env_or, AuthEnv, Error};

const CHECK: &str = "/grpc.health.v1.Health/Check";
/// `HealthCheckResponse { status: SERVING }` in protobuf: field 1, varint 1.
const SERVING: &[u8] = &[0x08, 0x01];

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("tonic_server: {e}");
        std::process::exit(2);
    }
}

async fn run() -> Result<(), Error> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    let addr = env_or("MCP_AUTH_ADDR", "127.0.0.1:8080");
    let mut auth_env = AuthEnv::from_env()?;
    auth_env.query = env_bool("USE_QUERY_PARAM_AUTH", false)?;
    let (lockout, state_store) = env::lockout_from_env().await?;

    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let bound = listener.local_addr()?;
    let base = env_or("PUBLIC_BASE_URL", &format!("http://{bound}"));

    // Every gRPC method is protected with the configured mode.
    let base = base.trim_end_matches('/');
    let auth = auth_env
        .builder(base, base)
        .await?
        .default_policy(auth_env.mode())
        .build()?;

    tracing::info!(%bound, api_keys = auth_env.api_keys, oauth = auth_env.oauth, state_store, "tonic_server listening");
    Server::builder()
        .layer(
            ServiceBuilder::new()
                // tonic records the peer address as `TcpConnectInfo`; the lockout reads
                // the crate's `ClientAddr`.
                .map_request(|mut req: http::Request<Body>| {
                    let peer = req
                        .extensions()
                        .get::<TcpConnectInfo>()
                        .and_then(TcpConnectInfo::remote_addr);
                    if let Some(peer) = peer {
                        req.extensions_mut().insert(ClientAddr(peer));
                    }
                    req
                })
                .layer(lockout)
                .layer(auth),
        )
        .serve_with_incoming(Health, TcpIncoming::from(listener))
        .await?;
    Ok(())
}

/// A gRPC service written against tonic's server primitives, without generated code.
#[derive(Clone, Copy)]
struct Health;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<B> tower::Service<http::Request<B>> for Health
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<http::Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        Box::pin(async move {
            if req.uri().path() != CHECK {
                return Ok(Status::unimplemented("only grpc.health.v1.Health/Check").into_http());
            }
            let check = tower::service_fn(|req: tonic::Request<Bytes>| async move {
                // The identity `EndpointPolicyLayer` decided travels in the extensions.
                let who = req
                    .extensions()
                    .get::<Identity>()
                    .map(|id| format!("{}:{}", id.method(), id.user_id().unwrap_or(id.name())));
                let mut res = tonic::Response::new(Bytes::from_static(SERVING));
                if let Some(value) = who.and_then(|w| AsciiMetadataValue::try_from(w).ok()) {
                    res.metadata_mut().insert("x-authenticated-as", value);
                }
                Ok::<_, Status>(res)
            });
            Ok(Grpc::new(RawCodec).unary(check, req).await)
        })
    }
}

/// Messages as raw protobuf bytes: the health messages are small enough to write by hand.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}
