//! A local OAuth 2.0 / OpenID Connect provider for the `oauth_*` tests, started in the test
//! process on 127.0.0.1:0 (authorize, token, userinfo, JWKS, discovery, and a GitHub-like
//! `/login/oauth/*` + `/user` API), an app that mounts the crate's OAuth routes, and a tiny
//! cookie-keeping "browser".
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Extension, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tower::Layer as _;
use tower_mcp_auth::oauth::{OAuthClient, OAuthClientBuilder, Provider, SessionConfig};
use tower_mcp_auth::store::StateStore;
use tower_mcp_auth::{
    bearer::{BearerLayer, BearerOutcome},
    EndpointPolicy, Identity, McpAuth,
};

pub const CLIENT_ID: &str = "test-client";
pub const CLIENT_SECRET: &str = "test-client-secret";
pub const STATE_SECRET: &str = "state-secret-for-the-oauth-tests-0123456789";
pub const SESSION_SECRET: &str = "session-secret-for-the-oauth-tests-0123456789";
pub const SUB: &str = "user-1234";
pub const GITHUB_ID: u64 = 4242;

/// How the provider behaves; tests flip these between steps.
#[derive(Clone, Debug)]
pub struct Behaviour {
    /// The next authorization is refused with `error=access_denied`.
    pub deny: bool,
    /// `expires_in` of access tokens.
    pub expires_in: u64,
    /// Issue refresh tokens (OIDC endpoints).
    pub refresh_tokens: bool,
    /// Delay before answering the token endpoint.
    pub token_delay: Option<Duration>,
    /// Put another nonce in id_tokens.
    pub wrong_nonce: bool,
    /// Put another audience in id_tokens.
    pub wrong_audience: bool,
    /// Behave like Microsoft's multi-tenant (`common`) endpoint: the discovery document's
    /// issuer is `{base}/{tenantid}/v2.0`, tokens carry `tid` and that tenant's issuer.
    pub microsoft_tenant: Option<String>,
    /// The `sub` of id_tokens and user info (default [`SUB`]).
    pub sub: String,
    /// The `email` of id_tokens and user info.
    pub email: Option<String>,
    /// `email_verified` of id_tokens and user info (`None`: the claim is absent).
    pub email_verified: Option<Value>,
    /// Microsoft's `xms_edov` optional claim (`None`: absent).
    pub xms_edov: Option<Value>,
    /// More id_token claims (`groups`, `hd`...).
    pub extra_claims: serde_json::Map<String, Value>,
    /// GitHub's `id` on `GET /user`.
    pub github_id: Value,
    /// GitHub's `GET /user/emails` answer (`None`: 404, as without the `user:email` scope).
    pub github_emails: Option<Value>,
    /// GitHub organization memberships: (org login, `active` / `pending`).
    pub github_orgs: Vec<(String, String)>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            deny: false,
            expires_in: 3600,
            refresh_tokens: true,
            token_delay: None,
            wrong_nonce: false,
            wrong_audience: false,
            microsoft_tenant: None,
            sub: SUB.to_owned(),
            email: Some("ada@example.com".to_owned()),
            email_verified: Some(Value::Bool(true)),
            xms_edov: None,
            extra_claims: serde_json::Map::new(),
            github_id: json!(GITHUB_ID),
            github_emails: Some(json!([
                {"email": "octocat@users.noreply.github.com", "primary": false, "verified": true},
                {"email": "octocat@example.com", "primary": true, "verified": true},
            ])),
            github_orgs: Vec::new(),
        }
    }
}

struct Grant {
    challenge: String,
    redirect_uri: String,
    nonce: Option<String>,
    github: bool,
}

#[derive(Default)]
pub struct Counters {
    pub authorizations: AtomicUsize,
    pub code_grants: AtomicUsize,
    pub refresh_grants: AtomicUsize,
    pub userinfo: AtomicUsize,
    pub org_lookups: AtomicUsize,
}

pub struct ProviderState {
    pub base: String,
    pub redirect_uris: Mutex<Vec<String>>,
    grants: Mutex<HashMap<String, Grant>>,
    refresh: Mutex<HashMap<String, bool>>,
    access: Mutex<HashMap<String, ()>>,
    pub behaviour: Mutex<Behaviour>,
    pub counters: Counters,
}

