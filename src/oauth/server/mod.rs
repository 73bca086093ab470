//! An embedded OAuth 2.1 authorization server for MCP clients (feature `oauth-server`): MCP
//! clients discover it (RFC 9728, RFC 8414), register (RFC 7591), run authorization code +
//! PKCE `S256`; the person logs in at the upstream provider through an [`OAuthClient`]
//! (GitHub, Google, Microsoft, OIDC), approves the client on a consent page, and the client
//! gets this server's own short-lived JWT access tokens, which
//! [`BearerLayer`](crate::bearer::BearerLayer) checks locally with [`AuthServer::verifier`], and
//! rotating opaque refresh tokens kept only as hashes. Everything lives in the
//! [`StateStore`], so instances behind a load balancer share the flows.
//!
//! Open registration and every authorization request store a small record (clients for
//! [`DEFAULT_CLIENT_TTL`], pending logins for [`LOGIN_TTL`]): put a
//! [`RateLimitLayer`](crate::rate_limit::RateLimitLayer) keyed by client IP in front of
//! `/oauth/register` and `/oauth/authorize` to bound what one client can make it store.
//!
//! ```no_run
//! use axum::{routing::post, Router};
//! use tower_mcp_auth::oauth::server::AuthServer;
//! use tower_mcp_auth::oauth::{LoginPolicy, OAuthClient, Provider};
//! use tower_mcp_auth::bearer::BearerLayer;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let base = "https://mcp.example.com";
//! let oauth = OAuthClient::builder(format!("{base}/auth/oauth/callback"))
//!     .provider(Provider::github("client-id", "client-secret"))
//!     .state_secret(std::env::var("STATE_SECRET")?)
//!     .allow_any_account()
//!     .build()
//!     .await?;
//! let server = AuthServer::builder(base, oauth, "github").scopes(["mcp:tools"]).build()?;
//! let app: Router = Router::new()
//!     .route("/mcp", post(|| async { "ok" }).layer(BearerLayer::new(server.verifier())))
//!     .fallback_service(server.clone());
//! # let _ = app; Ok(()) }
//! ```

mod authorize;
mod cimd;
mod consent;
mod errors;
mod keys;
mod metadata;
mod records;
mod registration;
mod service;
mod token;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::oauth::OAuthClient;
use crate::store::StateStore;
use crate::JwtVerifier;

pub use errors::ServerError;
pub use keys::{SigningKey, SigningKeyError};
pub use registration::{Client, Registration};

use records::Records;

/// Default access token lifetime.
pub const DEFAULT_ACCESS_TOKEN_TTL: Duration = Duration::from_secs(3600);
/// Default refresh token lifetime (30 days).
pub const DEFAULT_REFRESH_TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// How long an authorization code is valid (the MCP and OAuth 2.1 guidance: short).
pub const CODE_TTL: Duration = Duration::from_secs(60);
/// How long a person has to log in and decide.
pub const LOGIN_TTL: Duration = Duration::from_secs(600);
/// How long a dynamically registered client is kept.
pub const DEFAULT_CLIENT_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// Decides whether a logged-in user (namespaced id) may give a client (id) a token.
pub type AuthorizeHook = Arc<dyn Fn(&crate::oauth::UserInfo, &str) -> bool + Send + Sync>;

