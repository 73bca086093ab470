//! DNS-rebinding protection: the [`OriginLayer`] refuses requests whose `Origin` header is
//! present and not allowed with 403 `invalid_origin`, and optionally checks `Host` against
//! an allowlist.
//!
//! The MCP streamable HTTP transport requires it: "Servers MUST validate the `Origin` header
//! on all incoming connections to prevent DNS rebinding attacks. If the `Origin` header is
//! present and invalid, servers MUST respond with HTTP 403 Forbidden." A request without
//! `Origin` (every non-browser MCP client) passes the origin check.

mod future;
mod layer;
mod service;

pub use future::OriginFuture;
pub use layer::{InvalidOriginConfig, OriginLayer, OriginLayerBuilder};
pub use service::OriginService;
