//! Identity providers: [`Provider`] (GitHub, Google, Microsoft, any OIDC provider) and what it
//! resolves to at start-up (endpoints from the discovery document, a refreshing JWKS verifier
//! for `id_token`s).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, ClientId, ClientSecret, EndpointNotSet, EndpointSet, RedirectUrl,
    StandardRevocableToken, StandardTokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

use crate::bearer::{JwksVerifier, TokenVerifier};

use super::http::{HttpClient, HttpError};
use super::{OAuthConfigError, OAuthError};

const GITHUB_WEB: &str = "https://github.com";
const GITHUB_API: &str = "https://api.github.com";
const GOOGLE_ISSUER: &str = "https://accounts.google.com";
const MICROSOFT_AUTHORITY: &str = "https://login.microsoftonline.com";

/// The fields of a token response beyond RFC 6749 that this crate reads: the OIDC `id_token`.
#[derive(Clone, Default, Deserialize, Serialize)]
pub(crate) struct IdTokenFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) id_token: Option<String>,
}

impl oauth2::ExtraTokenFields for IdTokenFields {}

impl fmt::Debug for IdTokenFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdTokenFields")
            .field("id_token", &self.id_token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

pub(crate) type TokenResponse = StandardTokenResponse<IdTokenFields, BasicTokenType>;

pub(crate) type ProviderClient = oauth2::Client<
    BasicErrorResponse,
    TokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    GitHub,
    Google,
    Microsoft,
    Oidc,
}

/// An identity provider to log users in with, or to get upstream tokens from.
///
/// Every provider uses the authorization code flow with PKCE `S256` and a signed single-use
/// `state`. The provider's `name` is the `{provider}` segment of the start route
/// (`/auth/oauth/github/start`).
///
/// | constructor | user id (`sub` of the session) | refresh tokens | `id_token` |
/// |---|---|---|---|
/// | [`github`](Self::github) | the numeric `id` from `GET /user` | no (OAuth apps) | — |
/// | [`google`](Self::google) | `sub` | with `access_type=offline` | checked |
/// | [`microsoft`](Self::microsoft) | `sub` (per app; `oid` is in the claims) | with `offline_access` | checked, per tenant |
/// | [`oidc`](Self::oidc) | `sub` | if the provider issues them | checked |
///
/// OIDC providers are configured from their discovery document
/// (`{issuer}/.well-known/openid-configuration`), fetched once when the
/// [`OAuthClient`](super::OAuthClient) is built. `id_token`s are verified with a
/// [`JwksVerifier`] on the provider's `jwks_uri` (signature, `exp`, `aud` = client id; keys
/// refreshed on rotation), then `iss` and the flow's `nonce` are compared. Base URLs can be overridden, for GitHub Enterprise,
/// sovereign clouds, or a local test provider.
///
/// ```
/// use tower_mcp_auth::oauth::Provider;
///
/// let github = Provider::github("client-id", "client-secret");
/// let google = Provider::google("id.apps.googleusercontent.com", "secret").scopes(["openid", "email"]);
/// let entra = Provider::microsoft("contoso.onmicrosoft.com", "app-id", "secret");
/// let keycloak = Provider::oidc("keycloak", "https://sso.example.com/realms/mcp", "mcp", "secret");
/// assert_eq!(keycloak.name(), "keycloak");
/// # let _ = (github, google, entra);
/// ```
#[must_use]
pub struct Provider {
    name: String,
    kind: Kind,
    client_id: String,
    client_secret: Option<ClientSecret>,
    scopes: Vec<String>,
    issuer: Option<String>,
    authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
    userinfo_endpoint: Option<String>,
    fetch_userinfo: bool,
    extra_params: Vec<(String, String)>,
    id_token_verifier: Option<Arc<dyn TokenVerifier>>,
    auth_type: Option<AuthType>,
    github_api: Option<String>,
    subject_namespace: Option<String>,
}

