//! [`McpPermissionsLayer`].

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use crate::identity::Identity;
use crate::policy::PathPattern;
use crate::rate_limit::ToolQuotas;

use super::rules::{McpRules, Rules};
use super::service::McpPermissionsService;

pub(crate) struct McpConfig {
    pub(crate) rules: Rules,
    pub(crate) filter_tools_list: bool,
    pub(crate) max_body_bytes: usize,
    pub(crate) max_response_bytes: usize,
    /// The MCP endpoints (empty: every path is one): there a body must be JSON-RPC.
    pub(crate) paths: Vec<PathPattern>,
    /// Paths whose requests are not inspected at all.
    pub(crate) excluded: Vec<PathPattern>,
    /// Per-tool quotas, checked after the permissions (`None`: none configured).
    pub(crate) tool_quotas: Option<ToolQuotas>,
}

/// Authorizes each MCP JSON-RPC request by method and by tool, prompt or resource.
///
/// Place it *after* [`EndpointPolicyLayer`](crate::policy::EndpointPolicyLayer) (or use
/// [`McpAuthBuilder::mcp_permissions`](crate::McpAuthBuilder::mcp_permissions)), so the
/// decided [`Identity`] is in the request extensions. For every `POST` that carries an
/// `Identity` (on any path but the [excluded](McpRules::exclude_path) ones), it reads the body (up to
/// [`max_body_bytes`](McpRules::max_body_bytes), else 413), checks every request in it
/// against the [rules](McpRules), and either hands the same bytes to the inner service or
/// refuses:
///
/// | status | when | body |
/// |---|---|---|
/// | 403 `insufficient_scope` | a request lacks a permission (for a batch: any request) | JSON-RPC error `-32003` per request, with its `id` |
/// | 400 `invalid_request` | not JSON (`-32700`), or not a JSON-RPC message (`-32600`) | one JSON-RPC error, `id: null` |
/// | 413 `invalid_request` | body over the limit (`-32600`) | one JSON-RPC error, `id: null` |
/// | 400 `invalid_request` | `Mcp-Method` / `Mcp-Name` (MCP 2026-07-28) disagree with the body (`-32020`) | one JSON-RPC error with the message's `id` (`null` for a notification or a batch) |
///
/// Every refusal has `Content-Type: application/json` and `Cache-Control: no-store`; the 403
/// also has the contract's `WWW-Authenticate: Bearer error="insufficient_scope", scope="…"`
/// when the endpoint accepts OAuth, and an [`AuthFailure`](crate::AuthFailure) marker. The
/// contract's fields (`error`, `error_description`, `scope`, `resource_metadata`,
/// `timestamp`) are in `error.data`, next to the `permission` that was refused:
///
/// ```json
/// {"jsonrpc": "2.0", "id": 7,
///  "error": {"code": -32003, "message": "Insufficient scope: tools/call:delete_repo",
///            "data": {"error": "insufficient_scope",
///                     "error_description": "The credential lacks the permission tools/call:delete_repo",
///                     "permission": "tools/call:delete_repo",
///                     "scope": "tools/call:delete_repo",
///                     "resource_metadata": "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
///                     "timestamp": "2026-01-01T00:00:00.000Z"}}}
/// ```
///
/// A refused batch answers with an array holding one such error per request (notifications
/// and responses have no entry); requests that were allowed but refused with their batch say
/// so in `message`, and name the batch's missing scopes in `scope`.
///
/// A refused notification has no id to answer: its error has `id: null` (HTTP 403 all the
/// same). Requests without an `Identity` (open endpoints), other HTTP methods (`GET` opens
/// the SSE stream, `DELETE` ends a session) and excluded paths pass untouched, without
/// buffering. The
/// inner service receives [`McpRequestBody`](super::McpRequestBody): the buffered bytes, or
/// the original body when the request was not inspected.
///
/// ```
/// use axum::{routing::post, Router};
/// use tower_mcp_auth::{ApiKeyRegistry, ApiKeySpec, McpAuth, McpRules};
///
/// let keys = ApiKeyRegistry::builder()
///     .key("k-search", ApiKeySpec::new("bot").permissions(["tools/list", "tools/call:search_*"]))
///     .build();
/// let app: Router = Router::new()
///     .route("/mcp", post(|| async { "..." }))
///     .layer(
///         McpAuth::builder()
///             .api_keys(keys)
///             .mcp_permissions(McpRules::new().filter_tools_list(true).path("/mcp"))
///             .build()
///             .unwrap(),
///     );
/// # let _ = app;
/// ```
#[derive(Clone)]
#[must_use]
pub struct McpPermissionsLayer {
    config: Arc<McpConfig>,
}

