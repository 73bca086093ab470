//! [`EndpointPolicy`]: what one endpoint requires.

use std::sync::Arc;

/// Who owns an endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    /// Any authenticated caller (when auth is on).
    Public,
    /// Only credentials of this user id. Public API keys (no `userId`) get 403
    /// `Public API keys cannot access private endpoints`; other users get 403 `access_denied`.
    User(Arc<str>),
}

/// The auth mode, ownership and required permissions of one endpoint.
///
/// | constructor | `enable_api_key_auth` | `enable_oauth` |
/// |---|---|---|
/// | [`open`](Self::open) | false | false |
/// | [`api_key_only`](Self::api_key_only) | true | false |
/// | [`oauth_only`](Self::oauth_only) | false | true |
/// | [`both`](Self::both) | true | true |
///
/// Cheap to clone (shared data behind `Arc`).
///
/// ```
/// use tower_mcp_auth::{EndpointPolicy, Owner};
///
/// let p = EndpointPolicy::both().private_to("alice").require(["tools/call"]);
/// assert!(p.enable_api_key_auth() && p.enable_oauth());
/// assert_eq!(p.owner(), &Owner::User("alice".into()));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointPolicy {
    api_key: bool,
    oauth: bool,
    owner: Owner,
    required: Arc<[String]>,
}

impl EndpointPolicy {
    /// A policy with explicit mode flags (MetaMCP's `enable_api_key_auth`, `enable_oauth`).
    pub fn new(enable_api_key_auth: bool, enable_oauth: bool) -> Self {
        Self {
            api_key: enable_api_key_auth,
            oauth: enable_oauth,
            owner: Owner::Public,
            required: Arc::from([]),
        }
    }

    /// No authentication: every request passes, credentials are not checked.
    pub fn open() -> Self {
        Self::new(false, false)
    }

    /// API keys only; no `WWW-Authenticate` challenge is ever sent.
    pub fn api_key_only() -> Self {
        Self::new(true, false)
    }

    /// OAuth bearer tokens only.
    pub fn oauth_only() -> Self {
        Self::new(false, true)
    }

    /// API keys or bearer tokens; a presented API key takes precedence.
    pub fn both() -> Self {
        Self::new(true, true)
    }

    /// Makes the endpoint private to `user_id`.
    #[must_use]
    pub fn private_to(mut self, user_id: impl Into<Arc<str>>) -> Self {
        self.owner = Owner::User(user_id.into());
        self
    }

    /// Requires every listed permission (API keys) or scope (tokens). A held `*` grants all.
    /// Missing ones give 403 `insufficient_scope`.
    #[must_use]
    pub fn require<I, P>(mut self, permissions: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<String>,
    {
        self.required = permissions.into_iter().map(Into::into).collect();
        self
    }

    /// Whether API keys are accepted.
    pub fn enable_api_key_auth(&self) -> bool {
        self.api_key
    }

    /// Whether OAuth bearer tokens are accepted.
    pub fn enable_oauth(&self) -> bool {
        self.oauth
    }

    /// Whether the endpoint is open (no authentication at all).
    pub fn is_open(&self) -> bool {
        !self.api_key && !self.oauth
    }

    /// The owner.
    pub fn owner(&self) -> &Owner {
        &self.owner
    }

    /// Required permissions / scopes.
    pub fn required(&self) -> &[String] {
        &self.required
    }
}