/// The running provider.
#[derive(Clone)]
pub struct LocalProvider {
    pub base: String,
    pub state: Arc<ProviderState>,
}

impl LocalProvider {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(ProviderState {
            base: base.clone(),
            redirect_uris: Mutex::new(Vec::new()),
            grants: Mutex::new(HashMap::new()),
            refresh: Mutex::new(HashMap::new()),
            access: Mutex::new(HashMap::new()),
            behaviour: Mutex::new(Behaviour::default()),
            counters: Counters::default(),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/userinfo", get(userinfo))
            .route("/login/oauth/authorize", get(authorize))
            .route("/login/oauth/access_token", post(token))
            .route("/user", get(github_user))
            .route("/user/emails", get(github_emails))
            .route("/user/memberships/orgs/{org}", get(github_membership))
            .with_state(Arc::clone(&state));
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { base, state }
    }

    /// Registers a redirect URI (matched exactly).
    pub fn register(&self, redirect_uri: &str) {
        self.state
            .redirect_uris
            .lock()
            .unwrap()
            .push(redirect_uri.to_owned());
    }

    pub fn behave(&self, f: impl FnOnce(&mut Behaviour)) {
        f(&mut self.state.behaviour.lock().unwrap());
    }

    /// Revokes every refresh token issued so far.
    pub fn revoke_refresh_tokens(&self) {
        for revoked in self.state.refresh.lock().unwrap().values_mut() {
            *revoked = true;
        }
    }

    pub fn refresh_grants(&self) -> usize {
        self.state.counters.refresh_grants.load(Ordering::SeqCst)
    }

    pub fn code_grants(&self) -> usize {
        self.state.counters.code_grants.load(Ordering::SeqCst)
    }

    /// The generic OIDC provider pointing here.
    pub fn oidc(&self) -> Provider {
        Provider::oidc("oidc", &self.base, CLIENT_ID, CLIENT_SECRET)
    }

    /// A GitHub provider pointing here.
    pub fn github(&self) -> Provider {
        Provider::github(CLIENT_ID, CLIENT_SECRET).github_urls(&self.base, &self.base)
    }
}

/// The session user id of `sub` at this provider's generic OIDC configuration:
/// `oidc:{issuer, `:` and `%` percent-encoded}:{sub}`.
pub fn oidc_user_id(provider: &LocalProvider, sub: &str) -> String {
    format!("oidc:{}:{sub}", encoded_base(provider))
}

/// The session user id of a GitHub user at this provider (not api.github.com, so the API base
/// is part of the namespace, like GitHub Enterprise).
pub fn github_user_id(provider: &LocalProvider, id: u64) -> String {
    format!("github:{}:{id}", encoded_base(provider))
}

fn encoded_base(provider: &LocalProvider) -> String {
    provider.base.replace('%', "%25").replace(':', "%3A")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn random() -> String {
    let mut b = [0u8; 24];
    getrandom::fill(&mut b).unwrap();
    URL_SAFE_NO_PAD.encode(b)
}

/// The issuer tokens carry: the base URL, or the tenant's issuer in Microsoft mode.
fn token_issuer(s: &ProviderState) -> String {
    match &s.behaviour.lock().unwrap().microsoft_tenant {
        Some(tid) => format!("{}/{tid}/v2.0", s.base),
        None => s.base.clone(),
    }
}

async fn discovery(State(s): State<Arc<ProviderState>>) -> Json<Value> {
    let b = &s.base;
    let issuer = match s.behaviour.lock().unwrap().microsoft_tenant {
        Some(_) => format!("{b}/{{tenantid}}/v2.0"),
        None => b.clone(),
    };
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{b}/authorize"),
        "token_endpoint": format!("{b}/token"),
        "userinfo_endpoint": format!("{b}/userinfo"),
        "jwks_uri": format!("{b}/jwks"),
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
}

async fn jwks() -> Json<Value> {
    let jwk: Value = serde_json::from_str(include_str!("../fixtures/rsa_public.jwk.json")).unwrap();
    Json(json!({"keys": [{"kty": "oct", "k": "aWdub3JlZA", "kid": "hmac"}, jwk]}))
}

fn text(status: StatusCode, msg: &str) -> Response {
    (status, msg.to_owned()).into_response()
}

fn redirect(to: String) -> Response {
    (StatusCode::FOUND, [("location", to)]).into_response()
}

async fn authorize(
    State(s): State<Arc<ProviderState>>,
    uri: axum::http::Uri,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    s.counters.authorizations.fetch_add(1, Ordering::SeqCst);
    let github = uri.path().starts_with("/login/");
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    if get("client_id") != CLIENT_ID {
        return text(StatusCode::BAD_REQUEST, "unknown client_id");
    }
    let redirect_uri = get("redirect_uri");
    if !s.redirect_uris.lock().unwrap().contains(&redirect_uri) {
        // Real providers show an error page here, never redirect to an unregistered URI.
        return text(StatusCode::BAD_REQUEST, "redirect_uri_mismatch");
    }
    if get("response_type") != "code" || get("state").is_empty() {
        return text(StatusCode::BAD_REQUEST, "invalid_request");
    }
    if get("code_challenge_method") != "S256" || get("code_challenge").len() != 43 {
        return text(StatusCode::BAD_REQUEST, "PKCE S256 required");
    }
    if !github && (!q.contains_key("nonce") || !get("scope").split(' ').any(|x| x == "openid")) {
        return text(StatusCode::BAD_REQUEST, "openid scope and nonce required");
    }
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    let state = form_urlencoded::byte_serialize(get("state").as_bytes()).collect::<String>();
    if std::mem::take(&mut s.behaviour.lock().unwrap().deny) {
        return redirect(format!(
            "{redirect_uri}{sep}error=access_denied&error_description=The+user+denied&state={state}"
        ));
    }
    let code = random();
    s.grants.lock().unwrap().insert(
        code.clone(),
        Grant {
            challenge: get("code_challenge"),
            redirect_uri: redirect_uri.clone(),
            nonce: q.get("nonce").cloned(),
            github,
        },
    );
    let iss = if github {
        String::new()
    } else {
        format!(
            "&iss={}",
            form_urlencoded::byte_serialize(token_issuer(&s).as_bytes()).collect::<String>()
        )
    };
    redirect(format!("{redirect_uri}{sep}code={code}&state={state}{iss}"))
}

fn client_authenticated(headers: &HeaderMap, form: &HashMap<String, String>) -> bool {
    if let Some(basic) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    {
        let Ok(decoded) = STANDARD.decode(basic) else {
            return false;
        };
        let text = String::from_utf8_lossy(&decoded).into_owned();
        // RFC 6749 2.3.1: both parts are form-urlencoded.
        let decode = |s: &str| {
            form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        return text.split_once(':').is_some_and(|(id, secret)| {
            decode(id) == CLIENT_ID && decode(secret) == CLIENT_SECRET
        });
    }
    form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
        && form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET)
}

/// An OAuth error: GitHub answers them with HTTP 200, everyone else with 400.
fn oauth_error(github: bool, code: &str, description: &str) -> Response {
    let status = if github {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    (
        status,
        Json(json!({"error": code, "error_description": description})),
    )
        .into_response()
}

async fn token(
    State(s): State<Arc<ProviderState>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let github = uri.path().starts_with("/login/");
    let behaviour = s.behaviour.lock().unwrap().clone();
    if let Some(delay) = behaviour.token_delay {
        tokio::time::sleep(delay).await;
    }
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    if !client_authenticated(&headers, &form) {
        return oauth_error(github, "invalid_client", "client authentication failed");
    }
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    let (nonce, issue_refresh) = match get("grant_type").as_str() {
        "authorization_code" => {
            let Some(grant) = s.grants.lock().unwrap().remove(&get("code")) else {
                return oauth_error(github, "invalid_grant", "unknown or used code");
            };
            if grant.github != github || grant.redirect_uri != get("redirect_uri") {
                return oauth_error(github, "invalid_grant", "redirect_uri mismatch");
            }
            let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(get("code_verifier").as_bytes()));
            if challenge != grant.challenge {
                return oauth_error(github, "invalid_grant", "PKCE verification failed");
            }
            s.counters.code_grants.fetch_add(1, Ordering::SeqCst);
            (grant.nonce, !github && behaviour.refresh_tokens)
        }
        "refresh_token" if !github => {
            let mut refresh = s.refresh.lock().unwrap();
            match refresh.get_mut(&get("refresh_token")) {
                Some(revoked @ false) => *revoked = true, // rotated: single use
                _ => return oauth_error(false, "invalid_grant", "refresh token revoked"),
            }
            s.counters.refresh_grants.fetch_add(1, Ordering::SeqCst);
            (None, true)
        }
        _ => return oauth_error(github, "unsupported_grant_type", "no"),
    };
    let access = format!("at-{}", random());
    s.access.lock().unwrap().insert(access.clone(), ());
    if github {
        return Json(json!({"access_token": access, "token_type": "bearer", "scope": "read:user"}))
            .into_response();
    }
    let mut body = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": behaviour.expires_in,
        "scope": "openid email profile",
    });
    if issue_refresh {
        let rt = format!("rt-{}", random());
        s.refresh.lock().unwrap().insert(rt.clone(), false);
        body["refresh_token"] = json!(rt);
    }
    if let Some(nonce) = nonce {
        let nonce = if behaviour.wrong_nonce {
            "other-nonce".to_owned()
        } else {
            nonce
        };
        let aud = if behaviour.wrong_audience {
            "someone-else"
        } else {
            CLIENT_ID
        };
        let tid = behaviour.microsoft_tenant.as_deref();
        body["id_token"] = json!(id_token_claims(
            &token_issuer(&s),
            aud,
            &nonce,
            tid,
            &behaviour
        ));
    }
    Json(body).into_response()
}