impl Default for McpPermissionsLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl McpPermissionsLayer {
    /// The layer with [`McpRules::new`]'s defaults: every method but `initialize` and `ping`
    /// needs its permission.
    ///
    /// ```
    /// use tower_mcp_auth::{AuthMethod, Identity, mcp::McpPermissionsLayer};
    ///
    /// let layer = McpPermissionsLayer::new();
    /// let id = Identity::builder(AuthMethod::ApiKey, "k").permissions(["tools/list"]).build();
    /// assert!(layer.allows(&id, "tools/list", None));
    /// assert!(!layer.allows(&id, "tools/call", Some("echo")));
    /// ```
    pub fn new() -> Self {
        // The default public methods are valid patterns: this build cannot fail (a unit test
        // builds them too).
        McpRules::new()
            .build()
            .expect("the default MCP rules are valid")
    }

    /// Starts configuring rules; same as [`McpRules::new`].
    ///
    /// ```
    /// let layer = tower_mcp_auth::mcp::McpPermissionsLayer::builder()
    ///     .public(["tools/list"])
    ///     .build()
    ///     .unwrap();
    /// # let _ = layer;
    /// ```
    pub fn builder() -> McpRules {
        McpRules::new()
    }

    pub(crate) fn from_config(config: McpConfig) -> Self {
        Self {
            config: Arc::new(config),
        }
    }

    #[cfg(any(test, fuzzing))]
    pub(crate) fn config(&self) -> Arc<McpConfig> {
        self.config.clone()
    }

    /// Whether `identity` may call `method`, addressed to `target` (the tool or prompt name,
    /// or the resource URI) where the method has one. Handlers can use it for checks the
    /// layer cannot see, such as a tool that calls another tool.
    ///
    /// ```
    /// use tower_mcp_auth::{AuthMethod, Identity, mcp::McpPermissionsLayer};
    ///
    /// let layer = McpPermissionsLayer::new();
    /// let token = Identity::builder(AuthMethod::Bearer, "t").permissions(["resources/read:docs://*"]).build();
    /// assert!(layer.allows(&token, "resources/read", Some("docs://a.md")));
    /// assert!(!layer.allows(&token, "resources/read", Some("file:///etc/passwd")));
    /// ```
    pub fn allows(&self, identity: &Identity, method: &str, target: Option<&str>) -> bool {
        self.config.rules.check(identity, method, target).is_ok()
    }
}

impl McpConfig {
    /// Whether `path` is an MCP endpoint: one of [`McpRules::path`], or any path when none
    /// was given. A path below a listed one (`/mcp/x` for `/mcp`, as `nest_service` routes
    /// it) is one too.
    pub(crate) fn is_mcp_path(&self, path: &str) -> bool {
        self.paths.is_empty()
            || self.paths.iter().any(|p| {
                p.matches(path)
                    || path
                        .strip_prefix(p.as_str().trim_end_matches('/'))
                        .is_some_and(|rest| rest.starts_with('/'))
            })
    }

    /// Whether requests to `path` skip the layer ([`McpRules::exclude_path`]).
    pub(crate) fn is_excluded(&self, path: &str) -> bool {
        self.excluded.iter().any(|p| p.matches(path))
    }
}

impl<S> Layer<S> for McpPermissionsLayer {
    type Service = McpPermissionsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        McpPermissionsService::new(inner, self.config.clone())
    }
}

impl fmt::Debug for McpPermissionsLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        f.debug_struct("McpPermissionsLayer")
            .field("rules", &c.rules)
            .field("filter_tools_list", &c.filter_tools_list)
            .field("max_body_bytes", &c.max_body_bytes)
            .field("max_response_bytes", &c.max_response_bytes)
            .field("paths", &c.paths)
            .field("excluded", &c.excluded)
            .field("tool_quotas", &c.tool_quotas)
            .finish()
    }
}