impl Provider {
    fn base(name: &str, kind: Kind, client_id: &str, client_secret: &str) -> Self {
        Self {
            name: name.to_owned(),
            kind,
            client_id: client_id.to_owned(),
            client_secret: (!client_secret.is_empty())
                .then(|| ClientSecret::new(client_secret.to_owned())),
            scopes: Vec::new(),
            issuer: None,
            authorization_endpoint: None,
            token_endpoint: None,
            userinfo_endpoint: None,
            fetch_userinfo: false,
            extra_params: Vec::new(),
            id_token_verifier: None,
            auth_type: None,
            github_api: None,
            subject_namespace: None,
        }
    }

    /// GitHub (OAuth app or GitHub App user tokens). Default scopes `read:user user:email`;
    /// the user is read from `GET https://api.github.com/user`, the e-mail from
    /// `GET /user/emails` (the primary address, when verified; never the profile's `email`). OAuth-app tokens do not expire and come
    /// without a refresh token. See [`github_urls`](Self::github_urls) for GitHub Enterprise.
    pub fn github(client_id: &str, client_secret: &str) -> Self {
        let mut p = Self::base("github", Kind::GitHub, client_id, client_secret);
        p.scopes = vec!["read:user".to_owned(), "user:email".to_owned()];
        p.auth_type = Some(AuthType::RequestBody);
        p.github_urls(GITHUB_WEB, GITHUB_API)
    }

    /// Google, from `https://accounts.google.com`'s discovery document. Default scopes
    /// `openid email profile`. For a refresh token (upstream tokens), add
    /// `.extra_param("access_type", "offline").extra_param("prompt", "consent")`.
    pub fn google(client_id: &str, client_secret: &str) -> Self {
        let mut p = Self::base("google", Kind::Google, client_id, client_secret);
        p.scopes = vec!["openid".into(), "email".into(), "profile".into()];
        p.issuer = Some(GOOGLE_ISSUER.to_owned());
        p.fetch_userinfo = true;
        p
    }

    /// Microsoft Entra ID (v2.0 endpoints) for `tenant`: a tenant id or domain, or `common`,
    /// `organizations`, `consumers` for multi-tenant apps (then `iss` is checked against the
    /// token's own `tid`). Default scopes `openid email profile offline_access`.
    pub fn microsoft(tenant: &str, client_id: &str, client_secret: &str) -> Self {
        let mut p = Self::base("microsoft", Kind::Microsoft, client_id, client_secret);
        p.scopes = vec![
            "openid".into(),
            "email".into(),
            "profile".into(),
            "offline_access".into(),
        ];
        p.issuer = Some(format!("{MICROSOFT_AUTHORITY}/{tenant}/v2.0"));
        p.auth_type = Some(AuthType::RequestBody);
        p
    }

    /// Any OpenID Connect provider, from `{issuer}/.well-known/openid-configuration`.
    /// Default scopes `openid email profile`; the `userinfo_endpoint`, when the document has
    /// one, is read after login and must name the same `sub`.
    pub fn oidc(name: &str, issuer: &str, client_id: &str, client_secret: &str) -> Self {
        let mut p = Self::base(name, Kind::Oidc, client_id, client_secret);
        p.scopes = vec!["openid".into(), "email".into(), "profile".into()];
        p.issuer = Some(issuer.to_owned());
        p.fetch_userinfo = true;
        p
    }

    /// The name used in the start route and in sessions (`idp` claim).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Renames the provider (for two configurations of one provider, for example).
    pub fn rename(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Replaces the requested scopes. For OIDC providers `openid` is always added.
    pub fn scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> Self {
        self.scopes = super::owned_strings(scopes);
        self
    }

    /// Adds a parameter to the authorization URL (`prompt`, `access_type`, `login_hint`...).
    /// The parameters this crate sets itself (`state`, `code_challenge`, `redirect_uri`,
    /// `nonce`, ...) cannot be overridden this way.
    pub fn extra_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra_params.push((name.into(), value.into()));
        self
    }