pub fn id_token(iss: &str, aud: &str, nonce: &str) -> String {
    id_token_with(iss, aud, nonce, None)
}

pub fn id_token_with(iss: &str, aud: &str, nonce: &str, tid: Option<&str>) -> String {
    id_token_claims(iss, aud, nonce, tid, &Behaviour::default())
}

/// The user claims the provider vouches for (id_token and user info).
fn user_claims(b: &Behaviour) -> serde_json::Map<String, Value> {
    let mut claims = serde_json::Map::new();
    claims.insert("sub".into(), json!(b.sub));
    claims.insert("name".into(), json!("Ada Lovelace"));
    if let Some(email) = &b.email {
        claims.insert("email".into(), json!(email));
    }
    if let Some(v) = &b.email_verified {
        claims.insert("email_verified".into(), v.clone());
    }
    if let Some(v) = &b.xms_edov {
        claims.insert("xms_edov".into(), v.clone());
    }
    claims
}

pub fn id_token_claims(
    iss: &str,
    aud: &str,
    nonce: &str,
    tid: Option<&str>,
    b: &Behaviour,
) -> String {
    tower_mcp_auth::bearer::install_crypto_provider();
    let mut claims = user_claims(b);
    for (k, v) in [
        ("iss", json!(iss)),
        ("aud", json!(aud)),
        ("nonce", json!(nonce)),
        ("iat", json!(now())),
        ("exp", json!(now() + 300)),
        ("tid", json!(tid)),
    ] {
        claims.insert(k.into(), v);
    }
    for (k, v) in &b.extra_claims {
        claims.insert(k.clone(), v.clone());
    }
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("test-rsa-1".into());
    jsonwebtoken::encode(
        &header,
        &Value::Object(claims),
        &jsonwebtoken::EncodingKey::from_rsa_pem(include_bytes!("../fixtures/rsa_private.pem"))
            .unwrap(),
    )
    .unwrap()
}

