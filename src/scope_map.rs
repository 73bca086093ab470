//! [`ScopeMap`]: which MCP permissions a token's OAuth scopes grant, and [`MapIdentity`], the
//! verifier adapter that applies it (or any other identity mapping) once per verified token.
//!
//! Authorization servers issue scopes of their own vocabulary (`openid mcp:tools repo:read`);
//! the MCP layer checks permissions (`tools/list`, `tools/call:search`). A token's scopes
//! never act as wildcards ([`Identity::has_permission`]): an authorization server that issues
//! `*` grants nothing special. What a scope *means* is written by the operator, here.

use std::fmt;
use std::sync::Arc;

use crate::deferred::Deferred;
use crate::identity::{permission_matches, scope_implies, Identity};
use crate::{bearer::TokenError, TokenVerifier};

/// Maps token scopes to MCP permissions.
///
/// - Each entry grants operator-written permissions (wildcards allowed: `tools/call:*`,
///   `tools/call:search_*`, `*`) to tokens holding its scope.
/// - **Scope hierarchy**: a scope implies its `:`-separated children. A token holding
///   `mcp:tools` gets the entries of `mcp:tools` and of `mcp:tools:read`; a token holding only
///   `mcp:tools:read` does not get `mcp:tools`'s. (`mcp:toolsets` is not a child of
///   `mcp:tools`.)
/// - The token keeps its [`scopes`](Identity::scopes) (matched literally), and gets the granted
///   permissions as [`permissions`](Identity::permissions). So a policy's
///   [`require`](crate::EndpointPolicy::require) and the MCP rules both see them.
/// - Token scopes are not wildcards unless [`trust_token_wildcards`](Self::trust_token_wildcards)
///   is turned on (only for an authorization server you run and whose scopes you write).
/// - In `insufficient_scope` challenges, a missing permission is named by the first entry (in
///   the order added) that grants it: add narrow scopes before broad ones.
///
/// Apply it once per verified token with [`verifier`](Self::verifier), *inside* a
/// [`CachedVerifier`](crate::bearer::CachedVerifier) so cache hits are not mapped again.
///
/// ```
/// use tower_mcp_auth::{AuthMethod, Identity, ScopeMap};
///
/// let map = ScopeMap::new()
///     .grant("repo:read", ["tools/call:search_*"])
///     .grant("mcp:tools", ["tools/list", "tools/call:*"])
///     .grant("mcp:admin", ["*"]);
///
/// let token = Identity::builder(AuthMethod::Bearer, "42")
///     .scopes(["openid", "mcp:tools"])
///     .build();
/// let id = map.apply(&token);
/// assert!(id.has_permission("tools/list"));
/// assert!(id.has_permission("tools/call:whoami"));
/// assert!(!id.has_permission("resources/read:file:///etc/passwd"));
///
/// // A scope `*` from the authorization server is just a name.
/// let star = map.apply(&Identity::builder(AuthMethod::Bearer, "x").scopes(["*"]).build());
/// assert!(!star.has_permission("tools/list"));
/// ```
///
/// From JSON (the examples read `MCP_SCOPE_PERMISSIONS`):
///
/// ```
/// use tower_mcp_auth::{JwtVerifier, ScopeMap};
///
/// let map = ScopeMap::from_json(r#"{"mcp:tools": ["tools/list", "tools/call:*"]}"#).unwrap();
/// let jwt = JwtVerifier::hs256(b"an-hs256-secret-that-is-32-bytes+").build().unwrap();
/// let verifier = tower_mcp_auth::bearer::CachedVerifier::new(map.verifier(jwt));
/// # let _ = verifier;
/// ```
#[derive(Clone, Default)]
#[must_use]
pub struct ScopeMap {
    inner: Arc<Inner>,
}

#[derive(Clone, Default)]
struct Inner {
    entries: Vec<(String, Vec<String>)>,
    trust_token_wildcards: bool,
}