    /// GitHub base URLs: `web` serves `/login/oauth/authorize` and `/login/oauth/access_token`,
    /// `api` serves `/user` (GitHub Enterprise: `https://ghe.example.com` and
    /// `https://ghe.example.com/api/v3`).
    pub fn github_urls(mut self, web: &str, api: &str) -> Self {
        let web = web.trim_end_matches('/');
        self.authorization_endpoint = Some(format!("{web}/login/oauth/authorize"));
        self.token_endpoint = Some(format!("{web}/login/oauth/access_token"));
        let api = api.trim_end_matches('/');
        self.userinfo_endpoint = Some(format!("{api}/user"));
        self.github_api = Some(api.to_owned());
        self
    }

    /// Replaces the namespace of this provider's user ids (the session's `sub` is
    /// `{namespace}:{subject}`). By default it is derived from the provider: `github`
    /// (github.com) or `github:{API base}` (Enterprise), `google`, `microsoft:{tid}`,
    /// `oidc:{issuer}` (the issuer's `:` and `%` percent-encoded, `https://` left out).
    /// Set one to keep user ids stable when an issuer URL changes. A namespace is letters,
    /// digits, `.`, `_` and `-`, and not one of the built-in prefixes (`github`, `google`,
    /// `microsoft`, `oidc`), so it cannot collide with another provider's users.
    ///
    /// ```
    /// use tower_mcp_auth::oauth::Provider;
    ///
    /// // Sessions say `sub: "corp-sso:<sub>"` whatever the issuer URL becomes.
    /// let sso = Provider::oidc("sso", "https://sso.example.com/realms/mcp", "mcp", "secret")
    ///     .subject_namespace("corp-sso");
    /// # let _ = sso;
    /// ```
    pub fn subject_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.subject_namespace = Some(namespace.into());
        self
    }

    /// Overrides the issuer (and so the discovery document's location) of an OIDC, Google or
    /// Microsoft provider. For Microsoft this replaces the whole authority, tenant included.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Overrides the authorization endpoint (otherwise from the discovery document).
    pub fn authorization_endpoint(mut self, url: impl Into<String>) -> Self {
        self.authorization_endpoint = Some(url.into());
        self
    }

    /// Overrides the token endpoint (otherwise from the discovery document).
    pub fn token_endpoint(mut self, url: impl Into<String>) -> Self {
        self.token_endpoint = Some(url.into());
        self
    }

    /// Whether to read the user info endpoint after login (default: on for Google and
    /// generic OIDC, off for Microsoft, whose endpoint needs a Graph token).
    pub fn fetch_userinfo(mut self, fetch: bool) -> Self {
        self.fetch_userinfo = fetch;
        self
    }

    /// Verifies `id_token`s with `verifier` instead of the default: a
    /// [`JwksVerifier`](crate::bearer::JwksVerifier) on the provider's `jwks_uri` that refreshes on key
    /// rotation (unknown `kid`, and periodically). Its `Identity` claims are then checked for
    /// `iss`, `aud`, `azp` and `nonce`.
    pub fn id_token_verifier(mut self, verifier: impl TokenVerifier) -> Self {
        self.id_token_verifier = Some(Arc::new(verifier));
        self
    }

    /// Sends the client secret in the token request body (`client_secret_post`) rather than
    /// with HTTP Basic (`client_secret_basic`, the default for generic OIDC and Google).
    pub fn client_secret_post(mut self) -> Self {
        self.auth_type = Some(AuthType::RequestBody);
        self
    }

    fn is_oidc(&self) -> bool {
        self.kind != Kind::GitHub
    }

    /// Fetches what the provider needs (discovery, JWKS) and builds its OAuth client.
    pub(crate) async fn resolve(
        self,
        http: &HttpClient,
        redirect_uri: &RedirectUrl,
        allow_http: impl Fn(&str) -> bool,
    ) -> Result<ResolvedProvider, OAuthConfigError> {
        let name = self.name.clone();
        let err = |what: Cow<'static, str>| OAuthConfigError::Provider {
            provider: name.clone(),
            reason: what,
        };
        if self.name.is_empty()
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(err("a provider name must be 1+ of [A-Za-z0-9-_.]".into()));
        }
        if self.client_id.is_empty() {
            return Err(err("the client id is empty".into()));
        }
        let mut scopes = self.scopes.clone();
        let mut discovery = None;
        let mut id_tokens = None;
        if self.is_oidc() {
            if !scopes.iter().any(|s| s == "openid") {
                scopes.insert(0, "openid".to_owned());
            }
            let issuer = self
                .issuer
                .clone()
                .ok_or_else(|| err("an issuer is required".into()))?;
            check_url(&issuer, &allow_http).map_err(|r| err(format!("issuer: {r}").into()))?;
            let url = format!(
                "{}/.well-known/openid-configuration",
                issuer.trim_end_matches('/')
            );
            let doc: Discovery = http
                .get_json(&url, None)
                .await
                .map_err(|e| err(format!("discovery document: {e}").into()))?;
            let issuers = match self.kind {
                // Microsoft's document names the tenant by id (or `{tenantid}` for
                // multi-tenant apps), whatever name the tenant was configured with.
                Kind::Microsoft => vec![doc.issuer.clone()],
                _ => {
                    if doc.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
                        return Err(err(format!(
                            "the discovery document's issuer {:?} is not the configured issuer",
                            doc.issuer
                        )
                        .into()));
                    }
                    let mut issuers = vec![doc.issuer.clone()];
                    if self.kind == Kind::Google {
                        issuers.push("accounts.google.com".to_owned());
                    }
                    issuers
                }
            };
            if let Some(methods) = &doc.code_challenge_methods_supported {
                if !methods.iter().any(|m| m == "S256") {
                    tracing::warn!(provider = %self.name, "the provider does not list PKCE S256; sending it anyway");
                }
            }
            let verifier: Arc<dyn TokenVerifier> = match &self.id_token_verifier {
                Some(v) => Arc::clone(v),
                None => {
                    check_url(&doc.jwks_uri, &allow_http)
                        .map_err(|r| err(format!("jwks_uri: {r}").into()))?;
                    // A refreshing key set: providers rotate their signing keys (Google every
                    // few days), and a key set fetched once would start rejecting logins.
                    // `check_url` above applied this client's http policy already.
                    let verifier = JwksVerifier::from_jwks_url(doc.jwks_uri.clone())
                        .audience(self.client_id.clone())
                        .allow_http(true)
                        .build()
                        .map_err(|e| err(format!("JWKS: {e}").into()))?;
                    // Fetch now, so a provider without usable keys fails at start-up.
                    verifier
                        .refresh()
                        .await
                        .map_err(|e| err(format!("JWKS: {e}").into()))?;
                    Arc::new(verifier)
                }
            };
            id_tokens = Some(IdTokenCheck {
                verifier,
                issuers,
                client_id: self.client_id.clone(),
            });
            discovery = Some(doc);
        }
        let auth_url = self
            .authorization_endpoint
            .clone()
            .or_else(|| discovery.as_ref().map(|d| d.authorization_endpoint.clone()))
            .ok_or_else(|| err("no authorization endpoint".into()))?;
        let token_url = self
            .token_endpoint
            .clone()
            .or_else(|| discovery.as_ref().map(|d| d.token_endpoint.clone()))
            .ok_or_else(|| err("no token endpoint".into()))?;
        let userinfo = match self.kind {
            Kind::GitHub => self.userinfo_endpoint.clone(),
            _ if self.fetch_userinfo => self
                .userinfo_endpoint
                .clone()
                .or_else(|| discovery.as_ref().and_then(|d| d.userinfo_endpoint.clone())),
            _ => None,
        };
        for (what, url) in [("authorization", &auth_url), ("token", &token_url)] {
            check_url(url, &allow_http).map_err(|r| err(format!("{what} endpoint: {r}").into()))?;
        }
        if let Some(url) = &userinfo {
            check_url(url, &allow_http).map_err(|r| err(format!("user info: {r}").into()))?;
        }
        let auth_type = self.auth_type.clone().unwrap_or_else(|| {
            let methods = discovery
                .as_ref()
                .and_then(|d| d.token_endpoint_auth_methods_supported.as_ref());
            match methods {
                Some(m)
                    if !m.iter().any(|m| m == "client_secret_basic")
                        && m.iter().any(|m| m == "client_secret_post") =>
                {
                    AuthType::RequestBody
                }
                _ => AuthType::BasicAuth,
            }
        });
        let mut client = oauth2::Client::new(ClientId::new(self.client_id.clone()))
            .set_auth_uri(AuthUrl::new(auth_url).map_err(|_| err("bad authorization URL".into()))?)
            .set_token_uri(TokenUrl::new(token_url).map_err(|_| err("bad token URL".into()))?)
            .set_redirect_uri(redirect_uri.clone())
            .set_auth_type(auth_type);
        if let Some(secret) = self.client_secret.clone() {
            client = client.set_client_secret(secret);
        }
        let namespace = match &self.subject_namespace {
            Some(ns) => {
                let ok = !ns.is_empty()
                    && ns.len() <= 64
                    && ns
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
                    && !RESERVED_NAMESPACES
                        .iter()
                        .any(|r| r.eq_ignore_ascii_case(ns));
                if !ok {
                    return Err(err(
                        "subject namespace: letters, digits, `.`, `_`, `-`, not github, google, microsoft or oidc".into(),
                    ));
                }
                Some(ns.clone())
            }
            None => match self.kind {
                Kind::GitHub => match self.github_api.as_deref() {
                    None | Some(GITHUB_API) => Some("github".to_owned()),
                    Some(api) => Some(format!("github:{}", encode_issuer(api))),
                },
                Kind::Google => Some("google".to_owned()),
                // Per login, from the token's tenant.
                Kind::Microsoft => None,
                Kind::Oidc => Some(format!(
                    "oidc:{}",
                    encode_issuer(
                        self.issuer
                            .as_deref()
                            .unwrap_or_default()
                            .trim_end_matches('/')
                    )
                )),
            },
        };
        Ok(ResolvedProvider {
            name: self.name,
            kind: self.kind,
            namespace,
            github_api: self.github_api,
            github: self.kind == Kind::GitHub,
            client,
            scopes,
            extra_params: self.extra_params,
            id_tokens,
            userinfo,
        })
    }
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provider")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("client_id", &self.client_id)
            .field("scopes", &self.scopes)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// Built-in user id namespaces; a configured one may not be one of them.
