//! [`OAuthClient`]: the configured flows (start, callback, upstream tokens).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::header::{HeaderValue, CACHE_CONTROL, LOCATION, SET_COOKIE};
use http::request::Parts;
use http::{HeaderMap, Response, StatusCode};
use http_body_util::Full;
use oauth2::basic::{BasicErrorResponse, BasicErrorResponseType};
use oauth2::{
    AuthorizationCode, CsrfToken, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken,
    RequestTokenError, Scope, TokenResponse as _,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::identity::Identity;
use crate::outcome::BearerOutcome;
use crate::store::{MemoryStore, StateStore};

use super::authorize::{GithubApi, LoginPolicy};
use super::http::{HttpClient, HttpError};
use super::pkce::PkceVerifier;
use super::providers::{is_loopback_http, Provider, ResolvedProvider, TokenResponse};
use super::session::{cookie_header_at, SessionConfig};
use super::state::{StatePayload, StateSigner};
use super::upstream::{EncryptionKey, TokenVault, UpstreamError, UpstreamToken};
use super::{OAuthConfigError, OAuthError, StateError, UserInfo};

/// Default lifetime of a `state` (ContextForge's `STATE_TTL_SECONDS`).
pub const DEFAULT_STATE_TTL: Duration = Duration::from_secs(300);
/// Default start route; `{provider}` is the provider's name.
pub const DEFAULT_START_PATH: &str = "/auth/oauth/{provider}/start";
/// Default logout route (`POST`): clears the session cookie.
pub const DEFAULT_LOGOUT_PATH: &str = "/auth/logout";
/// Default timeout of each request to a provider.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Upstream tokens are refreshed when they expire within this window.
pub const DEFAULT_REFRESH_SKEW: Duration = Duration::from_secs(60);

/// Clock skew tolerated between the instance that started a flow and the one that ends it.
const CLOCK_SKEW_MS: u64 = 60_000;
/// Longest callback query accepted.
const MAX_QUERY: usize = 16 * 1024;
/// Longest authorization code accepted.
const MAX_CODE: usize = 4096;
/// How long another instance's refresh is waited for.
const REFRESH_WAIT: Duration = Duration::from_secs(15);
/// How long a cross-instance refresh lock lives if its holder dies.
const REFRESH_LOCK_TTL: Duration = Duration::from_secs(30);
/// Parameters of the authorization request that `extra_param` may not override.
const RESERVED_PARAMS: [&str; 8] = [
    "state",
    "code_challenge",
    "code_challenge_method",
    "redirect_uri",
    "client_id",
    "response_type",
    "scope",
    "nonce",
];

/// The OAuth client side: providers, state, PKCE, sessions and upstream tokens.
///
/// Build it once at start-up with [`OAuthClient::builder`] (it fetches each OIDC provider's
/// discovery document and keys), serve its [`routes`](Self::routes), and, for gateways,
/// get per-user upstream tokens with [`upstream_token`](Self::upstream_token). Cheap to
/// clone.
///
/// Every instance that may receive a callback needs the same state secret and a shared
/// [`StateStore`] (Redis, PostgreSQL): the flow started on one instance can then end on
/// another, and a replayed callback is refused on all of them.
///
/// ```no_run
/// use std::time::Duration;
/// use tower_mcp_auth::oauth::{OAuthClient, Provider, SessionConfig};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let store = tower_mcp_auth::store::connect("redis://127.0.0.1:6379").await?;
/// let oauth = OAuthClient::builder("https://mcp.example.com/auth/oauth/callback")
///     .provider(Provider::github("client-id", "client-secret"))
///     .state_secret(std::env::var("STATE_SECRET")?)
///     .state_ttl(Duration::from_secs(300))
///     .store_shared(store)
///     .session(SessionConfig::new(std::env::var("SESSION_SECRET")?)?)
///     .allow_redirect("/dashboard")
///     .build()
///     .await?;
/// let routes = oauth.routes(); // mount at /auth/oauth/...
/// # let _ = routes; Ok(()) }
/// ```
#[derive(Clone)]
pub struct OAuthClient {
    inner: Arc<Inner>,
}

struct Inner {
    providers: HashMap<String, Arc<ResolvedProvider>>,
    upstreams: HashMap<String, String>,
    store: Arc<dyn StateStore>,
    signer: StateSigner,
    state_ttl: Duration,
    redirect_uri: String,
    callback_path: String,
    start_prefix: String,
    start_suffix: String,
    logout_path: String,
    targets: Vec<String>,
    session: Option<SessionConfig>,
    policy: Option<LoginPolicy>,
    vault: Option<TokenVault>,
    http: HttpClient,
    prefix: String,
    bind_browser: bool,
    flow_cookie_secure: bool,
    refresh_skew: Duration,
    inflight: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

/// Configures an [`OAuthClient`]; see [`OAuthClient::builder`].
#[must_use]
pub struct OAuthClientBuilder {
    redirect_uri: String,
    providers: Vec<Provider>,
    signer: Option<Result<StateSigner, OAuthConfigError>>,
    state_ttl: Duration,
    store: Option<Arc<dyn StateStore>>,
    session: Option<SessionConfig>,
    policy: Option<LoginPolicy>,
    targets: Vec<String>,
    upstreams: Vec<(String, String)>,
    keys: Vec<EncryptionKey>,
    http_timeout: Duration,
    start_path: String,
    logout_path: String,
    prefix: String,
    bind_browser: bool,
    refresh_skew: Duration,
}

impl OAuthClient {
    /// Starts configuring a client whose providers send users back to `redirect_uri`
    /// (absolute; `https`, or `http` on a loopback host for development). It is sent to
    /// providers exactly as given (register the same string with them), and its path is the
    /// callback route.
    pub fn builder(redirect_uri: impl Into<String>) -> OAuthClientBuilder {
        OAuthClientBuilder {
            redirect_uri: redirect_uri.into(),
            providers: Vec::new(),
            signer: None,
            state_ttl: DEFAULT_STATE_TTL,
            store: None,
            session: None,
            policy: None,
            targets: Vec::new(),
            upstreams: Vec::new(),
            keys: Vec::new(),
            http_timeout: DEFAULT_HTTP_TIMEOUT,
            start_path: DEFAULT_START_PATH.to_owned(),
            logout_path: DEFAULT_LOGOUT_PATH.to_owned(),
            prefix: "oauth:".to_owned(),
            bind_browser: true,
            refresh_skew: DEFAULT_REFRESH_SKEW,
        }
    }
}

impl OAuthClientBuilder {
    /// Adds a provider; its [`name`](Provider::name) selects it in the start route.
    pub fn provider(mut self, provider: Provider) -> Self {
        self.providers.push(provider);
        self
    }

    /// The HMAC-SHA256 secret that signs `state` (32+ bytes, the same on every instance).
    pub fn state_secret(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.signer = Some(StateSigner::new(secret));
        self
    }

    /// A signer with several secrets, for rotation; see [`StateSigner::previous`].
    pub fn state_signer(mut self, signer: StateSigner) -> Self {
        self.signer = Some(Ok(signer));
        self
    }

    /// How long a user has to complete a login (default 300 s, at least 1 s).
    pub fn state_ttl(mut self, ttl: Duration) -> Self {
        self.state_ttl = ttl.max(Duration::from_secs(1));
        self
    }

    /// Where flows and upstream tokens are kept (default: a [`MemoryStore`], which only
    /// works with one instance).
    pub fn store(self, store: impl StateStore) -> Self {
        self.store_shared(Arc::new(store))
    }

    /// A store shared with other layers (for example the one from
    /// [`store::connect`](crate::store::connect)).
    pub fn store_shared(mut self, store: Arc<dyn StateStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Issue a session cookie after login.
    pub fn session(mut self, session: SessionConfig) -> Self {
        self.session = Some(session);
        self
    }

    /// Who may log in: checked after the provider vouched for the user and before the
    /// session is issued (and before [`CallbackOutcome::Login`] is returned). A refused
    /// login answers `403 access_denied`, with no session cookie. Required when
    /// [`session`](Self::session) is set. Upstream-token flows (a logged-in user connecting
    /// an account) are not checked: they issue no session.
    ///
    /// ```no_run
    /// use tower_mcp_auth::oauth::{LoginPolicy, OAuthClient, Provider, SessionConfig};
    ///
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let oauth = OAuthClient::builder("https://mcp.example.com/auth/oauth/callback")
    ///     .provider(Provider::google("id", "secret"))
    ///     .state_secret(std::env::var("STATE_SECRET")?)
    ///     .session(SessionConfig::new(std::env::var("SESSION_SECRET")?)?)
    ///     .login_policy(LoginPolicy::new().allow_email_domains(["example.com"]))
    ///     .build()
    ///     .await?;
    /// # let _ = oauth; Ok(()) }
    /// ```
    pub fn login_policy(mut self, policy: LoginPolicy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Lets every account the providers vouch for log in ([`LoginPolicy::any_account`]):
    /// any GitHub user, any Google account, any tenant of a multi-tenant Microsoft app. A
    /// warning is logged at build time.
    pub fn allow_any_account(self) -> Self {
        self.login_policy(LoginPolicy::any_account())
    }

    /// Allows `target` as a post-login redirect (`?redirect_to=` on the start route): a path
    /// such as `/dashboard`, or an absolute URL. Only exact matches are followed; the first
    /// allowed target is the default (`/` when none is configured).
    pub fn allow_redirect(mut self, target: impl Into<String>) -> Self {
        self.targets.push(target.into());
        self
    }

    /// Declares an upstream (an MCP server behind a gateway) whose per-user tokens come from
    /// `provider`. Start its flow with `?upstream={id}` on that provider's start route, as a
    /// logged-in user. Needs [`token_encryption_key`](Self::token_encryption_key).
    pub fn upstream(mut self, id: impl Into<String>, provider: impl Into<String>) -> Self {
        self.upstreams.push((id.into(), provider.into()));
        self
    }

    /// The key that encrypts upstream tokens at rest. Call again to add older keys that
    /// still decrypt (rotation); the first one encrypts.
    pub fn token_encryption_key(mut self, key: EncryptionKey) -> Self {
        self.keys.push(key);
        self
    }

    /// Timeout of each request to a provider (default 10 s).
    pub fn http_timeout(mut self, timeout: Duration) -> Self {
        self.http_timeout = timeout;
        self
    }

    /// The start route, with `{provider}` where the provider name goes (default
    /// `/auth/oauth/{provider}/start`).
    pub fn start_path(mut self, template: impl Into<String>) -> Self {
        self.start_path = template.into();
        self
    }

    /// The logout route (default [`DEFAULT_LOGOUT_PATH`], `/auth/logout`): a `POST` there
    /// clears the session cookie and answers `303 See Other` to the default target.
    ///
    /// Session tokens are signed, not stored, so logging out removes the browser's copy; a
    /// token copied out of the browser stays valid until its `exp` (keep the session TTL short).
    pub fn logout_path(mut self, path: impl Into<String>) -> Self {
        self.logout_path = path.into();
        self
    }

    /// Prefix of every store key (default `oauth:`).
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Whether the start route sets a short-lived cookie that the callback must bring back
    /// (default on). It ties the flow to the browser that started it, which stops "login
    /// CSRF" (an attacker sending a victim the callback URL of the attacker's own login).
    /// Turn it off only when the callback is not opened by the browser that started the flow.
    pub fn bind_state_to_browser(mut self, bind: bool) -> Self {
        self.bind_browser = bind;
        self
    }

    /// Upstream tokens expiring within this window are refreshed first (default 60 s).
    pub fn refresh_before_expiry(mut self, skew: Duration) -> Self {
        self.refresh_skew = skew;
        self
    }

    /// Validates the configuration, fetches each OIDC provider's discovery document and
    /// keys, and builds the client.
    ///
    /// # Errors
    ///
    /// A missing or short state secret, a bad redirect URI or target, a non-`Secure` session
    /// cookie on a non-loopback redirect URI, duplicate providers, an upstream without
    /// provider or encryption key, or a provider whose discovery document or keys could not
    /// be fetched.
    pub async fn build(self) -> Result<OAuthClient, OAuthConfigError> {
        let signer = self.signer.ok_or(OAuthConfigError::MissingStateSecret)??;
        let redirect = oauth2::url::Url::parse(&self.redirect_uri)
            .map_err(|_| OAuthConfigError::RedirectUri("not an absolute URL"))?;
        let loopback = is_loopback_http(&self.redirect_uri);
        if redirect.scheme() != "https" && !loopback {
            return Err(OAuthConfigError::RedirectUri(
                "must be https (http only on localhost)",
            ));
        }
        if redirect.fragment().is_some() || redirect.query().is_some() {
            return Err(OAuthConfigError::RedirectUri(
                "must have no query or fragment",
            ));
        }
        let callback_path = redirect.path().to_owned();
        let redirect_url = RedirectUrl::new(self.redirect_uri.clone())
            .map_err(|_| OAuthConfigError::RedirectUri("not an absolute URL"))?;
        if let Some(session) = &self.session {
            if !session.is_secure() && !loopback {
                return Err(OAuthConfigError::Session(
                    "the session cookie can drop `Secure` only with an http://localhost redirect URI",
                ));
            }
            if !session.cookie_name_is_valid() {
                return Err(OAuthConfigError::Session(
                    "the session cookie name is not a valid cookie name",
                ));
            }
        }
        let (start_prefix, start_suffix) = split_start_path(&self.start_path)?;
        if start_prefix == callback_path {
            return Err(OAuthConfigError::StartPath("overlaps the callback path"));
        }
        let logout_path = self.logout_path;
        if !logout_path.starts_with('/') || logout_path.contains(['?', '#']) {
            return Err(OAuthConfigError::LogoutPath(
                "must be an absolute path without query or fragment",
            ));
        }
        let is_start_route = start_route_name(&start_prefix, &start_suffix, &logout_path).is_some();
        if logout_path == callback_path || is_start_route {
            return Err(OAuthConfigError::LogoutPath(
                "overlaps the callback or start path",
            ));
        }
        match &self.policy {
            None if self.session.is_some() => return Err(OAuthConfigError::NoLoginPolicy),
            Some(policy) => policy.validate().map_err(OAuthConfigError::LoginPolicy)?,
            None => {}
        }
        let mut targets = self.targets;
        if targets.is_empty() {
            targets.push("/".to_owned());
        }
        for t in &targets {
            if !valid_target(t) {
                return Err(OAuthConfigError::RedirectTarget(t.clone()));
            }
        }
        if self.providers.is_empty() {
            return Err(OAuthConfigError::NoProviders);
        }
        let http =
            HttpClient::new(self.http_timeout).map_err(|_: HttpError| OAuthConfigError::Http)?;
        let mut providers = HashMap::new();
        for provider in self.providers {
            let name = provider.name().to_owned();
            if providers.contains_key(&name) {
                return Err(OAuthConfigError::DuplicateProvider(name));
            }
            let mut resolved = provider
                .resolve(&http, &redirect_url, is_loopback_http)
                .await?;
            let needs_orgs = self
                .policy
                .as_ref()
                .is_some_and(LoginPolicy::needs_github_orgs);
            if needs_orgs
                && resolved.github_api().is_some()
                && !resolved.scopes.iter().any(|s| s == "read:org")
            {
                // Organization membership is read with the user's token.
                resolved.scopes.push("read:org".to_owned());
            }
            providers.insert(name, Arc::new(resolved));
        }
        let mut upstreams = HashMap::new();
        for (id, provider) in self.upstreams {
            if !providers.contains_key(&provider) {
                return Err(OAuthConfigError::Upstream {
                    upstream: id,
                    reason: "names a provider that is not configured",
                });
            }
            if self.keys.is_empty() {
                return Err(OAuthConfigError::Upstream {
                    upstream: id,
                    reason: "upstream tokens need token_encryption_key",
                });
            }
            upstreams.insert(id, provider);
        }
        if let Some(policy) = self.policy.as_ref().filter(|p| !p.is_restricted()) {
            let mut names: Vec<_> = providers.keys().cloned().collect();
            names.sort();
            tracing::warn!(
                providers = ?names,
                ?policy,
                "OAuth login is open to ANY account of these providers (allow_any_account): set a LoginPolicy to restrict it"
            );
        }
        let store = match self.store {
            Some(store) => store,
            None => {
                tracing::info!("OAuth state kept in memory: use a shared store (Redis, PostgreSQL) with more than one instance");
                Arc::new(MemoryStore::new())
            }
        };
        let vault = self.keys.split_first().map(|(first, rest)| {
            rest.iter().fold(
                TokenVault::from_shared(Arc::clone(&store), first.clone()).prefix(&self.prefix),
                |v, k| v.previous_key(k.clone()),
            )
        });
        Ok(OAuthClient {
            inner: Arc::new(Inner {
                providers,
                upstreams,
                store,
                signer,
                state_ttl: self.state_ttl,
                redirect_uri: self.redirect_uri,
                callback_path,
                start_prefix,
                start_suffix,
                logout_path,
                targets,
                session: self.session,
                policy: self.policy,
                vault,
                http,
                prefix: self.prefix,
                bind_browser: self.bind_browser,
                flow_cookie_secure: redirect.scheme() == "https",
                refresh_skew: self.refresh_skew,
                inflight: Mutex::new(HashMap::new()),
            }),
        })
    }
}

impl fmt::Debug for OAuthClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthClientBuilder")
            .field("redirect_uri", &self.redirect_uri)
            .field("providers", &self.providers)
            .field("state_ttl", &self.state_ttl)
            .field("targets", &self.targets)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut providers: Vec<_> = self.inner.providers.keys().collect();
        providers.sort();
        f.debug_struct("OAuthClient")
            .field("providers", &providers)
            .field("redirect_uri", &self.inner.redirect_uri)
            .field("state_ttl", &self.inner.state_ttl)
            .finish_non_exhaustive()
    }
}

/// The provider name in `path` if it is `{prefix}{name}{suffix}`, one path segment.
fn start_route_name<'p>(prefix: &str, suffix: &str, path: &'p str) -> Option<&'p str> {
    let name = path.strip_prefix(prefix)?.strip_suffix(suffix)?;
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

fn split_start_path(template: &str) -> Result<(String, String), OAuthConfigError> {
    if !template.starts_with('/') {
        return Err(OAuthConfigError::StartPath("must start with `/`"));
    }
    let (prefix, suffix) = template
        .split_once("{provider}")
        .ok_or(OAuthConfigError::StartPath("must contain `{provider}`"))?;
    if suffix.contains("{provider}") || !prefix.ends_with('/') {
        return Err(OAuthConfigError::StartPath(
            "needs exactly one `{provider}`, as a whole path segment",
        ));
    }
    if !(suffix.is_empty() || suffix.starts_with('/')) {
        return Err(OAuthConfigError::StartPath(
            "`{provider}` must be a whole path segment",
        ));
    }
    Ok((prefix.to_owned(), suffix.to_owned()))
}

/// A local path (`/x`, not `//x` or `/\x`) or an absolute https (or loopback http) URL.
fn valid_target(t: &str) -> bool {
    if t.chars().any(|c| c.is_control() || c == '\\') {
        return false;
    }
    if t.starts_with('/') {
        return !t.starts_with("//");
    }
    t.starts_with("https://") && oauth2::url::Url::parse(t).is_ok() || is_loopback_http(t)
}

/// Options of a flow started with [`OAuthClient::start`].
///
/// ```
/// use tower_mcp_auth::oauth::StartOptions;
///
/// let login = StartOptions::default().redirect_to("/dashboard");
/// let connect = StartOptions::default().upstream("github-tools").user("alice");
/// # let _ = (login, connect);
/// ```
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct StartOptions {
    upstream: Option<String>,
    user: Option<String>,
    redirect_to: Option<String>,
}

impl StartOptions {
    /// An upstream-token flow for this upstream id (needs [`user`](Self::user)).
    pub fn upstream(mut self, id: impl Into<String>) -> Self {
        self.upstream = Some(id.into());
        self
    }

    /// The logged-in user the flow belongs to.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// Where to send the user afterwards; must be an allowed target.
    pub fn redirect_to(mut self, target: impl Into<String>) -> Self {
        self.redirect_to = Some(target.into());
        self
    }
}

/// What [`OAuthClient::start`] returns: the provider URL to send the browser to, and the
/// cookie that ties the flow to that browser.
#[derive(Clone)]
pub struct AuthorizationRedirect {
    url: String,
    cookie: Option<HeaderValue>,
}

impl AuthorizationRedirect {
    /// The provider's authorization URL (with `state`, `code_challenge`, `nonce`...).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The `Set-Cookie` value binding the flow to the browser, when enabled.
    pub fn cookie(&self) -> Option<&HeaderValue> {
        self.cookie.as_ref()
    }

    /// A `302 Found` to the provider, with the cookie and `Cache-Control: no-store`.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        let mut res = no_store_redirect(StatusCode::FOUND, &self.url);
        if let Some(cookie) = self.cookie {
            res.headers_mut().append(SET_COOKIE, cookie);
        }
        res
    }
}

