//! [`McpRules`]: which JSON-RPC methods and which tools, prompts and resources an
//! [`Identity`] may use.

use std::borrow::Cow;
use std::fmt;

use crate::identity::{permission_matches, Identity};
use crate::policy::PathPattern;
use crate::rate_limit::ToolQuotas;

use super::error::McpRuleError;

use super::jsonrpc::{is_canonical_uri, target_field, TargetField};
use super::layer::{McpConfig, McpPermissionsLayer};

/// Default request body limit of [`McpRules::max_body_bytes`]: 4 MiB.
///
/// ```
/// use tower_mcp_auth::{mcp::DEFAULT_MAX_BODY_BYTES, McpRules};
/// // Allow larger tool arguments than the default.
/// let rules = McpRules::new().max_body_bytes(4 * DEFAULT_MAX_BODY_BYTES);
/// # let _ = rules;
/// ```
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Default limit of [`McpRules::max_response_bytes`] for a filtered `tools/list` response:
/// 16 MiB.
///
/// ```
/// assert_eq!(tower_mcp_auth::mcp::DEFAULT_MAX_RESPONSE_BYTES, 16 << 20);
/// ```
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Methods every authenticated identity may call by default: without them a client cannot
/// even connect.
/// `server/discover` (MCP 2026-07-28) is what such a client sends first, in place of
/// `initialize`.
const DEFAULT_PUBLIC: [&str; 3] = ["initialize", "ping", "server/discover"];

/// Permission rules for [`McpPermissionsLayer`], and its options.
///
/// ## How a request is authorized
///
/// Each JSON-RPC request gets a *permission string*: its method (`tools/list`), or
/// `method:target` for the methods that address one object:
///
/// | method | permission |
/// |---|---|
/// | `tools/call`, `prompts/get` | `tools/call:<params.name>`, `prompts/get:<params.name>` |
/// | `resources/read`, `resources/subscribe`, `resources/unsubscribe` | `resources/read:<params.uri>`, ... |
/// | anything else | the method, e.g. `tools/list`, `resources/list` |
///
/// Then the first [rule](Self::rule) whose pattern matches the permission decides: the
/// identity must hold every scope the rule lists (none for a [public](Self::public) rule).
/// Without a matching rule, the identity must hold the permission itself, with
/// [`Identity::has_permission`] matching: an operator-written `*` grants everything,
/// `tools/call:search_*` grants `tools/call:search_docs`; a token's scopes match only
/// literally or as a `:` parent, and grant more only through a [`ScopeMap`](crate::ScopeMap).
/// A held bare method grants all its targets: `tools/call` allows every tool, which is what an
/// OAuth scope `tools/call` is expected to mean. A refusal names every scope the operation
/// needs, held or not.
///
/// `initialize`, `ping` and `server/discover` (MCP 2026-07-28) are public by default.
/// Every message with a `method` is checked, notifications (no `id`) included, since
/// JSON-RPC servers execute them too; only MCP notifications (`notifications/...` without
/// an `id`) and responses (no `method`) skip the rules. Requests that reach the layer
/// without an [`Identity`] (open endpoints) pass unchecked.
///
/// A resource URI (`resources/read`, `.../subscribe`, `.../unsubscribe`) is matched as
/// sent, and only when it is in canonical form: one with a `.` or `..` segment, a
/// backslash, or a percent-encoded `.`, `/`, `\`, `%` or NUL is not normalized but
/// authorized as the bare method, so `resources/read:file:///srv/docs/*` does not grant
/// `file:///srv/docs/../../etc/passwd` or `file:///srv/docs/%2e%2e/x` (refused with the
/// 403 `insufficient_scope` error, `scope` `resources/read`), while `resources/read` or
/// `*` still does.
///
/// ## Where it applies
///
/// Fail closed: every `POST` with an [`Identity`] is inspected, on every path, wherever
/// the MCP service is mounted (`nest_service("/mcp", …)` also serves `/mcp/` and `/mcp/x`,
/// and a layer inside the nest sees the stripped path), except the paths given to
/// [`exclude_path`](Self::exclude_path). See [`path`](Self::path) for bodies that are not
/// JSON-RPC.
///
/// ```
/// use tower_mcp_auth::{AuthMethod, Identity, McpRules};
///
/// let layer = McpRules::new()
///     .public(["tools/list"])
///     // Tools named admin_* need the `admin` scope, whatever else the caller holds.
///     .rule("tools/call:admin_*", ["admin"])
///     .filter_tools_list(true)
///     .build()
///     .unwrap();
///
/// let key = Identity::builder(AuthMethod::ApiKey, "ci")
///     .permissions(["tools/call:search_*", "resources/read:docs://*"])
///     .build();
/// assert!(layer.allows(&key, "tools/list", None));
/// assert!(layer.allows(&key, "tools/call", Some("search_docs")));
/// assert!(!layer.allows(&key, "tools/call", Some("delete_repo")));
/// assert!(layer.allows(&key, "resources/read", Some("docs://intro")));
///
/// let admin = Identity::builder(AuthMethod::Bearer, "root").permissions(["admin"]).build();
/// assert!(layer.allows(&admin, "tools/call", Some("admin_reset")));
/// ```
#[derive(Clone)]
#[must_use]
pub struct McpRules {
    rules: Vec<(String, Vec<String>)>,
    filter_tools_list: bool,
    max_body_bytes: usize,
    max_response_bytes: usize,
    paths: Vec<String>,
    excluded: Vec<String>,
    tool_quotas: Option<ToolQuotas>,
}

