//! [`Identity`]: who made the request, as decided by the policy layer.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

/// How a request was authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthMethod {
    /// An API key from the `X-API-Key` header or the `api_key` / `apikey` query parameter.
    ApiKey,
    /// An OAuth bearer token from `Authorization: Bearer`.
    Bearer,
}

impl AuthMethod {
    /// A short, stable name for logs and metrics: `"api_key"` or `"bearer"`.
    ///
    /// ```
    /// assert_eq!(tower_mcp_auth::AuthMethod::ApiKey.as_str(), "api_key");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ApiKey => "api_key",
            AuthMethod::Bearer => "bearer",
        }
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The authenticated caller.
///
/// [`EndpointPolicyLayer`](crate::EndpointPolicyLayer) puts exactly one `Identity` in the
/// request extensions when a request passes an endpoint that requires authentication; handlers
/// read it from there (`req.extensions().get::<Identity>()`, or as an axum extractor with the
/// `axum` feature).
///
/// `Identity` is an `Arc` inside: cloning it is a reference-count increment, so key registries
/// build one per key up front and hand out clones on the hot path. Its `Debug` output never
/// includes claims values or credentials.
///
/// ```
/// use tower_mcp_auth::{AuthMethod, Identity};
///
/// let id = Identity::builder(AuthMethod::ApiKey, "ci-runner")
///     .user_id("alice")
///     .role("admin")
///     .permissions(["tools/list", "tools/call:*"])
///     .build();
/// assert_eq!(id.user_id(), Some("alice"));
/// assert!(id.has_permission("tools/call:search"));
/// assert!(!id.has_permission("resources/read"));
/// ```
#[derive(Clone)]
pub struct Identity {
    inner: Arc<IdentityInner>,
}

#[derive(Debug)]
struct IdentityInner {
    method: AuthMethod,
    name: String,
    user_id: Option<String>,
    role: Option<String>,
    permissions: Vec<String>,
    claims: Option<serde_json::Map<String, serde_json::Value>>,
    expires_at: Option<SystemTime>,
}

impl Identity {
    /// Starts an identity for a credential of `method` called `name` (the API key's name, or
    /// the token's subject).
    pub fn builder(method: AuthMethod, name: impl Into<String>) -> IdentityBuilder {
        IdentityBuilder {
            inner: IdentityInner {
                method,
                name: name.into(),
                user_id: None,
                role: None,
                permissions: Vec::new(),
                claims: None,
                expires_at: None,
            },
        }
    }

    /// How the caller authenticated.
    pub fn method(&self) -> AuthMethod {
        self.inner.method
    }

    /// The API key's name, or the token's subject (`sub`, else `client_id`).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The user the credential belongs to. `None` for a public API key (no `userId`).
    pub fn user_id(&self) -> Option<&str> {
        self.inner.user_id.as_deref()
    }

    /// The role attached to the key, or the token's `role` claim.
    pub fn role(&self) -> Option<&str> {
        self.inner.role.as_deref()
    }

    /// Permissions of an API key, or scopes of a token.
    pub fn permissions(&self) -> &[String] {
        &self.inner.permissions
    }

    /// The token's claims, for bearer identities.
    pub fn claims(&self) -> Option<&serde_json::Map<String, serde_json::Value>> {
        self.inner.claims.as_ref()
    }

    /// When the credential stops being valid, if it expires.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.inner.expires_at
    }

    /// Whether this identity holds `required`.
    ///
    /// A held permission `*` grants everything; a held permission ending in `*` grants every
    /// permission that starts with the part before it (`tools/call:*` grants
    /// `tools/call:search`). Everything else must match exactly.
    pub fn has_permission(&self, required: &str) -> bool {
        self.inner
            .permissions
            .iter()
            .any(|held| permission_matches(held, required))
    }
}

/// Whether a held permission grants a required one (see [`Identity::has_permission`]).
pub(crate) fn permission_matches(held: &str, required: &str) -> bool {
    match held.strip_suffix('*') {
        Some(prefix) => required.starts_with(prefix),
        None => held == required,
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("Identity")
            .field("method", &i.method)
            .field("name", &i.name)
            .field("user_id", &i.user_id)
            .field("role", &i.role)
            .field("permissions", &i.permissions)
            // Claim values can carry personal data; show only which claims exist.
            .field(
                "claims",
                &i.claims
                    .as_ref()
                    .map(|c| c.keys().map(String::as_str).collect::<Vec<_>>()),
            )
            .field("expires_at", &i.expires_at)
            .finish()
    }
}

/// Builds an [`Identity`]; see [`Identity::builder`].
#[must_use]
#[derive(Debug)]
pub struct IdentityBuilder {
    inner: IdentityInner,
}

impl IdentityBuilder {
    /// The owning user. Leave unset for public keys.
    pub fn user_id(mut self, user_id: impl Into<String>) -> Self {
        self.inner.user_id = Some(user_id.into());
        self
    }

    /// The caller's role.
    pub fn role(mut self, role: impl Into<String>) -> Self {
        self.inner.role = Some(role.into());
        self
    }

    /// Permissions (API keys) or scopes (tokens).
    pub fn permissions<I, P>(mut self, permissions: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<String>,
    {
        self.inner.permissions = permissions.into_iter().map(Into::into).collect();
        self
    }

    /// Raw token claims.
    pub fn claims(mut self, claims: serde_json::Map<String, serde_json::Value>) -> Self {
        self.inner.claims = Some(claims);
        self
    }

    /// When the credential expires.
    pub fn expires_at(mut self, at: SystemTime) -> Self {
        self.inner.expires_at = Some(at);
        self
    }

    /// Finishes the identity.
    ///
    /// ```
    /// use tower_mcp_auth::{AuthMethod, Identity};
    /// let id = Identity::builder(AuthMethod::Bearer, "svc").build();
    /// assert_eq!(id.user_id(), None);
    /// ```
    pub fn build(self) -> Identity {
        Identity {
            inner: Arc::new(self.inner),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(permission_matches("*", "anything"));
        assert!(permission_matches("tools/*", "tools/list"));
        assert!(!permission_matches("tools/*", "resources/read"));
        assert!(permission_matches("read", "read"));
        assert!(!permission_matches("read", "read:all"));
    }

    #[test]
    fn debug_hides_claim_values() {
        let mut claims = serde_json::Map::new();
        claims.insert("email".into(), "alice@example.com".into());
        let id = Identity::builder(AuthMethod::Bearer, "alice")
            .claims(claims)
            .build();
        let dbg = format!("{id:?}");
        assert!(dbg.contains("email"));
        assert!(!dbg.contains("alice@example.com"));
    }
}
