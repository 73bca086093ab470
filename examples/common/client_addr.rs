//! Hands the connection's peer address to the crate as `ClientAddr`.
//!
//! With the crate's `axum` feature this is not needed (axum's `ConnectInfo` is read
//! directly); the examples run with default features, as a hyper or tonic server would.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request};
use axum::middleware::{self, Next};
use axum::Router;
use tower_mcp_auth::rate_limit::ClientAddr;

/// Copies `ConnectInfo<SocketAddr>` into `ClientAddr` for every request.
pub fn with_client_addr(app: Router) -> Router {
    app.layer(middleware::from_fn(
        |ConnectInfo(addr): ConnectInfo<SocketAddr>, mut req: Request, next: Next| async move {
            req.extensions_mut().insert(ClientAddr(addr));
            next.run(req).await
        },
    ))
}
