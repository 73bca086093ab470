//! [`Identity`]: who made the request, as decided by the policy layer.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use crate::scope_map::ScopeMap;

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
/// [`EndpointPolicyLayer`](crate::policy::EndpointPolicyLayer) puts exactly one `Identity` in the
/// request extensions when a request passes an endpoint that requires authentication; handlers
/// read it from there (`req.extensions().get::<Identity>()`, or as an axum extractor with the
/// `axum` feature).
///
/// `Identity` is an `Arc` inside: cloning it is a reference-count increment, so key registries
/// build one per key up front and hand out clones on the hot path. Its `Debug` output never
/// includes claims values or credentials.
///
/// ## Users are namespaced by issuer
///
/// A token's user is its `sub` *as issued by its `iss`*: `sub=42` from two identity providers
/// is two users. [`issuer`](Self::issuer) is the token's `iss`; API-key identities, and
/// tokens without `iss`, have no issuer: they are in the operator's own, *local* namespace
/// (the `userId`s of `MCP_API_KEYS`). Ownership ([`EndpointPolicy::private_to`] for local
/// users, [`EndpointPolicy::private_to_subject`] for a token subject) and per-user quotas
/// ([`RateLimitKey::User`](crate::rate_limit::RateLimitKey::User)) compare the pair (issuer, user id).
/// To make several issuers' subjects one user on purpose, map the identity when it is built
/// ([`MapIdentity`](crate::MapIdentity)).
///
/// ## Permissions and scopes
///
/// [`permissions`](Self::permissions) are what an operator wrote: an API key's permissions,
/// or what a [`ScopeMap`](crate::ScopeMap) grants for a token's scopes. They keep wildcards
/// (`*`, `tools/call:*`). [`scopes`](Self::scopes) are a token's scopes as the authorization
/// server issued them: they match only literally, or as a `:`-separated parent (`mcp:tools`
/// implies `mcp:tools:read`; `tools/call` implies `tools/call:search`); a token scope `*`
/// grants nothing but a required `*`.
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
/// assert_eq!(id.issuer(), None);
/// assert!(id.has_permission("tools/call:search"));
/// assert!(!id.has_permission("resources/read"));
///
/// let token = Identity::builder(AuthMethod::Bearer, "42")
///     .issuer("https://accounts.example.com")
///     .user_id("42")
///     .scopes(["*", "mcp:tools"])
///     .build();
/// assert!(token.has_permission("mcp:tools:read"), "a parent scope implies its children");
/// assert!(!token.has_permission("tools/call:search"), "token scopes are not wildcards");
/// ```
///
/// [`EndpointPolicy::private_to`]: crate::EndpointPolicy::private_to
/// [`EndpointPolicy::private_to_subject`]: crate::EndpointPolicy::private_to_subject
#[derive(Clone)]
pub struct Identity {
    inner: Arc<IdentityInner>,
}

#[derive(Clone, Debug)]
struct IdentityInner {
    method: AuthMethod,
    name: String,
    issuer: Option<String>,
    user_id: Option<String>,
    role: Option<String>,
    permissions: Vec<String>,
    scopes: Vec<String>,
    claims: Option<serde_json::Map<String, serde_json::Value>>,
    expires_at: Option<SystemTime>,
    /// The mapping that granted `permissions` from `scopes`, to name scopes in challenges.
    scope_map: Option<ScopeMap>,
}

impl Identity {
    /// Starts an identity for a credential of `method` called `name` (the API key's name, or
    /// the token's subject).
    pub fn builder(method: AuthMethod, name: impl Into<String>) -> IdentityBuilder {
        IdentityBuilder {
            inner: IdentityInner {
                method,
                name: name.into(),
                issuer: None,
                user_id: None,
                role: None,
                permissions: Vec::new(),
                scopes: Vec::new(),
                claims: None,
                expires_at: None,
                scope_map: None,
            },
        }
    }

    /// A builder holding a copy of this identity, to derive another from it (a different
    /// user id, more permissions).
    ///
    /// ```
    /// use tower_mcp_auth::{AuthMethod, Identity};
    ///
    /// let token = Identity::builder(AuthMethod::Bearer, "42").issuer("https://idp").user_id("42").build();
    /// let local = token.to_builder().local().user_id("alice").build();
    /// assert_eq!((local.issuer(), local.user_id()), (None, Some("alice")));
    /// ```
    pub fn to_builder(&self) -> IdentityBuilder {
        IdentityBuilder {
            inner: (*self.inner).clone(),
        }
    }

    /// Whether both are clones of one identity (the same allocation).
    pub(crate) fn ptr_eq(&self, other: &Identity) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// How the caller authenticated.
    pub fn method(&self) -> AuthMethod {
        self.inner.method
    }

    /// The API key's name, or the token's subject (`sub`, else `client_id`).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Who vouches for [`user_id`](Self::user_id): the token's `iss`. `None` for API keys and
    /// tokens without `iss`: the operator's local namespace. A user is the pair
    /// (issuer, user id), never the user id alone.
    pub fn issuer(&self) -> Option<&str> {
        self.inner.issuer.as_deref()
    }

    /// The user the credential belongs to, within [`issuer`](Self::issuer)'s namespace.
    /// `None` for a public API key (no `userId`) and a token without `sub`.
    pub fn user_id(&self) -> Option<&str> {
        self.inner.user_id.as_deref()
    }

