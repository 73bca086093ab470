//! One log line per request for the examples: method, path, status and auth method, never a
//! credential.
//!
//! Requests that pass authentication are logged by an inner middleware that sees the
//! `Identity` the policy chose; requests the auth stack refuses never reach it, so an outer
//! middleware logs those from the `AuthFailure` marker on the response.

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use tower_mcp_auth::{AuthFailure, Identity, McpAuthLayer};

/// Logs requests that got through authentication; apply *inside* the auth layer.
pub fn inner(app: Router) -> Router {
    app.layer(middleware::from_fn(log_passed))
}

/// Logs requests refused by the auth stack (or a lockout); apply *outside* of it.
pub fn outer(app: Router) -> Router {
    app.layer(middleware::from_fn(log_refused))
}

/// `outer log → auth → inner log → app`.
#[allow(dead_code)]
pub fn with_auth_and_logging(app: Router, auth: McpAuthLayer) -> Router {
    outer(inner(app).layer(auth))
}

async fn log_passed(req: Request, next: Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let auth = req
        .extensions()
        .get::<Identity>()
        .map_or("none", |id| id.method().as_str());
    let res = next.run(req).await;
    tracing::info!(%method, %path, status = res.status().as_u16(), auth, "request");
    res
}

async fn log_refused(req: Request, next: Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let res = next.run(req).await;
    if let Some(failure) = res.extensions().get::<AuthFailure>() {
        let auth = failure.method.map_or("none", |m| m.as_str());
        tracing::info!(
            %method, %path, status = res.status().as_u16(), auth,
            failure = ?failure.kind, "request"
        );
    }
    res
}

/// Sets up `tracing` output (`RUST_LOG` overrides the default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
}