const RESERVED_NAMESPACES: [&str; 4] = ["github", "google", "microsoft", "oidc"];

/// An issuer or API base as one user-id segment: `https://` left out, `%` and `:` percent-
/// encoded, so the result holds no `:` and two different URLs never give the same text.
pub(crate) fn encode_issuer(url: &str) -> String {
    let rest = url.strip_prefix("https://").unwrap_or(url);
    let mut out = String::with_capacity(rest.len() + 8);
    for c in rest.chars() {
        match c {
            '%' => out.push_str("%25"),
            ':' => out.push_str("%3A"),
            c => out.push(c),
        }
    }
    out
}

/// The e-mail a provider says is verified: `email_verified` (OIDC, Google; `true` or
/// `"true"`), for Microsoft also `xms_edov` (the optional claim saying the domain owner
/// verified it: Entra's `email` is otherwise any text a user or admin set).
fn verified_email(claims: &Map<String, Value>, kind: Kind) -> Option<String> {
    let email = claims.get("email")?.as_str()?.trim();
    if email.is_empty() || !email.contains('@') {
        return None;
    }
    let flag = |k: &str| match claims.get(k) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    };
    let verified = flag("email_verified") || (kind == Kind::Microsoft && flag("xms_edov"));
    verified.then(|| email.to_owned())
}