/// Why [`ScopeMap::from_json`] refused its input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScopeMapError {
    /// Not a JSON object of scope → array of permission strings.
    #[error("scope map must be a JSON object of scope -> [permission, ...]: {0}")]
    Json(#[from] serde_json::Error),
    /// A scope that no token can carry (empty, or with whitespace, `"` or `\`).
    #[error("scope map: {0:?} is not a scope token (RFC 6749 section 3.3)")]
    BadScope(String),
    /// An empty permission string.
    #[error("scope map: scope {0:?} grants an empty permission")]
    EmptyPermission(String),
}

impl ScopeMap {
    /// An empty map: token scopes grant only themselves, literally.
    pub fn new() -> Self {
        Self::default()
    }

    /// Tokens holding `scope` (or a parent of it) get `permissions`. Adding a scope twice
    /// adds to its permissions.
    ///
    /// ```
    /// use tower_mcp_auth::ScopeMap;
    /// let map = ScopeMap::new().grant("mcp:tools", ["tools/list", "tools/call:*"]);
    /// assert_eq!(map.permissions_for(["mcp:tools"]), ["tools/list", "tools/call:*"]);
    /// ```
    pub fn grant<I, P>(mut self, scope: impl Into<String>, permissions: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<String>,
    {
        let scope = scope.into();
        let permissions = permissions.into_iter().map(Into::into);
        let inner = Arc::make_mut(&mut self.inner);
        match inner.entries.iter_mut().find(|(s, _)| *s == scope) {
            Some((_, held)) => held.extend(permissions),
            None => inner.entries.push((scope, permissions.collect())),
        }
        self
    }

    /// Reads `{"scope": ["permission", ...], ...}`, entries in document order.
    ///
    /// ```
    /// use tower_mcp_auth::ScopeMap;
    /// let map = ScopeMap::from_json(r#"{"mcp:admin": ["*"]}"#).unwrap();
    /// assert_eq!(map.permissions_for(["mcp:admin"]), ["*"]);
    /// assert!(ScopeMap::from_json(r#"{"a b": ["x"]}"#).is_err());
    /// assert!(ScopeMap::from_json(r#"["x"]"#).is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// [`ScopeMapError`] for anything but an object of scope tokens to arrays of non-empty
    /// strings.
    pub fn from_json(json: &str) -> Result<Self, ScopeMapError> {
        // `serde_json` keeps document order only with `preserve_order`; read the pairs
        // through a visitor-free Vec of entries instead.
        let entries: OrderedEntries = serde_json::from_str(json)?;
        let mut map = ScopeMap::new();
        for (scope, permissions) in entries.0 {
            if !is_scope_token(&scope) {
                return Err(ScopeMapError::BadScope(scope));
            }
            if permissions.iter().any(String::is_empty) {
                return Err(ScopeMapError::EmptyPermission(scope));
            }
            map = map.grant(scope, permissions);
        }
        Ok(map)
    }

    /// Also treats the token's own scopes as operator-written permissions, wildcards
    /// included (default off). Only for an authorization server whose scopes you write
    /// yourself; with any other, a scope `*` would grant everything.
    pub fn trust_token_wildcards(mut self, trust: bool) -> Self {
        Arc::make_mut(&mut self.inner).trust_token_wildcards = trust;
        self
    }

    /// Whether the map has no entries.
    pub fn is_empty(&self) -> bool {
        self.inner.entries.is_empty()
    }

    /// The permissions `scopes` get: those of every entry whose scope one of them implies,
    /// without duplicates (plus the scopes themselves with
    /// [`trust_token_wildcards`](Self::trust_token_wildcards)).
    pub fn permissions_for<I, S>(&self, scopes: I) -> Vec<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let scopes: Vec<S> = scopes.into_iter().collect();
        let mut out: Vec<String> = Vec::new();
        let mut add = |p: &str| {
            if !out.iter().any(|o| o == p) {
                out.push(p.to_owned());
            }
        };
        for (scope, permissions) in &self.inner.entries {
            if scopes
                .iter()
                .any(|held| scope_implies(held.as_ref(), scope))
            {
                permissions.iter().for_each(|p| add(p));
            }
        }
        if self.inner.trust_token_wildcards {
            scopes.iter().for_each(|s| add(s.as_ref()));
        }
        out
    }