/// Why an [`AuthServer`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthServerConfigError {
    /// The issuer is not an absolute https URL (http only on loopback) without query.
    #[error("invalid issuer: {0}")]
    Issuer(&'static str),
    /// No scope to grant.
    #[error("at least one MCP scope must be configured")]
    NoScopes,
    /// A pre-registered client is invalid.
    #[error("invalid client {0}: {1}")]
    Client(String, &'static str),
    /// The verifier could not be built from the keys.
    #[error("verifier: {0}")]
    Verifier(String),
    /// [`metadata_document_roots`](AuthServerBuilder::metadata_document_roots) holds no
    /// valid PEM certificate.
    #[error("metadata document roots: {0}")]
    Certificates(&'static str),
    /// The login provider is not one of the [`OAuthClient`]'s providers.
    #[error("the OAuth client has no provider named {0:?}")]
    UnknownProvider(String),
}

/// Builds an [`AuthServer`].
#[must_use]
pub struct AuthServerBuilder {
    issuer: String,
    resource_path: String,
    oauth: OAuthClient,
    provider: String,
    scopes: Vec<String>,
    keys: Vec<SigningKey>,
    store: Option<Arc<dyn StateStore>>,
    access_ttl: Duration,
    refresh_ttl: Duration,
    registration: Registration,
    clients: Vec<Client>,
    hook: Option<AuthorizeHook>,
    prefix: String,
    cimd: bool,
    cimd_allow_loopback: bool,
    cimd_roots: Vec<u8>,
}

impl AuthServer {
    /// A server whose issuer is `issuer` (`https://mcp.example.com`), logging people in with
    /// the provider named `provider` of `oauth`. The protected resource is `{issuer}/mcp`
    /// unless [`resource_path`](AuthServerBuilder::resource_path) says otherwise.
    pub fn builder(
        issuer: impl Into<String>,
        oauth: OAuthClient,
        provider: impl Into<String>,
    ) -> AuthServerBuilder {
        AuthServerBuilder {
            issuer: issuer.into().trim_end_matches('/').to_owned(),
            resource_path: "/mcp".to_owned(),
            oauth,
            provider: provider.into(),
            scopes: vec!["mcp:tools".to_owned()],
            keys: Vec::new(),
            store: None,
            access_ttl: DEFAULT_ACCESS_TOKEN_TTL,
            refresh_ttl: DEFAULT_REFRESH_TOKEN_TTL,
            registration: Registration::Open,
            clients: Vec::new(),
            hook: None,
            prefix: "mcp-as:".to_owned(),
            cimd: true,
            cimd_allow_loopback: false,
            cimd_roots: Vec::new(),
        }
    }
}

impl AuthServerBuilder {
    /// The path of the MCP endpoint (the protected resource); default `/mcp`.
    pub fn resource_path(mut self, path: impl Into<String>) -> Self {
        self.resource_path = path.into();
        self
    }

    /// The scopes granted to MCP clients (advertised in both metadata documents); default
    /// `mcp:tools`.
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// The key signing new access tokens (default: a generated ES256 key).
    pub fn signing_key(mut self, key: SigningKey) -> Self {
        self.keys.insert(0, key);
        self
    }

    /// A retired key: published and accepted, never used to sign, so tokens it signed stay
    /// valid until they expire.
    pub fn previous_key(mut self, key: SigningKey) -> Self {
        self.keys.push(key);
        self
    }

    /// The store (default: the memory store; share one across instances).
    pub fn store_shared(mut self, store: Arc<dyn StateStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Access token lifetime.
    pub fn access_token_ttl(mut self, ttl: Duration) -> Self {
        self.access_ttl = ttl;
        self
    }

    /// Refresh token lifetime (of each token of a family).
    pub fn refresh_token_ttl(mut self, ttl: Duration) -> Self {
        self.refresh_ttl = ttl;
        self
    }

    /// Dynamic registration: open (default), off, or gated by an initial access token.
    pub fn registration(mut self, registration: Registration) -> Self {
        self.registration = registration;
        self
    }

    /// A client registered in code.
    pub fn client(mut self, client: Client) -> Self {
        self.clients.push(client);
        self
    }

    /// Who may get a token: called after the upstream login with the user and the client
    /// id; `false` refuses with `access_denied`.
    pub fn authorize_user(
        mut self,
        hook: impl Fn(&crate::oauth::UserInfo, &str) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.hook = Some(Arc::new(hook));
        self
    }

    /// Whether a `client_id` that is an https URL is accepted as a Client ID Metadata
    /// Document (default `true`).
    pub fn client_id_metadata_documents(mut self, enabled: bool) -> Self {
        self.cimd = enabled;
        self
    }

    /// Also accept `http://127.0.0.1:<port>/…` (and `localhost`) metadata document URLs and
    /// fetch them from loopback addresses: local testing only (default `false`: https, and
    /// public addresses only).
    pub fn allow_loopback_metadata_documents(mut self, allow: bool) -> Self {
        self.cimd_allow_loopback = allow;
        self
    }

    /// Also trusts the certificate authorities in `pem` (one or more PEM certificates) when
    /// fetching Client ID Metadata Documents, besides the platform's roots: for clients whose
    /// documents are served under a private CA (and for tests with a self-signed
    /// certificate). Call again to add more.
    ///
    /// # Errors
    ///
    /// [`build`](Self::build) fails with [`AuthServerConfigError::Certificates`] when `pem`
    /// holds no valid certificate.
    pub fn metadata_document_roots(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.cimd_roots.extend_from_slice(pem.as_ref());
        self.cimd_roots.push(b'\n');
        self
    }

    /// The store key prefix; default `mcp-as:`.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Checks the configuration.
    ///
    /// # Errors
    ///
    /// See [`AuthServerConfigError`].
    pub fn build(mut self) -> Result<AuthServer, AuthServerConfigError> {
        let url = oauth2::url::Url::parse(&self.issuer)
            .map_err(|_| AuthServerConfigError::Issuer("not an absolute URL"))?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err(AuthServerConfigError::Issuer("has a query or fragment"));
        }
        // The endpoints and metadata are served at the root of the issuer's origin.
        if url.path() != "/" {
            return Err(AuthServerConfigError::Issuer(
                "must be an origin without path (https://mcp.example.com)",
            ));
        }
        if url.scheme() != "https" && !crate::oauth::providers::is_loopback_http(&self.issuer) {
            return Err(AuthServerConfigError::Issuer(
                "must be https (http only on loopback)",
            ));
        }
        if !self.oauth.has_provider(&self.provider) {
            return Err(AuthServerConfigError::UnknownProvider(self.provider));
        }
        if self.scopes.is_empty() {
            return Err(AuthServerConfigError::NoScopes);
        }
        if !self.resource_path.starts_with('/') {
            self.resource_path.insert(0, '/');
        }
        if self.keys.is_empty() {
            self.keys.push(SigningKey::generate_es256());
        }
        let clients = self
            .clients
            .into_iter()
            .map(|c| {
                let id = c.id.clone();
                c.into_record()
                    .map_err(|reason| AuthServerConfigError::Client(id, reason))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let resource = format!("{}{}", self.issuer, self.resource_path);
        let verifier = self
            .keys
            .iter()
            .fold(JwtVerifier::builder(), |b, k| b.key(k.verifier_key()))
            .issuer(self.issuer.clone())
            .audience(resource.clone())
            .build()
            .map_err(|e| AuthServerConfigError::Verifier(e.to_string()))?;
        let cimd_roots = if self.cimd_roots.is_empty() {
            Vec::new()
        } else {
            match reqwest::Certificate::from_pem_bundle(&self.cimd_roots) {
                Ok(certs) if !certs.is_empty() => certs,
                _ => {
                    return Err(AuthServerConfigError::Certificates(
                        "no valid PEM certificate",
                    ))
                }
            }
        };
        let store = self
            .store
            .unwrap_or_else(|| Arc::new(crate::store::MemoryStore::new()));
        Ok(AuthServer {
            inner: Arc::new(Inner {
                issuer: self.issuer,
                resource,
                resource_path: self.resource_path,
                oauth: self.oauth,
                provider: self.provider,
                scopes: self.scopes,
                keys: self.keys,
                verifier,
                records: Records {
                    store,
                    prefix: self.prefix,
                },
                access_ttl: self.access_ttl,
                refresh_ttl: self.refresh_ttl,
                registration: self.registration,
                clients,
                hook: self.hook,
                cimd: self.cimd,
                cimd_allow_loopback: self.cimd_allow_loopback,
                cimd_roots,
            }),
        })
    }
}

/// The authorization server: a cloneable Tower service answering its own routes (see
/// [`AuthServer::paths`]) and a JSON 404 elsewhere.
#[derive(Clone)]
pub struct AuthServer {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) issuer: String,
    pub(crate) resource: String,
    pub(crate) resource_path: String,
    pub(crate) oauth: OAuthClient,
    pub(crate) provider: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) keys: Vec<SigningKey>,
    pub(crate) verifier: JwtVerifier,
    pub(crate) records: Records,
    pub(crate) access_ttl: Duration,
    pub(crate) refresh_ttl: Duration,
    pub(crate) registration: Registration,
    pub(crate) clients: Vec<records::ClientRecord>,
    pub(crate) hook: Option<AuthorizeHook>,
    pub(crate) cimd: bool,
    pub(crate) cimd_allow_loopback: bool,
    /// Extra roots trusted when fetching metadata documents.
    pub(crate) cimd_roots: Vec<reqwest::Certificate>,
}

/// Route paths.
pub(crate) mod paths {
    pub(crate) const AS_METADATA: &str = "/.well-known/oauth-authorization-server";
    pub(crate) const OIDC_METADATA: &str = "/.well-known/openid-configuration";
    pub(crate) const JWKS: &str = "/oauth/jwks.json";
    pub(crate) const REGISTER: &str = "/oauth/register";
    pub(crate) const AUTHORIZE: &str = "/oauth/authorize";
    pub(crate) const CONSENT: &str = "/oauth/consent";
    pub(crate) const TOKEN: &str = "/oauth/token";
    pub(crate) const REVOKE: &str = "/oauth/revoke";
}

impl AuthServer {
    /// The verifier for `POST /mcp`: this server's keys, issuer and resource only, so a token
    /// issued by anyone else (the upstream provider included) is refused.
    pub fn verifier(&self) -> JwtVerifier {
        self.inner.verifier.clone()
    }

    /// The issuer (`iss` of the tokens, the metadata's `issuer`).
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The protected resource (`aud` of the tokens).
    pub fn resource(&self) -> &str {
        &self.inner.resource
    }

    /// Forgets that `user` (the namespaced id, the tokens' `sub`) approved `client_id`: the
    /// next authorization shows the consent page again. Tokens already issued stay valid
    /// until they expire or are revoked.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub async fn revoke_consent(&self, user: &str, client_id: &str) -> Result<(), ServerError> {
        self.inner
            .records
            .delete("consent", &consent::consent_key(user, client_id))
            .await
    }

    /// Every path this service answers (mount them without stripping a prefix), the
    /// upstream callback included.
    pub fn paths(&self) -> Vec<String> {
        let mut out: Vec<String> = [
            paths::AS_METADATA,
            paths::OIDC_METADATA,
            paths::JWKS,
            paths::REGISTER,
            paths::AUTHORIZE,
            paths::CONSENT,
            paths::TOKEN,
            paths::REVOKE,
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        out.push(crate::metadata::metadata_path(&self.inner.resource_path));
        out.push(self.inner.oauth.callback_path().to_owned());
        out
    }
}

impl fmt::Debug for AuthServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthServer")
            .field("issuer", &self.inner.issuer)
            .field("resource", &self.inner.resource)
            .field("scopes", &self.inner.scopes)
            .field("keys", &self.inner.keys)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for AuthServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthServerBuilder")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::Provider;

    async fn oauth() -> OAuthClient {
        OAuthClient::builder("https://mcp.example.com/auth/oauth/callback")
            .provider(Provider::github("id", "secret"))
            .state_secret("a-state-secret-of-at-least-32-bytes!!")
            .allow_any_account()
            .build()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn metadata_document_roots_must_be_certificates() {
        let err = AuthServer::builder("https://mcp.example.com", oauth().await, "github")
            .metadata_document_roots("not a certificate")
            .build()
            .unwrap_err();
        assert!(
            matches!(err, AuthServerConfigError::Certificates(_)),
            "{err}"
        );
    }

    #[tokio::test]
    async fn the_login_provider_must_exist() {
        let err = AuthServer::builder("https://mcp.example.com", oauth().await, "google")
            .build()
            .unwrap_err();
        assert!(
            matches!(&err, AuthServerConfigError::UnknownProvider(p) if p == "google"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn the_issuer_and_scopes_are_checked() {
        let oauth = oauth().await;
        let build = |issuer: &str| AuthServer::builder(issuer, oauth.clone(), "github").build();
        for bad in [
            "http://mcp.example.com",
            "https://mcp.example.com/tenant",
            "https://mcp.example.com/?x=1",
            "not a url",
        ] {
            assert!(
                matches!(build(bad), Err(AuthServerConfigError::Issuer(_))),
                "{bad}"
            );
        }
        let server = build("https://mcp.example.com/").unwrap();
        assert_eq!(server.issuer(), "https://mcp.example.com");
        assert_eq!(server.resource(), "https://mcp.example.com/mcp");
        assert!(build("http://127.0.0.1:8080").is_ok());
        let none = AuthServer::builder("https://mcp.example.com", oauth.clone(), "github")
            .scopes(Vec::<String>::new())
            .build();
        assert!(matches!(none, Err(AuthServerConfigError::NoScopes)));
        let bad_client = AuthServer::builder("https://mcp.example.com", oauth, "github")
            .client(Client::public("c", ["http://evil.example/cb"]))
            .build();
        assert!(matches!(bad_client, Err(AuthServerConfigError::Client(..))));
        assert!(!format!("{server:?}").contains("PRIVATE"));
    }
}
