//! [`OAuthClient`]: the configured flows (start, callback, upstream tokens; the browser
//! binding of a flow in `binding`).

/// The `upstream` and `user` setters of [`StartOptions`] and [`Expected`]: the two
/// describe the same flow owner, one when the flow starts, one when it must match.
macro_rules! flow_owner_setters {
    (upstream: $upstream_doc:literal, user: $user_doc:literal) => {
        #[doc = $upstream_doc]
        pub fn upstream(mut self, id: impl Into<String>) -> Self {
            self.upstream = Some(id.into());
            self
        }

        #[doc = $user_doc]
        pub fn user(mut self, user: impl Into<String>) -> Self {
            self.user = Some(user.into());
            self
        }
    };
}

mod binding;
mod builder;
mod callback;
mod refresh;
mod start;

pub use callback::{CallbackOutcome, Expected, SessionToken};
pub(crate) use start::no_store_redirect;
pub use start::{AuthorizationRedirect, StartOptions};

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, LOCATION, SET_COOKIE};
use http::request::Parts;
use http::{Response, StatusCode};
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
use super::session::SessionConfig;
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
    /// Logins save the provider's tokens in the vault (upstream = provider name).
    keep_login_tokens: bool,
    http: HttpClient,
    prefix: String,
    bind_browser: bool,
    flow_cookie_secure: bool,
    refresh_skew: Duration,
    inflight: crate::keyed_locks::KeyedLocks,
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
    keep_login_tokens: bool,
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
            keep_login_tokens: false,
            http_timeout: DEFAULT_HTTP_TIMEOUT,
            start_path: DEFAULT_START_PATH.to_owned(),
            logout_path: DEFAULT_LOGOUT_PATH.to_owned(),
            prefix: "oauth:".to_owned(),
            bind_browser: true,
            refresh_skew: DEFAULT_REFRESH_SKEW,
        }
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

    /// Whether a provider named `name` is configured.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use tower_mcp_auth::oauth::{OAuthClient, Provider};
    ///
    /// let oauth = OAuthClient::builder("https://mcp.example.com/auth/oauth/callback")
    ///     .provider(Provider::github("client-id", "client-secret"))
    ///     .state_secret([7u8; 32])
    ///     .allow_any_account()
    ///     .build()
    ///     .await
    ///     .unwrap();
    /// assert!(oauth.has_provider("github"));
    /// assert!(!oauth.has_provider("google"));
    /// # });
    /// ```
    pub fn has_provider(&self, name: &str) -> bool {
        self.inner.providers.contains_key(name)
    }

    /// The upstream token vault, if an encryption key is configured.
    pub fn vault(&self) -> Option<&TokenVault> {
        self.inner.vault.as_ref()
    }

    /// The route service: `GET {start path}` and `GET {callback path}`.
    pub fn routes(&self) -> super::OAuthRoutes {
        super::OAuthRoutes::new(self.clone())
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