    /// The identity with the permissions its scopes get added to the ones it has.
    pub fn apply(&self, identity: &Identity) -> Identity {
        let mut permissions = identity.permissions().to_vec();
        for p in self.permissions_for(identity.scopes()) {
            if !permissions.contains(&p) {
                permissions.push(p);
            }
        }
        identity
            .to_builder()
            .permissions(permissions)
            .scope_map(self.clone())
            .build()
    }

    /// `inner`, with this map applied to every identity it verifies.
    pub fn verifier<V: TokenVerifier>(self, inner: V) -> MapIdentity<V, ScopeMap> {
        MapIdentity::new(inner, self)
    }

    /// The first scope whose entry grants `permission` (for challenges).
    pub(crate) fn scope_granting(&self, permission: &str) -> Option<&str> {
        self.inner
            .entries
            .iter()
            .find(|(_, granted)| granted.iter().any(|g| permission_matches(g, permission)))
            .map(|(scope, _)| scope.as_str())
    }
}

/// RFC 6749 §3.3 `scope-token`: `%x21 / %x23-5B / %x5D-7E`, at least one.
fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
}

/// A JSON object read as its entries in document order.
struct OrderedEntries(Vec<(String, Vec<String>)>);

impl<'de> serde::Deserialize<'de> for OrderedEntries {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = OrderedEntries;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of scope -> [permission, ...]")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<OrderedEntries, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<String, Vec<String>>()? {
                    out.push(entry);
                }
                Ok(OrderedEntries(out))
            }
        }
        d.deserialize_map(Visit)
    }
}

impl fmt::Debug for ScopeMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopeMap")
            .field("entries", &self.inner.entries)
            .field("trust_token_wildcards", &self.inner.trust_token_wildcards)
            .finish()
    }
}

/// Turns one verified [`Identity`] into another; see [`MapIdentity`].
///
/// Implemented for [`ScopeMap`] and for every `Fn(Identity) -> Identity`.
pub trait IdentityMap: Send + Sync + 'static {
    /// The identity requests will carry instead of `identity`.
    fn map(&self, identity: Identity) -> Identity;
}

impl IdentityMap for ScopeMap {
    fn map(&self, identity: Identity) -> Identity {
        self.apply(&identity)
    }
}

impl<F> IdentityMap for F
where
    F: Fn(Identity) -> Identity + Send + Sync + 'static,
{
    fn map(&self, identity: Identity) -> Identity {
        self(identity)
    }
}

/// A [`TokenVerifier`] that maps every identity its inner verifier accepts, once per
/// verification: a [`ScopeMap`], or a closure, for example to make the subjects of several
/// issuers one local user on purpose (users are otherwise namespaced by issuer).
///
/// Put it inside a [`CachedVerifier`](crate::bearer::CachedVerifier): the cache then stores the mapped
/// identity.
///
/// ```
/// use tower_mcp_auth::{EndpointPolicy, Identity, JwtVerifier, MapIdentity, TokenVerifier};
///
/// let jwt = JwtVerifier::hs256(b"an-hs256-secret-that-is-32-bytes+")
///     .issuer("https://github.example")
///     .issuer("https://google.example")
///     .build()
///     .unwrap();
/// // GitHub user 42 and Google user 1098 are Alice, a local user like her API keys.
/// let verifier = MapIdentity::new(jwt, |id: Identity| {
///     match (id.issuer(), id.user_id()) {
///         (Some("https://github.example"), Some("42"))
///         | (Some("https://google.example"), Some("1098")) => {
///             id.to_builder().local().user_id("alice").build()
///         }
///         _ => id,
///     }
/// });
/// // ... so that her private endpoint accepts both logins.
/// let policy = EndpointPolicy::oauth_only().private_to("alice");
/// # let _ = (verifier, policy);
/// ```
pub struct MapIdentity<V, M> {
    inner: V,
    map: Arc<M>,
}