/// An empty `status` redirect to `location` that no cache keeps (every redirect of the flows
/// carries state, cookies or both). A location that is not a valid header value (never one
/// this crate builds) is left out rather than turned into a 500.
pub(crate) fn no_store_redirect(status: StatusCode, location: &str) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::new()));
    *res.status_mut() = status;
    let headers = res.headers_mut();
    if let Ok(location) = HeaderValue::try_from(location) {
        headers.insert(LOCATION, location);
    }
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

impl fmt::Debug for AuthorizationRedirect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL holds the state; it is not a secret once sent, but keep logs short.
        f.debug_struct("AuthorizationRedirect")
            .finish_non_exhaustive()
    }
}

/// What a successful callback did.
#[derive(Debug)]
#[non_exhaustive]
pub enum CallbackOutcome {
    /// A user logged in.
    Login {
        /// Who.
        user: UserInfo,
        /// The session token (when a [`SessionConfig`] is set).
        session: Option<SessionToken>,
        /// Where to send the browser.
        redirect_to: String,
    },
    /// A user connected an upstream: its token is in the vault.
    Upstream {
        /// The upstream id.
        upstream: String,
        /// The user id the token is stored for.
        user: String,
        /// Who the provider says authorized it.
        provider_user: UserInfo,
        /// Where to send the browser.
        redirect_to: String,
    },
}

