//! MCP-aware authorization: per JSON-RPC method and per tool, prompt or resource.
//!
//! [`McpPermissionsLayer`] sits after [`EndpointPolicyLayer`](crate::EndpointPolicyLayer),
//! reads the JSON-RPC body of each MCP `POST`, and checks every request in it against
//! [`McpRules`]; optionally it trims `tools/list` responses to the tools the caller may call.

mod body;
mod filter;
mod future;
mod jsonrpc;
mod layer;
mod refusal;
mod rules;
mod service;
mod sse;

pub use body::{McpRequestBody, McpResponseBody};
pub use future::McpPermissionsFuture;
pub use jsonrpc::{
    INSUFFICIENT_SCOPE_CODE, INTERNAL_ERROR_CODE, INVALID_REQUEST_CODE, PARSE_ERROR_CODE,
};
pub use layer::McpPermissionsLayer;
pub use rules::{McpRules, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_RESPONSE_BYTES};
pub use service::McpPermissionsService;
