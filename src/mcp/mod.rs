//! MCP-aware authorization: per JSON-RPC method and per tool, prompt or resource.
//!
//! [`McpPermissionsLayer`] sits after [`EndpointPolicyLayer`](crate::policy::EndpointPolicyLayer),
//! reads the JSON-RPC body of each MCP `POST`, and checks every request in it against
//! [`McpRules`]; optionally it trims `tools/list` responses to the tools the caller may call.
//!
//! ```text
//! request ─▶ ApiKeyLayer ─▶ BearerLayer ─▶ EndpointPolicyLayer ─▶ McpPermissionsLayer ─▶ your MCP service
//!            (identify)     (identify)     (decide: 401 / 403)    (decide per method / tool: 403)
//! ```
//!
//! Permissions are strings such as `tools/list`, `tools/call:search_*`,
//! `resources/read:docs://*` or `*`, held by API keys (`permissions`) and tokens (`scope`);
//! see [`McpRules`] for how a request is matched and [`McpPermissionsLayer`] for the
//! refusals.
//!
//! ```
//! use axum::{routing::post, Router};
//! use tower_mcp_auth::{ApiKeyRegistry, ApiKeySpec, McpAuth, McpRules};
//!
//! let keys = ApiKeyRegistry::builder()
//!     .key("k-docs", ApiKeySpec::new("docs bot").permissions(["tools/call:search_*"]))
//!     .build();
//! let auth = McpAuth::builder()
//!     .api_keys(keys)
//!     .mcp_permissions(McpRules::new().public(["tools/list"]).filter_tools_list(true))
//!     .build()
//!     .unwrap();
//! let app: Router = Router::new().route("/mcp", post(|| async { "{}" })).layer(auth);
//! # let _ = app;
//! ```

mod body;
mod error;
mod filter;
mod future;
mod jsonrpc;
mod layer;
mod refusal;
mod rules;
mod service;
mod sse;

pub use body::{McpRequestBody, McpResponseBody};
pub use error::McpRuleError;
pub use future::McpPermissionsFuture;
pub use jsonrpc::{
    HEADER_MISMATCH_CODE, INSUFFICIENT_SCOPE_CODE, INTERNAL_ERROR_CODE, INVALID_REQUEST_CODE,
    PARSE_ERROR_CODE, TOO_MANY_REQUESTS_CODE,
};
pub use layer::McpPermissionsLayer;
pub use rules::{McpRules, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_RESPONSE_BYTES};
pub use service::McpPermissionsService;

// Internals for `crate::__fuzz` (only `cargo fuzz` builds, `--cfg fuzzing`).
#[cfg(fuzzing)]
pub(crate) use self::jsonrpc::{
    is_canonical_uri, parse as jsonrpc_parse, target_field as jsonrpc_target_field,
};
#[cfg(fuzzing)]
pub(crate) use self::{
    filter::ToolsFilter, jsonrpc::TargetField, layer::McpConfig, sse::SseRewriter,
};