/// A signed session token. `Debug` does not show it.
#[derive(Clone)]
pub struct SessionToken(String);

impl SessionToken {
    /// The JWT.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken([redacted])")
    }
}

/// What a callback must match, beyond its signature (see [`OAuthClient::callback_expecting`]).
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct Expected {
    upstream: Option<String>,
    user: Option<String>,
}

impl Expected {
    /// The flow must be for this upstream (gateway) id; otherwise
    /// `State parameter gateway mismatch`.
    pub fn upstream(mut self, id: impl Into<String>) -> Self {
        self.upstream = Some(id.into());
        self
    }

    /// The flow must have been started by this user; otherwise
    /// `State parameter user mismatch`.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }
}

/// What is kept in the store for a flow, under its nonce. Holds the PKCE verifier.
#[derive(Serialize, Deserialize)]
struct FlowRecord {
    /// SHA-256 of the whole state value.
    h: String,
    p: String,
    #[serde(default)]
    g: Option<String>,
    #[serde(default)]
    u: Option<String>,
    r: String,
    /// PKCE verifier.
    v: String,
    /// OIDC nonce.
    o: String,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn sha256_b64(s: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(s.as_bytes()))
}

/// The user id of an identity left in the request by the auth layers, if any.
pub(crate) fn request_user(parts: &Parts) -> Option<String> {
    if let Some(id) = parts.extensions.get::<Identity>() {
        return id.user_id().map(str::to_owned);
    }
    match parts.extensions.get::<BearerOutcome>() {
        Some(BearerOutcome::Verified(id)) => id.user_id().map(str::to_owned),
        _ => None,
    }
}

