//! OAuth client side (feature `oauth-client`): log users in with GitHub, Google, Microsoft or
//! any OpenID Connect provider, and hold per-user tokens for upstream MCP servers, without
//! the failure modes MCP gateways are known for.
//!
//! | gateway symptom | what this module does |
//! |---|---|
//! | "Invalid or expired state parameter" after a restart or on another worker | the flow lives in the shared [`StateStore`](crate::store::StateStore) (Redis, PostgreSQL), not in process memory |
//! | a refreshed callback page or a double callback | single-use state: atomic claim + `take`, exactly one success across instances, then `State was already used - possible replay attack` |
//! | one vague error for every state problem | a distinct [`StateError`] and log line each: bad signature, expired, replayed, gateway mismatch, unknown |
//! | 500s and redirect loops on provider errors | JSON (or a small HTML page) with a 4xx / 502 / 504 status, never a redirect on failure |
//! | PKCE verifier lost between workers | kept with the state in the shared store; `S256` only |
//! | open redirects after login | only configured targets; exact redirect URI |
//!
//! The pieces:
//!
//! - [`OAuthClient`]: providers, state, PKCE, sessions and upstream tokens; built once.
//! - [`LoginPolicy`]: who may log in (users, verified e-mails and domains, GitHub orgs,
//!   Microsoft tenants, claims, your own async check), checked before a session is issued.
//!   A client that issues sessions must have one.
//! - [`UserInfo::user_id`]: user ids namespaced by provider and issuer (`github:583231`,
//!   `oidc:{issuer}:{sub}`), the session's `sub` and the vault's owner key.
//! - [`OAuthRoutes`]: `GET /auth/oauth/{provider}/start` and `GET /auth/oauth/callback` as
//!   a Tower service to mount in axum (or any Tower server).
//! - [`Provider`]: GitHub, Google, Microsoft (tenant), generic OIDC (discovery), base URLs
//!   overridable.
//! - [`StateSigner`]: HMAC-SHA256 `state` with secret rotation.
//! - [`SessionConfig`]: the session JWT and its `HttpOnly; Secure; SameSite=Lax` cookie,
//!   which [`BearerLayer::session_cookie`](crate::bearer::BearerLayer::session_cookie) accepts.
//! - [`TokenVault`]: upstream tokens, AES-256-GCM encrypted at rest, refreshed single-flight
//!   by [`OAuthClient::upstream_token`].
//!
//! ```no_run
//! use axum::{routing::post, Router};
//! use tower_mcp_auth::oauth::{LoginPolicy, OAuthClient, Provider, SessionConfig};
//! use tower_mcp_auth::McpAuth;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let session = SessionConfig::new(std::env::var("SESSION_SECRET")?)?;
//! let oauth = OAuthClient::builder("https://mcp.example.com/auth/oauth/callback")
//!     .provider(Provider::github(&std::env::var("GITHUB_CLIENT_ID")?, &std::env::var("GITHUB_CLIENT_SECRET")?))
//!     .state_secret(std::env::var("STATE_SECRET")?)
//!     .store_shared(tower_mcp_auth::store::connect("redis://127.0.0.1:6379").await?)
//!     .session(session.clone())
//!     .login_policy(LoginPolicy::new().allow_github_orgs(["my-org"]))
//!     .build()
//!     .await?;
//!
//! let auth = McpAuth::builder()
//!     .bearer(session.verifier())
//!     .session_cookie(session.cookie_name())
//!     .endpoint("/auth/oauth/{*rest}", tower_mcp_auth::EndpointPolicy::open())
//!     .build()?;
//! let app: Router = Router::new()
//!     .route("/mcp", post(|| async { "ok" }))
//!     .route_service("/auth/oauth/{provider}/start", oauth.routes())
//!     .route_service("/auth/oauth/callback", oauth.routes())
//!     .layer(auth);
//! # let _ = app; Ok(()) }
//! ```

mod authorize;
mod client;
mod error;
mod http;
mod pkce;
mod providers;
mod routes;
#[cfg(feature = "oauth-server")]
#[cfg_attr(docsrs, doc(cfg(feature = "oauth-server")))]
pub mod server;
mod session;
mod state;
mod upstream;

pub use authorize::LoginPolicy;
pub use client::{
    AuthorizationRedirect, CallbackOutcome, Expected, OAuthClient, OAuthClientBuilder,
    SessionToken, StartOptions, DEFAULT_HTTP_TIMEOUT, DEFAULT_LOGOUT_PATH, DEFAULT_REFRESH_SKEW,
    DEFAULT_START_PATH, DEFAULT_STATE_TTL,
};
pub use error::{OAuthConfigError, OAuthError};
pub use pkce::{PkceVerifier, MAX_VERIFIER_LEN, MIN_VERIFIER_LEN, PKCE_METHOD};
pub use providers::{Provider, UserInfo};
pub use routes::OAuthRoutes;
pub use session::{
    SessionConfig, DEFAULT_SESSION_COOKIE, DEFAULT_SESSION_ISSUER, DEFAULT_SESSION_TTL,
};
pub use state::{StateError, StateSigner, MIN_SECRET_LEN};
pub use upstream::{EncryptionKey, TokenVault, UpstreamError, UpstreamToken};

/// The strings a builder was given (`scopes(["a", "b"])` or owned `String`s), owned.
pub(crate) fn owned_strings<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> Vec<String> {
    items.into_iter().map(Into::into).collect()
}

/// `N` bytes from the operating system's CSPRNG.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The OS generator failing is not something a server can continue through.
    getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
    bytes
}

// Internals for `crate::__fuzz` (only `cargo fuzz` builds, `--cfg fuzzing`).
#[cfg(fuzzing)]
pub(crate) use self::{client::query_params, state::StatePayload, state::MAX_STATE_LEN};