impl Default for McpRules {
    fn default() -> Self {
        Self::new()
    }
}

impl McpRules {
    /// Rules with `initialize` and `ping` public, everything else requiring its permission;
    /// no `tools/list` filtering; a 4 MiB body limit; every path.
    ///
    /// ```
    /// use tower_mcp_auth::{AuthMethod, Identity, McpRules};
    ///
    /// let layer = McpRules::new().build().unwrap();
    /// let key = Identity::builder(AuthMethod::ApiKey, "k").build();
    /// assert!(layer.allows(&key, "initialize", None));
    /// assert!(!layer.allows(&key, "tools/list", None));
    /// ```
    pub fn new() -> Self {
        Self {
            rules: DEFAULT_PUBLIC
                .iter()
                .map(|m| ((*m).to_owned(), Vec::new()))
                .collect(),
            filter_tools_list: false,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            paths: Vec::new(),
            excluded: Vec::new(),
            tool_quotas: None,
        }
    }

    /// Lets every authenticated identity use the permissions matching these patterns, e.g.
    /// `["tools/list", "resources/list", "prompts/*"]`.
    ///
    /// ```
    /// use tower_mcp_auth::{AuthMethod, Identity, McpRules};
    ///
    /// let layer = McpRules::new().public(["tools/list", "prompts/*"]).build().unwrap();
    /// let nobody = Identity::builder(AuthMethod::ApiKey, "k").build();
    /// assert!(layer.allows(&nobody, "prompts/get", Some("summary")));
    /// assert!(!layer.allows(&nobody, "tools/call", Some("echo")));
    /// ```
    pub fn public<I, P>(mut self, patterns: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<String>,
    {
        self.rules
            .extend(patterns.into_iter().map(|p| (p.into(), Vec::new())));
        self
    }

    /// Requires every scope in `required` (instead of the permission itself) for permissions
    /// matching `pattern`. Rules are tried in the order added (the default public methods
    /// first); the first match decides.
    ///
    /// Use it to map MCP permissions to the scope names your authorization server issues
    /// (`.rule("tools/call:*", ["mcp:tools"])`) or to guard some tools with an extra scope.
    ///
    /// ```
    /// use tower_mcp_auth::{AuthMethod, Identity, McpRules};
    ///
    /// let layer = McpRules::new()
    ///     .rule("tools/call:deploy_*", ["deploy", "mfa"])
    ///     .rule("tools/call:*", ["mcp:tools"])
    ///     .build()
    ///     .unwrap();
    /// let token = Identity::builder(AuthMethod::Bearer, "ci").permissions(["mcp:tools"]).build();
    /// assert!(layer.allows(&token, "tools/call", Some("search")));
    /// assert!(!layer.allows(&token, "tools/call", Some("deploy_prod")));
    /// ```
    pub fn rule<I, P>(mut self, pattern: impl Into<String>, required: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<String>,
    {
        self.rules.push((
            pattern.into(),
            required.into_iter().map(Into::into).collect(),
        ));
        self
    }

    /// Rewrites `tools/list` responses to list only the tools the identity may call
    /// (`tools/call:<name>`). JSON responses are rewritten whole; `text/event-stream`
    /// (streamable HTTP) responses event by event. Off by default.
    ///
    /// Filtering is a courtesy to clients and models (they are not offered tools they cannot
    /// use); the enforcement is the check on `tools/call`. Responses replayed on a resumed
    /// stream (`GET` with `Last-Event-ID`) and compressed responses are not filtered: a
    /// compressed `tools/list` answer is replaced by a 500 JSON-RPC error.
    ///
    /// ```
    /// let rules = tower_mcp_auth::McpRules::new().filter_tools_list(true);
    /// # let _ = rules;
    /// ```
    pub fn filter_tools_list(mut self, enabled: bool) -> Self {
        self.filter_tools_list = enabled;
        self
    }

    /// The largest request body read (default 4 MiB); larger bodies get 413, whether the
    /// size is declared by `Content-Length` or found while reading a chunked body.
    ///
    /// ```
    /// let rules = tower_mcp_auth::McpRules::new().max_body_bytes(1 << 20);
    /// # let _ = rules;
    /// ```
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// The largest `tools/list` response (JSON body, or one SSE event) that is filtered
    /// (default 16 MiB). A larger one is replaced by a JSON-RPC internal error rather than
    /// passed through unfiltered.
    ///
    /// ```
    /// let rules = tower_mcp_auth::McpRules::new().filter_tools_list(true).max_response_bytes(1 << 20);
    /// # let _ = rules;
    /// ```
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// Names an MCP endpoint (axum syntax, as in
    /// [`EndpointPolicyLayerBuilder::route`](crate::policy::EndpointPolicyLayerBuilder::route));
    /// repeatable. It does **not** narrow what is inspected: every `POST` that carries an
    /// [`Identity`] is read and its JSON-RPC checked, on every path, unless
    /// [excluded](Self::exclude_path). It decides what happens to a body that is not
    /// JSON-RPC:
    ///
    /// - on an MCP endpoint (a listed path, or a path below one, such as `/mcp/` and
    ///   `/mcp/x` for `/mcp`, which `nest_service("/mcp", …)` also serves; every path when
    ///   none is listed), it is refused with 400;
    /// - elsewhere, it is refused with 400 too when it is sent as JSON, as text or without a
    ///   `Content-Type`, and passed on (already read, up to
    ///   [`max_body_bytes`](Self::max_body_bytes)) when its `Content-Type` is anything else
    ///   (`multipart/form-data`, `application/pdf`, ...): no JSON-RPC server acts on it.
    ///
    /// A body that parses as JSON-RPC is checked whatever its path and media type.
    ///
    /// ```
    /// let rules = tower_mcp_auth::McpRules::new().path("/mcp").path("/users/{id}/mcp");
    /// # let _ = rules;
    /// ```
    pub fn path(mut self, pattern: impl Into<String>) -> Self {
        self.paths.push(pattern.into());
        self
    }

    /// Leaves requests to paths matching `pattern` uninspected: not read, not checked, passed
    /// on as they stream (for large uploads next to the MCP endpoint). Matched exactly as
    /// the layer sees the path, which is the stripped path inside a `nest_service`.
    /// Repeatable. Exclude only routes that do not reach an MCP server.
    ///
    /// ```
    /// let rules = tower_mcp_auth::McpRules::new().path("/mcp").exclude_path("/upload");
    /// # let _ = rules;
    /// ```
    pub fn exclude_path(mut self, pattern: impl Into<String>) -> Self {
        self.excluded.push(pattern.into());
        self
    }

    /// Also enforces `quotas` per (identity, tool pattern) on every message that passed its
    /// permission check: HTTP 429 with `Retry-After` and a JSON-RPC error per request; see
    /// [`ToolQuotas`].
    ///
    /// ```
    /// use tower_mcp_auth::{rate_limit::ToolQuotas, store::{MemoryStore, Quota}, McpRules};
    ///
    /// let rules = McpRules::new().tool_quotas(
    ///     ToolQuotas::new(MemoryStore::new()).limit("tools/call:search_*", Quota::per_minute(10).unwrap()),
    /// );
    /// assert!(rules.build().is_ok());
    /// ```
    pub fn tool_quotas(mut self, quotas: ToolQuotas) -> Self {
        self.tool_quotas = Some(quotas);
        self
    }

    /// Validates the rules and builds the layer.
    ///
    /// # Errors
    ///
    /// [`McpRuleError::InvalidRule`] for an empty pattern (of a rule or a
    /// [tool quota](Self::tool_quotas)), a `*` anywhere but at the end, or a required scope
    /// that is empty or contains whitespace, `"` or `\`;
    /// [`McpRuleError::InvalidPattern`] for a bad path; [`McpRuleError::InvalidLimit`] for a
    /// zero limit.
    ///
    /// ```
    /// use tower_mcp_auth::{mcp::McpRuleError, McpRules};
    ///
    /// assert!(McpRules::new().public(["tools/*"]).build().is_ok());
    /// assert!(matches!(
    ///     McpRules::new().public(["tools/*/call"]).build(),
    ///     Err(McpRuleError::InvalidRule(_))
    /// ));
    /// ```
    pub fn build(self) -> Result<McpPermissionsLayer, McpRuleError> {
        let valid = |pattern: &str| {
            let star = pattern.find('*');
            !pattern.is_empty() && star.is_none_or(|i| i + 1 == pattern.len())
        };
        let tool_quotas = self.tool_quotas.filter(|q| !q.is_empty());
        if let Some(bad) = tool_quotas
            .iter()
            .flat_map(ToolQuotas::patterns)
            .find(|p| !valid(p))
        {
            return Err(McpRuleError::InvalidRule(bad.to_owned()));
        }
        let mut rules = Vec::with_capacity(self.rules.len());
        for (pattern, required) in self.rules {
            if !valid(&pattern) {
                return Err(McpRuleError::InvalidRule(pattern));
            }
            if let Some(bad) = required.iter().find(|s| !is_scope_token(s)) {
                return Err(McpRuleError::InvalidRule(format!(
                    "{pattern} requires {bad:?}"
                )));
            }
            rules.push(Rule { pattern, required });
        }
        let paths = self
            .paths
            .into_iter()
            .map(|p| PathPattern::parse(&p).ok_or(McpRuleError::InvalidPattern(p)))
            .collect::<Result<Vec<_>, _>>()?;
        let excluded = self
            .excluded
            .into_iter()
            .map(|p| PathPattern::parse(&p).ok_or(McpRuleError::InvalidPattern(p)))
            .collect::<Result<Vec<_>, _>>()?;
        if self.max_body_bytes == 0 || self.max_response_bytes == 0 {
            return Err(McpRuleError::InvalidLimit);
        }
        Ok(McpPermissionsLayer::from_config(McpConfig {
            rules: Rules { rules },
            filter_tools_list: self.filter_tools_list,
            max_body_bytes: self.max_body_bytes,
            max_response_bytes: self.max_response_bytes,
            paths,
            excluded,
            tool_quotas,
        }))
    }
}

/// RFC 6749 `scope-token`: what may appear in a space-separated `scope` list.
fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
}

impl fmt::Debug for McpRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("McpRules")
            .field("rules", &self.rules)
            .field("filter_tools_list", &self.filter_tools_list)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("paths", &self.paths)
            .field("excluded", &self.excluded)
            .field("tool_quotas", &self.tool_quotas)
            .finish()
    }
}