/// Reads single-valued query parameters; a repeated one is an error.
pub(crate) fn query_params(query: &str, names: &[&str]) -> Result<Vec<Option<String>>, OAuthError> {
    if query.len() > MAX_QUERY {
        return Err(OAuthError::InvalidRequest(
            "The request parameters are too large",
        ));
    }
    let mut out = vec![None; names.len()];
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if let Some(i) = names.iter().position(|n| *n == k) {
            if out[i].is_some() {
                return Err(OAuthError::InvalidRequest(
                    "A request parameter is repeated",
                ));
            }
            out[i] = Some(v.into_owned());
        }
    }
    Ok(out)
}

/// Keeps a provider's `error` code if it looks like one.
fn sanitize_code(code: &str) -> String {
    let ok = !code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        code.to_owned()
    } else {
        "error".to_owned()
    }
}

fn token_error(e: RequestTokenError<HttpError, BasicErrorResponse>) -> OAuthError {
    match e {
        RequestTokenError::ServerResponse(r) => match r.error() {
            BasicErrorResponseType::InvalidGrant => OAuthError::InvalidGrant,
            other => OAuthError::Provider(
                format!(
                    "the token endpoint refused the request ({})",
                    sanitize_code(other.as_ref())
                )
                .into(),
            ),
        },
        RequestTokenError::Request(HttpError::Timeout) => OAuthError::ProviderTimeout,
        RequestTokenError::Request(other) => {
            OAuthError::Provider(format!("token endpoint: {other}").into())
        }
        // Never show or log the body: it can hold tokens.
        RequestTokenError::Parse(..) | RequestTokenError::Other(_) => {
            OAuthError::Provider("the token endpoint's answer is not a token response".into())
        }
    }
}