fn bearer_ok(s: &ProviderState, headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| s.access.lock().unwrap().contains_key(t))
}

async fn userinfo(State(s): State<Arc<ProviderState>>, headers: HeaderMap) -> Response {
    s.counters.userinfo.fetch_add(1, Ordering::SeqCst);
    if !bearer_ok(&s, &headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let mut info = user_claims(&s.behaviour.lock().unwrap());
    info.insert("locale".into(), json!("en"));
    Json(Value::Object(info)).into_response()
}

async fn github_user(State(s): State<Arc<ProviderState>>, headers: HeaderMap) -> Response {
    if headers.get("user-agent").is_none() {
        // Like GitHub: requests without a User-Agent are refused.
        return StatusCode::FORBIDDEN.into_response();
    }
    if !bearer_ok(&s, &headers) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "Bad credentials"})),
        )
            .into_response();
    }
    let b = s.behaviour.lock().unwrap().clone();
    // The profile's public e-mail: whatever the user typed, never proof of anything.
    Json(
        json!({"id": b.github_id, "login": "octocat", "name": "The Octocat",
        "email": "ceo@example.com"}),
    )
    .into_response()
}

async fn github_emails(State(s): State<Arc<ProviderState>>, headers: HeaderMap) -> Response {
    if !bearer_ok(&s, &headers) || headers.get("user-agent").is_none() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    match s.behaviour.lock().unwrap().github_emails.clone() {
        Some(emails) => Json(emails).into_response(),
        None => (StatusCode::NOT_FOUND, Json(json!({"message": "Not Found"}))).into_response(),
    }
}

