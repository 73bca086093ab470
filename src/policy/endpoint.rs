//! [`EndpointPolicy`]: what one endpoint requires.

use std::sync::Arc;

/// Who owns an endpoint.
///
/// Users are namespaced by issuer ([`Identity::issuer`](crate::Identity::issuer)): a user id
/// alone never matches a token subject of some identity provider, and `sub=42` from two
/// providers is two users.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    /// Any authenticated caller (when auth is on).
    Public,
    /// Only credentials of this *local* user id: API keys with this `userId`, and tokens
    /// without `iss` with this `sub`. Public API keys (no `userId`) get 403
    /// `Public API keys cannot access private endpoints`; other users, and token subjects of
    /// an issuer, get 403 `access_denied`.
    User(Arc<str>),
    /// Only tokens whose `iss` is `issuer` and whose `sub` is `subject`.
    Subject {
        /// The token's `iss`, compared byte for byte.
        issuer: Arc<str>,
        /// The token's `sub`.
        subject: Arc<str>,
    },
}

impl Owner {
    /// Whether the user (`issuer`, `user_id`) is this owner.
    pub(crate) fn is(&self, issuer: Option<&str>, user_id: &str) -> bool {
        match self {
            Owner::Public => true,
            Owner::User(owner) => issuer.is_none() && user_id == &**owner,
            Owner::Subject {
                issuer: owner_issuer,
                subject,
            } => issuer == Some(&**owner_issuer) && user_id == &**subject,
        }
    }
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
/// use tower_mcp_auth::{EndpointPolicy, policy::Owner};
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

    /// Makes the endpoint private to the local user `user_id`: API keys with that `userId`
    /// (and tokens without `iss`). A token of an identity provider whose `sub` happens to be
    /// `user_id` is a different user: use [`private_to_subject`](Self::private_to_subject),
    /// or map its identity onto the local user with [`MapIdentity`](crate::MapIdentity).
    #[must_use]
    pub fn private_to(mut self, user_id: impl Into<Arc<str>>) -> Self {
        self.owner = Owner::User(user_id.into());
        self
    }

    /// Makes the endpoint private to the token subject `subject` of `issuer` (the `iss` and
    /// `sub` claims).
    ///
    /// ```
    /// use tower_mcp_auth::{EndpointPolicy, policy::Owner};
    ///
    /// let p = EndpointPolicy::oauth_only().private_to_subject("https://accounts.google.com", "1098");
    /// assert!(matches!(p.owner(), Owner::Subject { subject, .. } if &**subject == "1098"));
    /// ```
    #[must_use]
    pub fn private_to_subject(
        mut self,
        issuer: impl Into<Arc<str>>,
        subject: impl Into<Arc<str>>,
    ) -> Self {
        self.owner = Owner::Subject {
            issuer: issuer.into(),
            subject: subject.into(),
        };
        self
    }

    /// Requires every listed permission (API keys, [`ScopeMap`](crate::ScopeMap) grants) or
    /// scope (tokens, matched literally or as a `:` parent: `mcp:tools` satisfies
    /// `mcp:tools:read`). An operator-written `*` grants all; a token scope `*` does not.
    /// Missing ones give 403 `insufficient_scope` naming every one of them.
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