impl OAuthClient {
    fn key(&self, kind: &str, nonce: &str) -> String {
        format!("{}{kind}:{nonce}", self.inner.prefix)
    }

    /// The callback route: the path of the redirect URI.
    pub fn callback_path(&self) -> &str {
        &self.inner.callback_path
    }

    /// The provider named by a request path, if it is a start route.
    pub(crate) fn start_route_provider<'p>(&self, path: &'p str) -> Option<&'p str> {
        start_route_name(&self.inner.start_prefix, &self.inner.start_suffix, path)
    }

    /// The start route of `provider`.
    ///
    /// ```no_run
    /// # async fn demo(oauth: tower_mcp_auth::oauth::OAuthClient) {
    /// assert_eq!(oauth.start_path("github"), "/auth/oauth/github/start");
    /// # }
    /// ```
    pub fn start_path(&self, provider: &str) -> String {
        format!(
            "{}{provider}{}",
            self.inner.start_prefix, self.inner.start_suffix
        )
    }

    /// The logout route (`POST`); see [`OAuthClientBuilder::logout_path`].
    pub fn logout_path(&self) -> &str {
        &self.inner.logout_path
    }

    /// The default post-login target (the first allowed one).
    pub fn default_target(&self) -> &str {
        &self.inner.targets[0]
    }

    /// The session configuration, if sessions are issued.
    pub fn session(&self) -> Option<&SessionConfig> {
        self.inner.session.as_ref()
    }

    /// The upstream token vault, if an encryption key is configured.
    pub fn vault(&self) -> Option<&TokenVault> {
        self.inner.vault.as_ref()
    }

    /// The route service: `GET {start path}` and `GET {callback path}`.
    pub fn routes(&self) -> super::OAuthRoutes {
        super::OAuthRoutes::new(self.clone())
    }

    fn flow_cookie_name(nonce: &str) -> String {
        let short: String = nonce.chars().take(16).collect();
        format!("mcp_oauth_{short}")
    }

    fn flow_cookie_value(&self, nonce: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.inner.signer.first_secret())
            .expect("HMAC takes keys of any length");
        mac.update(b"browser-binding\0");
        mac.update(nonce.as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    fn flow_cookie_matches(&self, headers: &HeaderMap, nonce: &str) -> bool {
        let name = Self::flow_cookie_name(nonce);
        let crate::credentials::Presented::Value(got) = crate::credentials::cookie(headers, &name)
        else {
            return false;
        };
        // Every configured secret may have made the cookie (rotation).
        self.inner.signer.all_secrets().any(|secret| {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
                .expect("HMAC takes keys of any length");
            mac.update(b"browser-binding\0");
            mac.update(nonce.as_bytes());
            let want = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
            bool::from(want.as_bytes().ct_eq(got.as_bytes()))
        })
    }

    fn clear_flow_cookie(&self, nonce: &str) -> HeaderValue {
        cookie_header_at(
            &Self::flow_cookie_name(nonce),
            "",
            0,
            self.inner.flow_cookie_secure,
            &self.inner.callback_path,
        )
    }

    /// Checks a post-login target against the allowlist; `None` means the default.
    fn target(&self, requested: Option<&str>) -> Result<String, OAuthError> {
        match requested {
            None | Some("") => Ok(self.inner.targets[0].clone()),
            Some(t) => self
                .inner
                .targets
                .iter()
                .find(|allowed| allowed.as_str() == t)
                .cloned()
                .ok_or(OAuthError::RedirectNotAllowed),
        }
    }

    /// Starts a flow with `provider`: signs a state, stores the flow (PKCE verifier, OIDC
    /// nonce) for the state TTL with `insert_if_absent`, and returns the provider URL.
    ///
    /// # Errors
    ///
    /// [`OAuthError::UnknownProvider`] (unknown provider or upstream),
    /// [`OAuthError::LoginRequired`] (an upstream flow without user),
    /// [`OAuthError::RedirectNotAllowed`], or [`OAuthError::Store`].
    pub async fn start(
        &self,
        provider: &str,
        options: StartOptions,
    ) -> Result<AuthorizationRedirect, OAuthError> {
        let p = self
            .inner
            .providers
            .get(provider)
            .ok_or(OAuthError::UnknownProvider)?;
        if let Some(upstream) = &options.upstream {
            match self.inner.upstreams.get(upstream) {
                Some(owner) if owner == provider => {}
                _ => return Err(OAuthError::UnknownProvider),
            }
            if options.user.is_none() {
                return Err(OAuthError::LoginRequired);
            }
        }
        let target = self.target(options.redirect_to.as_deref())?;
        let nonce = URL_SAFE_NO_PAD.encode(super::random_bytes::<16>());
        let oidc_nonce = URL_SAFE_NO_PAD.encode(super::random_bytes::<16>());
        let verifier = PkceVerifier::generate();
        let payload = StatePayload {
            v: 1,
            p: provider.to_owned(),
            g: options.upstream.clone(),
            u: options.user.clone(),
            r: target.clone(),
            t: now_ms(),
            n: nonce.clone(),
        };
        let state = self.inner.signer.sign(&payload);
        let record = FlowRecord {
            h: sha256_b64(&state),
            p: provider.to_owned(),
            g: options.upstream,
            u: options.user,
            r: target,
            v: verifier.secret().to_owned(),
            o: oidc_nonce.clone(),
        };
        let value = serde_json::to_vec(&record).unwrap_or_default();
        let stored = self
            .inner
            .store
            .insert_if_absent(&self.key("state", &nonce), value, self.inner.state_ttl)
            .await?;
        if !stored {
            // 128 random bits collided: refuse rather than overwrite someone's flow.
            return Err(OAuthError::Provider("state nonce collision, retry".into()));
        }
        tracing::debug!(provider, "Stored OAuth state");
        // `generate` makes 86 characters: within PKCE's 43..=128, as `from_code_verifier_sha256` needs.
        let challenge = PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(
            verifier.secret().to_owned(),
        ));
        let mut request = p
            .client
            .authorize_url(|| CsrfToken::new(state))
            .add_scopes(p.scopes.iter().cloned().map(Scope::new))
            .set_pkce_challenge(challenge);
        if p.is_oidc() {
            request = request.add_extra_param("nonce", oidc_nonce);
        }
        for (k, v) in &p.extra_params {
            if !RESERVED_PARAMS.contains(&k.as_str()) {
                request = request.add_extra_param(k.clone(), v.clone());
            }
        }
        let (url, _) = request.url();
        let cookie = self.inner.bind_browser.then(|| {
            // Sent back only to the callback route.
            cookie_header_at(
                &Self::flow_cookie_name(&nonce),
                &self.flow_cookie_value(&nonce),
                self.inner.state_ttl.as_secs().max(1),
                self.inner.flow_cookie_secure,
                &self.inner.callback_path,
            )
        });
        Ok(AuthorizationRedirect {
            url: url.into(),
            cookie,
        })
    }

    /// Completes a flow from the provider's redirect (`?code=&state=` or `?error=&state=`).
    /// The request's cookies (browser binding) and identity (user binding) are checked too.
    ///
    /// # Errors
    ///
    /// Every [`StateError`] (each also logged), a provider error, or a store error.
    pub async fn callback(&self, request: &Parts) -> Result<CallbackOutcome, OAuthError> {
        self.callback_expecting(request, &Expected::default()).await
    }

    /// [`callback`](Self::callback), also requiring the flow to match `expected` (for
    /// example the upstream a gateway-specific callback serves).
    ///
    /// # Errors
    ///
    /// As [`callback`](Self::callback).
    pub async fn callback_expecting(
        &self,
        request: &Parts,
        expected: &Expected,
    ) -> Result<CallbackOutcome, OAuthError> {
        let result = self.complete(request, expected).await;
        if let Err(OAuthError::State(e)) = &result {
            log_state_error(*e);
        }
        result
    }

    async fn complete(
        &self,
        request: &Parts,
        expected: &Expected,
    ) -> Result<CallbackOutcome, OAuthError> {
        let query = request.uri.query().unwrap_or("");
        let [code, state, error, iss]: [Option<String>; 4] =
            query_params(query, &["code", "state", "error", "iss"])?
                .try_into()
                .map_err(|_| OAuthError::InvalidRequest("bad parameters"))?;
        let Some(state) = state else {
            return Err(match error {
                Some(code) => OAuthError::ProviderDenied {
                    code: sanitize_code(&code),
                },
                None => StateError::Missing.into(),
            });
        };
        let payload = self.inner.signer.verify(&state)?;
        let now = now_ms();
        let ttl_ms = u64::try_from(self.inner.state_ttl.as_millis()).unwrap_or(u64::MAX);
        if now > payload.t.saturating_add(ttl_ms) {
            return Err(StateError::Expired.into());
        }
        if payload.t > now.saturating_add(CLOCK_SKEW_MS) {
            tracing::warn!("OAuth state issued in the future: are the instances' clocks in sync?");
            return Err(StateError::Expired.into());
        }
        let provider = self
            .inner
            .providers
            .get(&payload.p)
            .ok_or(OAuthError::UnknownProvider)?;
        if let Some(iss) = &iss {
            // RFC 9207: the provider names itself; a mix-up attack shows another issuer.
            if !provider.issuer_matches(iss) {
                return Err(StateError::Mismatch("provider").into());
            }
        }
        if let Some(want) = &expected.upstream {
            if payload.g.as_ref() != Some(want) {
                return Err(StateError::Mismatch("gateway").into());
            }
        }
        if let Some(want) = &expected.user {
            if payload.u.as_ref() != Some(want) {
                return Err(StateError::Mismatch("user").into());
            }
        }
        if let (Some(bound), Some(current)) = (&payload.u, request_user(request)) {
            if *bound != current {
                return Err(StateError::Mismatch("user").into());
            }
        }
        if self.inner.bind_browser && !self.flow_cookie_matches(&request.headers, &payload.n) {
            return Err(StateError::Mismatch("browser").into());
        }
        // Claim the state first: of racing callbacks exactly one inserts the marker.
        let used_key = self.key("used", &payload.n);
        let marker_ttl = self.inner.state_ttl + Duration::from_millis(CLOCK_SKEW_MS);
        if !self
            .inner
            .store
            .insert_if_absent(&used_key, vec![1], marker_ttl)
            .await?
        {
            return Err(StateError::AlreadyUsed.into());
        }
        let taken = match self.inner.store.take(&self.key("state", &payload.n)).await {
            Ok(taken) => taken,
            Err(e) => {
                // The state was not consumed: release the claim so a retry can succeed.
                let _ = self.inner.store.delete(&used_key).await;
                return Err(e.into());
            }
        };
        let Some(raw) = taken else {
            // Not ours to keep claimed: a retry of an unknown state stays "unknown".
            let _ = self.inner.store.delete(&used_key).await;
            return Err(StateError::Unknown.into());
        };
        let record: FlowRecord =
            serde_json::from_slice(&raw).map_err(|_| OAuthError::State(StateError::Unknown))?;
        if !bool::from(record.h.as_bytes().ct_eq(sha256_b64(&state).as_bytes())) {
            return Err(StateError::Unknown.into());
        }
        if record.g != payload.g {
            return Err(StateError::Mismatch("gateway").into());
        }
        if record.p != payload.p {
            return Err(StateError::Mismatch("provider").into());
        }
        if record.u != payload.u {
            return Err(StateError::Mismatch("user").into());
        }
        tracing::debug!(provider = %payload.p, "Validated OAuth state");
        if let Some(code) = error {
            let code = sanitize_code(&code);
            tracing::info!(provider = %payload.p, error = %code, "the provider refused the sign-in");
            return Err(OAuthError::ProviderDenied { code });
        }
        let code = code
            .filter(|c| !c.is_empty())
            .ok_or(OAuthError::InvalidRequest(
                "The callback has no authorization code",
            ))?;
        if code.len() > MAX_CODE {
            return Err(OAuthError::InvalidRequest(
                "The authorization code is too long",
            ));
        }
        let verifier = PkceVerifier::new(record.v).ok_or(OAuthError::State(StateError::Unknown))?;
        let tokens: TokenResponse = provider
            .client
            .exchange_code(AuthorizationCode::new(code))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.secret().to_owned()))
            .request_async(&self.inner.http)
            .await
            .map_err(token_error)?;
        let user = provider.user(&self.inner.http, &tokens, &record.o).await?;
        match (payload.g, payload.u) {
            (Some(upstream), Some(owner)) => {
                let vault = self
                    .inner
                    .vault
                    .as_ref()
                    .ok_or(OAuthError::UnknownProvider)?;
                vault
                    .save(&upstream, &owner, &upstream_token(&tokens))
                    .await?;
                tracing::info!(provider = %payload.p, %upstream, "Completed OAuth flow for upstream");
                Ok(CallbackOutcome::Upstream {
                    upstream,
                    user: owner,
                    provider_user: user,
                    redirect_to: payload.r,
                })
            }
            _ => {
                if let Some(policy) = &self.inner.policy {
                    let github = provider.github_api().map(|base| GithubApi {
                        http: &self.inner.http,
                        base,
                        token: tokens.access_token().secret(),
                    });
                    if !policy.allows(&user, github).await {
                        // The id is the operator's to see; the answer names nothing.
                        tracing::warn!(provider = %payload.p, user_id = %user.user_id, "OAuth login refused by the login policy");
                        return Err(OAuthError::AccessDenied);
                    }
                }
                let session = match &self.inner.session {
                    Some(config) => Some(SessionToken(config.issue(&user).map_err(|_| {
                        OAuthError::Provider("the session token could not be signed".into())
                    })?)),
                    None => None,
                };
                tracing::info!(provider = %payload.p, "Completed OAuth login");
                Ok(CallbackOutcome::Login {
                    user,
                    session,
                    redirect_to: payload.r,
                })
            }
        }
    }

    /// The `302` (with cookies) that ends a successful callback.
    pub(crate) fn success_response(
        &self,
        request: &Parts,
        outcome: &CallbackOutcome,
    ) -> Response<Full<Bytes>> {
        let target = match outcome {
            CallbackOutcome::Login { redirect_to, .. }
            | CallbackOutcome::Upstream { redirect_to, .. } => redirect_to.as_str(),
        };
        let mut res = no_store_redirect(StatusCode::FOUND, target);
        let h = res.headers_mut();
        if let (
            CallbackOutcome::Login {
                session: Some(token),
                ..
            },
            Some(config),
        ) = (outcome, &self.inner.session)
        {
            h.append(SET_COOKIE, config.set_cookie(token.as_str()));
        }
        if self.inner.bind_browser {
            if let Some(nonce) = request
                .uri
                .query()
                .and_then(|q| query_params(q, &["state"]).ok())
                .and_then(|mut v| v.pop().flatten())
                .and_then(|s| self.inner.signer.verify(&s).ok())
                .map(|p| p.n)
            {
                h.append(SET_COOKIE, self.clear_flow_cookie(&nonce));
            }
        }
        res
    }

    /// A valid access token for `user` at `upstream` (`user` is the namespaced user id the
    /// flow was started by: the session's `sub`, [`UserInfo::user_id`]), refreshed first when it expires within
    /// the refresh window. Refreshes are single-flight: one per (upstream, user) in this
    /// process (others wait for it), and one across instances (a short lock in the store;
    /// the others wait for the refreshed token). A refresh token refused with
    /// `invalid_grant` deletes the stored token and gives [`UpstreamError::Revoked`].
    ///
    /// # Errors
    ///
    /// [`UpstreamError`]: not connected, revoked, expired without refresh token, provider
    /// or store failure.
    pub async fn upstream_token(
        &self,
        upstream: &str,
        user: &str,
    ) -> Result<UpstreamToken, UpstreamError> {
        let provider_name = self
            .inner
            .upstreams
            .get(upstream)
            .ok_or(UpstreamError::UnknownUpstream)?;
        let provider = self
            .inner
            .providers
            .get(provider_name)
            .ok_or(UpstreamError::UnknownUpstream)?;
        let vault = self
            .inner
            .vault
            .as_ref()
            .ok_or(UpstreamError::UnknownUpstream)?;
        let skew = self.inner.refresh_skew;
        let not_connected = || UpstreamError::NotConnected {
            upstream: upstream.to_owned(),
        };
        let token = vault
            .load(upstream, user)
            .await?
            .ok_or_else(not_connected)?;
        if !token.expires_within(skew) {
            return Ok(token);
        }
        // One refresh per (upstream, user) in this process.
        let gate = self.gate(&vault.lock_key(upstream, user));
        let _local = gate.lock().await;
        let token = vault
            .load(upstream, user)
            .await?
            .ok_or_else(not_connected)?;
        if !token.expires_within(skew) {
            return Ok(token);
        }
        if !token.has_refresh_token() {
            if token.is_expired() {
                return Err(UpstreamError::Expired {
                    upstream: upstream.to_owned(),
                });
            }
            return Ok(token);
        }
        // And one across instances.
        let lock = vault.lock_key(upstream, user);
        let store = vault.store();
        let deadline = tokio::time::Instant::now() + REFRESH_WAIT;
        let token = loop {
            if store
                .insert_if_absent(&lock, vec![1], REFRESH_LOCK_TTL)
                .await?
            {
                // Someone may have refreshed between our load and the lock.
                match vault.load(upstream, user).await {
                    Ok(Some(t)) if !t.expires_within(skew) => {
                        let _ = store.delete(&lock).await;
                        return Ok(t);
                    }
                    Ok(Some(t)) => break t,
                    Ok(None) => {
                        let _ = store.delete(&lock).await;
                        return Err(not_connected());
                    }
                    Err(e) => {
                        let _ = store.delete(&lock).await;
                        return Err(e.into());
                    }
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(UpstreamError::RefreshInProgress);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            match vault.load(upstream, user).await? {
                Some(t) if !t.expires_within(skew) => return Ok(t),
                Some(_) => {}
                None => return Err(not_connected()),
            }
        };
        let result = self.refresh(provider, vault, upstream, user, &token).await;
        let _ = store.delete(&lock).await;
        result
    }

    async fn refresh(
        &self,
        provider: &ResolvedProvider,
        vault: &TokenVault,
        upstream: &str,
        user: &str,
        old: &UpstreamToken,
    ) -> Result<UpstreamToken, UpstreamError> {
        let Some(refresh) = old.refresh_token_secret() else {
            return Err(UpstreamError::Expired {
                upstream: upstream.to_owned(),
            });
        };
        let refresh = RefreshToken::new(refresh.to_owned());
        let response = provider
            .client
            .exchange_refresh_token(&refresh)
            .request_async(&self.inner.http)
            .await;
        match response {
            Ok(tokens) => {
                let mut fresh = upstream_token(&tokens);
                if !fresh.has_refresh_token() {
                    if let Some(r) = old.refresh_token_secret() {
                        // Providers that do not rotate refresh tokens omit them.
                        fresh = fresh.refresh_token(r);
                    }
                }
                vault.save(upstream, user, &fresh).await?;
                tracing::debug!(upstream, "refreshed an upstream token");
                Ok(fresh)
            }
            Err(e) => match token_error(e) {
                OAuthError::InvalidGrant => {
                    tracing::warn!(
                        upstream,
                        "the upstream refresh token was revoked or expired (invalid_grant); the user must authorize again"
                    );
                    let _ = vault.remove(upstream, user).await;
                    Err(UpstreamError::Revoked {
                        upstream: upstream.to_owned(),
                    })
                }
                OAuthError::ProviderTimeout => Err(UpstreamError::ProviderTimeout),
                other => Err(UpstreamError::Provider(other.to_string().into())),
            },
        }
    }

    fn gate(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self
            .inner
            .inflight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(gate) = map.get(key).and_then(Weak::upgrade) {
            return gate;
        }
        map.retain(|_, weak| weak.strong_count() > 0);
        let gate = Arc::new(tokio::sync::Mutex::new(()));
        map.insert(key.to_owned(), Arc::downgrade(&gate));
        gate
    }
}

fn upstream_token(tokens: &TokenResponse) -> UpstreamToken {
    UpstreamToken::from_parts(
        tokens.access_token().secret().clone(),
        tokens.refresh_token().map(|r| r.secret().clone()),
        tokens.expires_in(),
        tokens
            .scopes()
            .map(|s| s.iter().map(|s| s.to_string()).collect())
            .unwrap_or_default(),
    )
}

fn log_state_error(e: StateError) {
    match e {
        StateError::InvalidSignature => {
            tracing::warn!(
                reason = e.reason(),
                "Invalid state signature - possible CSRF attack"
            );
        }
        StateError::Expired => tracing::warn!(reason = e.reason(), "State has expired"),
        StateError::AlreadyUsed => {
            tracing::warn!(
                reason = e.reason(),
                "State was already used - possible replay attack"
            );
        }
        StateError::Mismatch("gateway") => {
            tracing::warn!(reason = e.reason(), "State parameter gateway mismatch");
        }
        StateError::Mismatch(_) => tracing::warn!(reason = e.reason(), "{e}"),
        StateError::Unknown => {
            tracing::warn!(reason = e.reason(), "State not found in the state store")
        }
        StateError::Missing => tracing::info!(reason = e.reason(), "Missing state parameter"),
    }
}