/// `GET /user/memberships/orgs/{org}`: 200 with `state`, or 404 when not a member. Org names
/// are case-insensitive, as on GitHub.
async fn github_membership(
    State(s): State<Arc<ProviderState>>,
    axum::extract::Path(org): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    s.counters.org_lookups.fetch_add(1, Ordering::SeqCst);
    if !bearer_ok(&s, &headers) || headers.get("user-agent").is_none() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let b = s.behaviour.lock().unwrap().clone();
    match b
        .github_orgs
        .iter()
        .find(|(o, _)| o.eq_ignore_ascii_case(&org))
    {
        Some((login, state)) => Json(json!({
            "state": state, "role": "member",
            "organization": {"login": login},
            "user": {"login": "octocat"},
        }))
        .into_response(),
        None => (StatusCode::NOT_FOUND, Json(json!({"message": "Not Found"}))).into_response(),
    }
}

// ---------------------------------------------------------------------------------------
// The app under test.

/// A running app: OAuth routes, `POST /mcp` (OAuth only, session cookie accepted), `GET /`.
pub struct TestApp {
    pub base: String,
    pub client: OAuthClient,
    pub session: SessionConfig,
}

pub fn session_config() -> SessionConfig {
    SessionConfig::new(SESSION_SECRET)
        .unwrap()
        .scopes(["tools/call"])
}

/// Binds a port, lets `configure` finish the builder (providers are added by the caller),
/// registers the redirect URI with `provider`, and serves.
pub async fn serve_app(
    provider: &LocalProvider,
    store: Arc<dyn StateStore>,
    configure: impl FnOnce(OAuthClientBuilder) -> OAuthClientBuilder,
) -> TestApp {
    serve_app_at(provider, store, None, configure).await
}

/// [`serve_app`] with a given redirect URI (several instances behind one public URL share
/// it); by default the app's own callback URL.
pub async fn serve_app_at(
    provider: &LocalProvider,
    store: Arc<dyn StateStore>,
    redirect_uri: Option<String>,
    configure: impl FnOnce(OAuthClientBuilder) -> OAuthClientBuilder,
) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let base = format!("http://{addr}");
    let redirect_uri = redirect_uri.unwrap_or_else(|| format!("{base}/auth/oauth/callback"));
    provider.register(&redirect_uri);
    let session = session_config();
    let builder = OAuthClient::builder(redirect_uri)
        .state_secret(STATE_SECRET)
        .store_shared(store)
        .session(session.clone())
        // Tests of the flow itself; `configure` may set a stricter policy.
        .allow_any_account();
    let client = configure(builder)
        .build()
        .await
        .expect("OAuth client builds");
    let app = app_router(&client, &session);
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    TestApp {
        base,
        client,
        session,
    }
}

pub fn app_router(client: &OAuthClient, session: &SessionConfig) -> Router {
    let auth = McpAuth::builder()
        .bearer(session.verifier())
        .session_cookie(session.cookie_name())
        .endpoint("/mcp", EndpointPolicy::oauth_only())
        .default_policy(EndpointPolicy::open())
        .build()
        .unwrap();
    // The policy layer consumes the authenticators' outcomes; routes that are open but want to
    // know who is logged in (`/`, the OAuth routes for upstream flows) identify again.
    let identify = BearerLayer::new(session.verifier()).session_cookie(session.cookie_name());
    Router::new()
        .route("/mcp", post(mcp))
        .route("/", get(home).layer(identify.clone()))
        .route_service(
            &client.start_path("{provider}"),
            identify.layer(client.routes()),
        )
        .route_service(client.callback_path(), identify.layer(client.routes()))
        .route_service(client.logout_path(), client.routes())
        .layer(auth)
}

