//! [`McpRuleError`].

/// An [`McpRules`](super::McpRules) configuration error, reported by
/// [`McpRules::build`](super::McpRules::build) (and, wrapped in
/// [`PolicyError::McpRules`](crate::policy::PolicyError::McpRules), by
/// [`McpAuthBuilder::build`](crate::McpAuthBuilder::build)).
///
/// ```
/// use tower_mcp_auth::{mcp::McpRuleError, McpRules};
///
/// assert!(matches!(
///     McpRules::new().max_body_bytes(0).build(),
///     Err(McpRuleError::InvalidLimit)
/// ));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum McpRuleError {
    /// A rule is not valid: an empty pattern, a `*` that is not at the end, or a required
    /// scope that is not an RFC 6749 scope token.
    #[error("invalid MCP permission rule {0:?}")]
    InvalidRule(String),
    /// A [`path`](super::McpRules::path) or [`exclude_path`](super::McpRules::exclude_path)
    /// is not a valid [`PathPattern`](crate::policy::PathPattern).
    #[error("invalid path pattern {0:?}")]
    InvalidPattern(String),
    /// A size limit of zero.
    #[error("size limits must be at least one byte")]
    InvalidLimit,
}