#[derive(Debug)]
struct Rule {
    pattern: String,
    required: Vec<String>,
}

/// Validated rules.
#[derive(Debug)]
pub(crate) struct Rules {
    rules: Vec<Rule>,
}

impl Rules {
    /// `Ok` when `identity` may call `method` on `target`; otherwise the scopes it lacks, for
    /// the `scope` of the challenge.
    pub(crate) fn check(
        &self,
        identity: &Identity,
        method: &str,
        target: Option<&str>,
    ) -> Result<(), Vec<String>> {
        // A resource URI not in canonical form is authorized as the bare method: no prefix
        // grant covers `file:///srv/docs/../x` or `%2e%2e` forms.
        let target = target
            .filter(|t| target_field(method) != Some(TargetField::Uri) || is_canonical_uri(t));
        let permission: Cow<'_, str> = match target {
            Some(target) => Cow::Owned(format!("{method}:{target}")),
            None => Cow::Borrowed(method),
        };
        let grants = |held: &str| {
            permission_matches(held, &permission)
                || (target.is_some() && permission_matches(held, method))
        };
        // On refusal: every scope the operation needs, held or not (RFC 6750 §3.1), named as
        // the identity's scope map knows them.
        match self.rules.iter().find(|r| grants(&r.pattern)) {
            Some(rule) if rule.required.iter().all(|s| identity.has_permission(s)) => Ok(()),
            Some(rule) => Err(identity.challenge_scopes(rule.required.iter().map(String::as_str))),
            // Operator-written permissions keep their wildcards; token scopes match only
            // literally or as a `:` parent (`tools/call` grants `tools/call:search`).
            None if identity.has_permission(&permission)
                || (target.is_some() && identity.has_permission(method)) =>
            {
                Ok(())
            }
            None => Err(identity.challenge_scopes([&*permission])),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::AuthMethod;

    fn id(perms: &[&str]) -> Identity {
        Identity::builder(AuthMethod::ApiKey, "k")
            .permissions(perms.iter().copied())
            .build()
    }

    fn rules(r: McpRules) -> std::sync::Arc<McpConfig> {
        r.build().unwrap().config()
    }

    #[test]
    fn derived_permissions_with_wildcards() {
        let c = rules(McpRules::new());
        let r = &c.rules;
        let key = id(&["tools/list", "tools/call:search_*", "resources/read:*"]);
        assert!(r.check(&key, "tools/list", None).is_ok());
        assert!(r.check(&key, "tools/call", Some("search_docs")).is_ok());
        assert_eq!(
            r.check(&key, "tools/call", Some("delete")).unwrap_err(),
            ["tools/call:delete"]
        );
        assert!(r.check(&key, "resources/read", Some("file:///x")).is_ok());
        assert_eq!(
            r.check(&key, "prompts/list", None).unwrap_err(),
            ["prompts/list"]
        );
        // Defaults: initialize and ping need nothing.
        assert!(r.check(&id(&[]), "initialize", None).is_ok());
        assert!(r.check(&id(&[]), "ping", None).is_ok());
        // `*` grants all; a bare method grants all its targets; a missing target needs the
        // bare method.
        assert!(r.check(&id(&["*"]), "tools/call", Some("x")).is_ok());
        assert!(r
            .check(&id(&["tools/call"]), "tools/call", Some("x"))
            .is_ok());
        assert!(r.check(&id(&["tools/*"]), "tools/call", Some("x")).is_ok());
        assert!(r.check(&key, "tools/call", None).is_err());
        // Exact matches stay exact.
        assert!(r
            .check(&id(&["tools/call:search"]), "tools/call", Some("search2"))
            .is_err());
    }

    #[test]
    fn rules_first_match_wins() {
        let c = rules(
            McpRules::new()
                .public(["tools/list"])
                .rule("tools/call:admin_*", ["admin", "mfa"])
                .rule("tools/call", ["mcp:tools"]),
        );
        let r = &c.rules;
        assert!(r.check(&id(&[]), "tools/list", None).is_ok());
        assert_eq!(
            r.check(&id(&["admin", "*x"]), "tools/call", Some("admin_reset"))
                .unwrap_err(),
            ["admin", "mfa"],
            "a refusal names every scope the rule needs, held or not"
        );
        assert!(r
            .check(&id(&["admin", "mfa"]), "tools/call", Some("admin_reset"))
            .is_ok());
        // The bare-method rule covers every other tool, and replaces the derived permission.
        assert_eq!(
            r.check(&id(&["tools/call:echo"]), "tools/call", Some("echo"))
                .unwrap_err(),
            ["mcp:tools"]
        );
        assert!(r
            .check(&id(&["mcp:tools"]), "tools/call", Some("echo"))
            .is_ok());
    }

    #[test]
    fn the_default_rules_build() {
        // `McpPermissionsLayer::new` relies on it.
        assert!(McpRules::new().build().is_ok());
    }

    #[test]
    fn invalid_rules_are_build_errors() {
        for r in [
            McpRules::new().public([""]),
            McpRules::new().public(["tools/*/x"]),
            McpRules::new().rule("tools/call", ["two words"]),
            McpRules::new().rule("tools/call", [""]),
            McpRules::new().rule("tools/call", ["q\"uote"]),
        ] {
            assert!(matches!(r.build(), Err(McpRuleError::InvalidRule(_))));
        }
        assert!(matches!(
            McpRules::new().path("mcp").build(),
            Err(McpRuleError::InvalidPattern(_))
        ));
        assert!(matches!(
            McpRules::new().max_body_bytes(0).build(),
            Err(McpRuleError::InvalidLimit)
        ));
    }
}