impl<V: TokenVerifier, M: IdentityMap> MapIdentity<V, M> {
    /// Maps what `inner` accepts with `map`.
    pub fn new(inner: V, map: M) -> Self {
        Self {
            inner,
            map: Arc::new(map),
        }
    }
}

impl<V: TokenVerifier, M: IdentityMap> TokenVerifier for MapIdentity<V, M> {
    fn verify(&self, token: &str) -> Deferred<Result<Identity, TokenError>> {
        match self.inner.verify(token).try_into_ready() {
            Ok(result) => Deferred::ready(result.map(|id| self.map.map(id))),
            Err(pending) => {
                let map = self.map.clone();
                Deferred::boxed(async move { pending.await.map(|id| map.map(id)) })
            }
        }
    }

    fn cached(&self, token: &[u8]) -> Option<Identity> {
        self.inner.cached(token).map(|id| self.map.map(id))
    }
}

impl<V, M> fmt::Debug for MapIdentity<V, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapIdentity").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::AuthMethod;

    fn token(scopes: &[&str]) -> Identity {
        Identity::builder(AuthMethod::Bearer, "t")
            .scopes(scopes.iter().copied())
            .build()
    }

    #[test]
    fn hierarchy_grants_children_entries_not_parents() {
        let map = ScopeMap::new()
            .grant("mcp:tools:read", ["tools/list"])
            .grant("mcp:tools", ["tools/call:*"]);
        assert_eq!(
            map.permissions_for(["mcp:tools"]),
            ["tools/list", "tools/call:*"]
        );
        assert_eq!(map.permissions_for(["mcp:tools:read"]), ["tools/list"]);
        assert!(map.permissions_for(["mcp:toolsets"]).is_empty());
        assert!(map.permissions_for(["mcp"]).len() == 2, "a parent of both");
    }

    #[test]
    fn wildcard_scopes_only_when_trusted() {
        let map = ScopeMap::new();
        assert!(!map.apply(&token(&["*"])).has_permission("tools/list"));
        let trusting = map.trust_token_wildcards(true);
        assert!(trusting.apply(&token(&["*"])).has_permission("tools/list"));
    }

    #[test]
    fn challenges_name_the_granting_scope() {
        let map = ScopeMap::new()
            .grant("repo:read", ["tools/call:search_*"])
            .grant("mcp:tools", ["tools/list", "tools/call:*"]);
        let id = map.apply(&token(&["openid"]));
        assert_eq!(
            id.challenge_scopes(["tools/call:search_docs", "tools/call:rm", "other"]),
            ["repo:read", "mcp:tools", "other"]
        );
    }

    #[test]
    fn json_keeps_order_and_validates() {
        let map = ScopeMap::from_json(r#"{"b": ["x"], "a": ["y"], "b": ["z"]}"#).unwrap();
        assert_eq!(map.scope_granting("z"), Some("b"));
        assert_eq!(map.permissions_for(["a", "b"]), ["x", "z", "y"]);
        assert!(matches!(
            ScopeMap::from_json(r#"{"": ["x"]}"#),
            Err(ScopeMapError::BadScope(_))
        ));
        assert!(matches!(
            ScopeMap::from_json(r#"{"a": [""]}"#),
            Err(ScopeMapError::EmptyPermission(_))
        ));
        assert!(matches!(
            ScopeMap::from_json(r#"{"a": "x"}"#),
            Err(ScopeMapError::Json(_))
        ));
    }
}