async fn mcp(Extension(id): Extension<Identity>) -> Json<Value> {
    Json(
        json!({"user_id": id.user_id(), "method": id.method().as_str(),
        "idp": id.claims().and_then(|c| c.get("idp")).cloned()}),
    )
}

async fn home(outcome: Option<Extension<BearerOutcome>>) -> Json<Value> {
    Json(match outcome {
        Some(Extension(BearerOutcome::Verified(id))) => {
            json!({"logged_in": true, "user_id": id.user_id()})
        }
        _ => json!({"logged_in": false}),
    })
}

// ---------------------------------------------------------------------------------------
// A browser: follows nothing by itself, keeps cookies (all hosts are 127.0.0.1).

#[derive(Default)]
pub struct Browser {
    pub http: reqwest::Client,
    pub cookies: Mutex<HashMap<String, String>>,
    pub accept_html: bool,
}

pub fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

impl Browser {
    pub fn new() -> Self {
        Self {
            http: no_redirects(),
            ..Self::default()
        }
    }

    pub fn cookie_header(&self) -> String {
        self.cookies
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub fn keep_cookies(&self, res: &reqwest::Response) {
        let mut jar = self.cookies.lock().unwrap();
        for set in res.headers().get_all("set-cookie") {
            let text = set.to_str().unwrap();
            let (pair, attrs) = text.split_once(';').unwrap_or((text, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if attrs.contains("Max-Age=0") {
                jar.remove(name);
            } else {
                jar.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    pub async fn get(&self, url: &str) -> reqwest::Response {
        let mut req = self.http.get(url);
        let cookies = self.cookie_header();
        if !cookies.is_empty() {
            req = req.header("cookie", cookies);
        }
        if self.accept_html {
            req = req.header("accept", "text/html,application/xhtml+xml");
        }
        let res = req.send().await.unwrap();
        self.keep_cookies(&res);
        res
    }

    /// `POST url` with the browser's cookies and no body, keeping the cookies it sets.
    pub async fn post(&self, url: &str) -> reqwest::Response {
        let res = self
            .http
            .post(url)
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep_cookies(&res);
        res
    }

    pub async fn post_mcp(&self, base: &str) -> reqwest::Response {
        self.http
            .post(format!("{base}/mcp"))
            .header("cookie", self.cookie_header())
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
            .send()
            .await
            .unwrap()
    }

    /// `GET start` → the provider's authorization URL.
    pub async fn start(&self, url: &str) -> String {
        let res = self.get(url).await;
        assert_eq!(res.status(), 302, "start: {}", res.text().await.unwrap());
        location(&res)
    }

    /// The provider's authorization URL → the callback URL it redirects to.
    pub async fn authorize(&self, url: &str) -> String {
        let res = self.get(url).await;
        assert_eq!(
            res.status(),
            302,
            "authorize: {}",
            res.text().await.unwrap()
        );
        location(&res)
    }

    /// start → provider → callback URL (not yet visited).
    pub async fn until_callback(&self, start_url: &str) -> String {
        let authorize = self.start(start_url).await;
        self.authorize(&authorize).await
    }

    /// The whole login; returns the callback's response.
    pub async fn login(&self, start_url: &str) -> reqwest::Response {
        let callback = self.until_callback(start_url).await;
        self.get(&callback).await
    }
}

pub fn location(res: &reqwest::Response) -> String {
    res.headers()["location"].to_str().unwrap().to_owned()
}

/// Replaces (or adds) one query parameter.
pub fn with_param(url: &str, name: &str, value: &str) -> String {
    let mut u = reqwest::Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .filter(|(k, _)| k != name)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    u.query_pairs_mut()
        .clear()
        .extend_pairs(pairs)
        .append_pair(name, value);
    u.to_string()
}

pub fn param(url: &str, name: &str) -> Option<String> {
    reqwest::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Checks a JSON OAuth error and returns the body.
pub async fn assert_oauth_error(res: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(res.status().as_u16(), status, "status of {code}");
    assert!(
        res.headers().get("location").is_none(),
        "an error never redirects"
    );
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.headers()["content-type"], "application/json");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], code, "{body}");
    assert!(body["timestamp"].as_str().is_some(), "{body}");
    body
}
