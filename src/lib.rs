//! tower-mcp-auth (work in progress).
mod deferred;
pub use deferred::{BoxFuture, Deferred};