    /// The role attached to the key, or the token's `role` claim.
    pub fn role(&self) -> Option<&str> {
        self.inner.role.as_deref()
    }

    /// Permissions an operator granted, with wildcards: an API key's permissions, or what a
    /// [`ScopeMap`](crate::ScopeMap) derived from a token's scopes. Empty for a token that went
    /// through no mapping.
    pub fn permissions(&self) -> &[String] {
        &self.inner.permissions
    }

    /// A token's scopes as the authorization server issued them (`scope` / `scp`). Matched
    /// literally or as a `:`-separated parent, never as wildcards. Empty for API keys.
    pub fn scopes(&self) -> &[String] {
        &self.inner.scopes
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
    /// - From [`permissions`](Self::permissions) (operator-written): a held `*` grants
    ///   everything; a held permission ending in `*` grants every permission that starts with
    ///   the part before it (`tools/call:*` grants `tools/call:search`); anything else must
    ///   match exactly.
    /// - From [`scopes`](Self::scopes) (token-issued): the scope itself, or a `:`-separated
    ///   child of it (`mcp:tools` grants `mcp:tools:read`). `*` in a scope is a plain
    ///   character.
    pub fn has_permission(&self, required: &str) -> bool {
        self.inner
            .permissions
            .iter()
            .any(|held| permission_matches(held, required))
            || self
                .inner
                .scopes
                .iter()
                .any(|held| scope_implies(held, required))
    }

    /// The scopes to name in an `insufficient_scope` challenge for `required` permissions:
    /// each permission that this identity's [`ScopeMap`] grants for some scope is named by
    /// that scope (the first entry that grants it), the others by themselves.
    pub(crate) fn challenge_scopes<'a, I>(&self, required: I) -> Vec<String>
    where
        I: IntoIterator<Item = &'a str>,
    {
        let mut out: Vec<String> = Vec::new();
        for permission in required {
            let scope = self
                .inner
                .scope_map
                .as_ref()
                .and_then(|map| map.scope_granting(permission))
                .unwrap_or(permission);
            if !out.iter().any(|s| s == scope) {
                out.push(scope.to_owned());
            }
        }
        out
    }
}

/// Whether a held permission grants a required one (see [`Identity::has_permission`]).
pub(crate) fn permission_matches(held: &str, required: &str) -> bool {
    match held.strip_suffix('*') {
        Some(prefix) => required.starts_with(prefix),
        None => held == required,
    }
}

/// Whether a held token scope implies `required`: equal, or `required` is a `:`-separated
/// child of it (`mcp:tools` implies `mcp:tools:read`, not `mcp:toolsets`).
pub(crate) fn scope_implies(held: &str, required: &str) -> bool {
    !held.is_empty()
        && match required.strip_prefix(held) {
            Some(rest) => rest.is_empty() || rest.starts_with(':'),
            None => false,
        }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("Identity")
            .field("method", &i.method)
            .field("name", &i.name)
            .field("issuer", &i.issuer)
            .field("user_id", &i.user_id)
            .field("role", &i.role)
            .field("permissions", &i.permissions)
            .field("scopes", &i.scopes)
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
    /// The issuer vouching for the user id (a token's `iss`). Leave unset for API keys.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.inner.issuer = Some(issuer.into());
        self
    }

    /// Drops the issuer: the user id is then in the operator's local namespace, the one of
    /// API keys (see [`MapIdentity`](crate::MapIdentity) to merge users on purpose).
    pub fn local(mut self) -> Self {
        self.inner.issuer = None;
        self
    }

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

    /// Operator-written permissions, with wildcards (API keys, a [`ScopeMap`]'s grants).
    /// Replaces any set before.
    pub fn permissions<I, P>(mut self, permissions: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<String>,
    {
        self.inner.permissions = permissions.into_iter().map(Into::into).collect();
        self
    }

    /// A token's scopes, as issued; matched literally (see [`Identity::has_permission`]).
    pub fn scopes<I, P>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<String>,
    {
        self.inner.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Remembers the mapping that granted the permissions (for challenges).
    pub(crate) fn scope_map(mut self, map: ScopeMap) -> Self {
        self.inner.scope_map = Some(map);
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
    fn scope_hierarchy_is_colon_separated() {
        assert!(scope_implies("mcp:tools", "mcp:tools"));
        assert!(scope_implies("mcp:tools", "mcp:tools:read"));
        assert!(scope_implies("tools/call", "tools/call:search"));
        assert!(!scope_implies("mcp:tools", "mcp:toolsets"));
        assert!(!scope_implies("mcp:tools:read", "mcp:tools"));
        assert!(!scope_implies("*", "anything"));
        assert!(!scope_implies("x*", "xy"));
        assert!(scope_implies("*", "*"));
        assert!(!scope_implies("", ":x"));
    }

    #[test]
    fn token_scopes_are_not_wildcards() {
        let id = Identity::builder(AuthMethod::Bearer, "t")
            .scopes(["*", "tools/*"])
            .build();
        assert!(!id.has_permission("admin"));
        assert!(!id.has_permission("tools/list"));
        assert!(id.has_permission("*"), "an exact literal match");
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