/// One entry of GitHub's `GET /user/emails`.
#[derive(Deserialize)]
struct GithubEmail {
    email: String,
    #[serde(default)]
    primary: bool,
    #[serde(default)]
    verified: bool,
}

/// Provider URLs must be `https`, except on loopback hosts when allowed (local development
/// and tests).
fn check_url(url: &str, allow_http: &impl Fn(&str) -> bool) -> Result<(), &'static str> {
    let parsed = oauth2::url::Url::parse(url).map_err(|_| "not an absolute URL")?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if allow_http(url) => Ok(()),
        "http" => Err("must use https (http is allowed for localhost only)"),
        _ => Err("must be an https URL"),
    }
}

/// `true` for `http://localhost`, `http://127.0.0.1`, `http://[::1]` (any port).
pub(crate) fn is_loopback_http(url: &str) -> bool {
    let Ok(parsed) = oauth2::url::Url::parse(url) else {
        return false;
    };
    if parsed.scheme() != "http" {
        return false;
    }
    match parsed.host() {
        Some(oauth2::url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(oauth2::url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(oauth2::url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    #[serde(default)]
    userinfo_endpoint: Option<String>,
    jwks_uri: String,
    #[serde(default)]
    code_challenge_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    token_endpoint_auth_methods_supported: Option<Vec<String>>,
}

/// Checks `id_token`s: the verifier for signature, `exp` and `aud`; this for the rest.
struct IdTokenCheck {
    verifier: Arc<dyn TokenVerifier>,
    /// Accepted `iss` values; `{tenantid}` stands for the token's `tid` (Microsoft).
    issuers: Vec<String>,
    client_id: String,
}

impl IdTokenCheck {
    async fn verify(&self, token: &str, nonce: &str) -> Result<Map<String, Value>, OAuthError> {
        let identity = self.verifier.verify(token).await.map_err(|e| {
            tracing::warn!(reason = %e, "id_token rejected");
            OAuthError::InvalidIdToken("signature, expiry or audience")
        })?;
        let claims = identity.claims().cloned().unwrap_or_default();
        let str_claim = |name: &str| claims.get(name).and_then(Value::as_str);
        let iss = str_claim("iss").ok_or(OAuthError::InvalidIdToken("no issuer"))?;
        let tid = str_claim("tid");
        let issuer_ok = self.issuers.iter().any(|want| match tid {
            Some(tid) if want.contains("{tenantid}") => want.replace("{tenantid}", tid) == iss,
            _ => want == iss,
        });
        if !issuer_ok {
            return Err(OAuthError::InvalidIdToken("issuer"));
        }
        // `aud` was checked by the verifier (when it is the default one); check it again so a
        // plugged-in verifier cannot skip it.
        let aud_ok = match claims.get("aud") {
            Some(Value::String(aud)) => aud == &self.client_id,
            Some(Value::Array(auds)) => {
                auds.iter().any(|a| a.as_str() == Some(&self.client_id))
                    && (auds.len() == 1 || str_claim("azp") == Some(&self.client_id))
            }
            _ => false,
        };
        if !aud_ok {
            return Err(OAuthError::InvalidIdToken("audience"));
        }
        if claims.get("exp").and_then(Value::as_u64).is_none() {
            return Err(OAuthError::InvalidIdToken("no expiry"));
        }
        let got = str_claim("nonce").unwrap_or_default();
        if !bool::from(got.as_bytes().ct_eq(nonce.as_bytes())) {
            return Err(OAuthError::InvalidIdToken("nonce"));
        }
        if str_claim("sub").is_none_or(str::is_empty) {
            return Err(OAuthError::InvalidIdToken("no subject"));
        }
        Ok(claims)
    }
}

/// A provider ready to use.
pub(crate) struct ResolvedProvider {
    pub(crate) name: String,
    kind: Kind,
    /// The user id namespace (`None`: Microsoft, per tenant).
    namespace: Option<String>,
    github_api: Option<String>,
    github: bool,
    pub(crate) client: ProviderClient,
    pub(crate) scopes: Vec<String>,
    pub(crate) extra_params: Vec<(String, String)>,
    id_tokens: Option<IdTokenCheck>,
    userinfo: Option<String>,
}

impl fmt::Debug for ResolvedProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolvedProvider")
            .field("name", &self.name)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// The user a provider vouched for.
///
/// [`user_id`](Self::user_id) is the provider's user id in a namespace of its own, so the
/// same `sub` at two providers or issuers is two users: it is the session's `sub`, the owner
/// of upstream tokens in the [`TokenVault`](super::TokenVault), and what
/// [`LoginPolicy::allow_users`](super::LoginPolicy::allow_users) lists.
///
/// | provider | `user_id` |
/// |---|---|
/// | GitHub (github.com) | `github:{numeric id}` |
/// | GitHub Enterprise (`github_urls`) | `github:{API base}:{numeric id}` |
/// | Google | `google:{sub}` |
/// | Microsoft | `microsoft:{tid}:{sub}` |
/// | any OIDC provider | `oidc:{issuer}:{sub}` |
/// | with [`Provider::subject_namespace`] | `{namespace}:{sub}` |
///
/// URLs leave out `https://` and have `%` and `:` percent-encoded
/// (`oidc:sso.example.com/realms/mcp:f81d4fae`), so no namespace holds a `:` of its own and
/// the first segments always say whose user it is.
///
/// ```
/// use tower_mcp_auth::oauth::UserInfo;
///
/// let user = UserInfo::new("github", "583231");
/// assert_eq!(user.subject, "583231");
/// assert_eq!(user.user_id, "github:583231");
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct UserInfo {
    /// The provider's name.
    pub provider: String,
    /// The provider's stable user id (`sub`, or GitHub's numeric `id`), as the provider
    /// gave it: unique only at that provider.
    pub subject: String,
    /// The namespaced user id (see above): unique across providers and issuers.
    pub user_id: String,
    /// A display name (`name`, `preferred_username`, GitHub `login`).
    pub name: Option<String>,
    /// The e-mail address, only when the provider says it is verified (`email_verified`;
    /// GitHub: the verified primary address of `/user/emails`; Microsoft: `xms_edov`).
    /// An unverified address stays in [`claims`](Self::claims) and is never used.
    pub email: Option<String>,
    /// The Microsoft Entra tenant id (`tid`), for Microsoft providers.
    pub tenant: Option<String>,
    /// Every claim (OIDC) or field of the user API answer (GitHub), unverified ones
    /// included.
    pub claims: Map<String, Value>,
}

impl UserInfo {
    /// A user with only a provider and a subject; `user_id` is `{provider}:{subject}`.
    pub fn new(provider: impl Into<String>, subject: impl Into<String>) -> Self {
        let (provider, subject) = (provider.into(), subject.into());
        Self {
            user_id: format!("{provider}:{subject}"),
            provider,
            subject,
            name: None,
            email: None,
            tenant: None,
            claims: Map::new(),
        }
    }
}

impl ResolvedProvider {
    /// The GitHub API base of a GitHub provider.
    pub(crate) fn github_api(&self) -> Option<&str> {
        if self.kind == Kind::GitHub {
            self.github_api.as_deref()
        } else {
            None
        }
    }

    pub(crate) fn is_oidc(&self) -> bool {
        self.id_tokens.is_some()
    }

    /// RFC 9207 `iss` callback parameter check. Providers without a known issuer (GitHub)
    /// accept any value.
    pub(crate) fn issuer_matches(&self, iss: &str) -> bool {
        match &self.id_tokens {
            None => true,
            Some(check) => check.issuers.iter().any(|want| {
                want == iss || (want.contains("{tenantid}") && tenant_issuer(want, iss))
            }),
        }
    }

    /// Who logged in, from the token response.
    pub(crate) async fn user(
        &self,
        http: &HttpClient,
        tokens: &TokenResponse,
        nonce: &str,
    ) -> Result<UserInfo, OAuthError> {
        use oauth2::TokenResponse as _;
        let access = tokens.access_token().secret();
        if self.github {
            let url = self
                .userinfo
                .as_deref()
                .ok_or(OAuthError::Provider("no user API".into()))?;
            let body: Map<String, Value> = http
                .get_json(url, Some(access))
                .await
                .map_err(|e| provider_http_error("user API", e))?;
            let subject = match body.get("id") {
                Some(Value::Number(n)) => n.to_string(),
                // No `:`: the id is the last segment of the namespaced user id.
                Some(Value::String(s)) if !s.is_empty() && !s.contains(':') => s.clone(),
                _ => return Err(OAuthError::Provider("the user API answer has no id".into())),
            };
            let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
            // The profile's `email` is whatever the user typed: only `/user/emails` says
            // which address is verified (scope `user:email`; without it, no e-mail).
            let email = match &self.github_api {
                Some(api) => {
                    match http
                        .get_json::<Vec<GithubEmail>>(&format!("{api}/user/emails"), Some(access))
                        .await
                    {
                        Ok(emails) => emails
                            .into_iter()
                            .find(|e| e.primary && e.verified)
                            .map(|e| e.email),
                        Err(e) => {
                            tracing::debug!(reason = %e, "no verified GitHub e-mail");
                            None
                        }
                    }
                }
                None => None,
            };
            let namespace = self.namespace.as_deref().unwrap_or("github");
            return Ok(UserInfo {
                provider: self.name.clone(),
                user_id: format!("{namespace}:{subject}"),
                subject,
                name: text("login").or_else(|| text("name")),
                email,
                tenant: None,
                claims: body,
            });
        }
        let check = self
            .id_tokens
            .as_ref()
            .ok_or(OAuthError::Provider("no id_token check".into()))?;
        let id_token =
            tokens
                .extra_fields()
                .id_token
                .as_deref()
                .ok_or(OAuthError::InvalidIdToken(
                    "the token response has no id_token",
                ))?;
        let mut claims = check.verify(id_token, nonce).await?;
        // The id_token's verified e-mail, else the user info's: each with its own flag.
        let mut email = verified_email(&claims, self.kind);
        if let Some(url) = &self.userinfo {
            let info: Map<String, Value> = http
                .get_json(url, Some(access))
                .await
                .map_err(|e| provider_http_error("user info", e))?;
            if info.get("sub") != claims.get("sub") {
                return Err(OAuthError::Provider(
                    "the user info `sub` differs from the id_token's".into(),
                ));
            }
            if email.is_none() {
                email = verified_email(&info, self.kind);
            }
            for (k, v) in info {
                claims.entry(k).or_insert(v);
            }
        }
        let text = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_owned);
        let subject = text("sub").unwrap_or_default();
        let tenant = (self.kind == Kind::Microsoft)
            .then(|| text("tid"))
            .flatten()
            .filter(|t| {
                !t.is_empty()
                    && t.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'))
            });
        let user_id = match (&self.namespace, &tenant) {
            (Some(ns), _) => format!("{ns}:{subject}"),
            (None, Some(tid)) => format!("microsoft:{tid}:{subject}"),
            // No usable `tid`: the verified issuer names the tenant.
            (None, None) => format!(
                "microsoft:{}:{subject}",
                encode_issuer(text("iss").as_deref().unwrap_or_default())
            ),
        };
        Ok(UserInfo {
            provider: self.name.clone(),
            subject,
            user_id,
            name: text("name").or_else(|| text("preferred_username")),
            email,
            tenant,
            claims,
        })
    }
}

/// Whether `iss` is `template` with `{tenantid}` replaced by one tenant id.
fn tenant_issuer(template: &str, iss: &str) -> bool {
    let Some((before, after)) = template.split_once("{tenantid}") else {
        return false;
    };
    iss.strip_prefix(before)
        .and_then(|rest| rest.strip_suffix(after))
        .is_some_and(|tid| !tid.is_empty() && !tid.contains('/'))
}

pub(crate) fn provider_http_error(what: &'static str, e: HttpError) -> OAuthError {
    match e {
        HttpError::Timeout => OAuthError::ProviderTimeout,
        other => OAuthError::Provider(format!("{what}: {other}").into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_detection() {
        assert!(is_loopback_http("http://localhost:8080/cb"));
        assert!(is_loopback_http("http://127.0.0.1/cb"));
        assert!(is_loopback_http("http://[::1]:1/"));
        assert!(!is_loopback_http("https://localhost/"));
        assert!(!is_loopback_http("http://example.com/"));
        assert!(!is_loopback_http("http://localhost.example.com/"));
        assert!(!is_loopback_http("not a url"));
    }

    #[test]
    fn id_token_fields_debug_redacts() {
        let f = IdTokenFields {
            id_token: Some("eyJsecret".into()),
        };
        assert!(!format!("{f:?}").contains("eyJ"));
    }
}
