//! A local identity provider for the JWKS and introspection tests (and the JWKS bench): an
//! axum server on 127.0.0.1:0 serving discovery metadata, a JWK set and an introspection
//! endpoint. Tests change what it serves, make it slow or down, and read its hit counters.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

pub const RSA_PRIVATE: &[u8] = include_bytes!("../fixtures/rsa_private.pem");
pub const RSA_PUBLIC: &[u8] = include_bytes!("../fixtures/rsa_public.pem");
pub const RSA2_PRIVATE: &[u8] = include_bytes!("../fixtures/rsa2_private.pem");
pub const EC_PRIVATE: &[u8] = include_bytes!("../fixtures/ec_private.pem");
pub const ED_PRIVATE: &[u8] = include_bytes!("../fixtures/ed_private.pem");

/// The audience every test verifier is built with.
pub const AUDIENCE: &str = "https://mcp.example.com/mcp";

/// A signing key of the IdP and the JWK it publishes.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    pub jwk: Value,
}

impl SigningKey {
    pub fn new(kid: &str, alg: Algorithm, private_pem: &[u8]) -> Self {
        tower_mcp_auth::bearer::install_crypto_provider();
        let encoding = match alg {
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(private_pem),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(private_pem),
            _ => EncodingKey::from_rsa_pem(private_pem),
        }
        .expect("test key parses");
        let mut jwk = Jwk::from_encoding_key(&encoding, alg).expect("JWK from test key");
        jwk.common.key_id = Some(kid.to_owned());
        Self {
            kid: kid.to_owned(),
            alg,
            encoding,
            jwk: serde_json::to_value(&jwk).expect("JWK serializes"),
        }
    }

    pub fn rsa() -> Self {
        Self::new("rsa-1", Algorithm::RS256, RSA_PRIVATE)
    }

    pub fn rsa2() -> Self {
        Self::new("rsa-2", Algorithm::RS256, RSA2_PRIVATE)
    }

    pub fn ec() -> Self {
        Self::new("ec-1", Algorithm::ES256, EC_PRIVATE)
    }

    pub fn ed() -> Self {
        Self::new("ed-1", Algorithm::EdDSA, ED_PRIVATE)
    }

    /// Signs `claims` with this key, naming it by `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with(claims, Some(&self.kid), None)
    }

    pub fn sign_with(&self, claims: &Value, kid: Option<&str>, typ: Option<&str>) -> String {
        let mut header = Header::new(self.alg);
        header.kid = kid.map(str::to_owned);
        if let Some(typ) = typ {
            header.typ = Some(typ.to_owned());
        }
        encode(&header, claims, &self.encoding).expect("test token signs")
    }
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Where the IdP publishes its metadata.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Metadata {
    /// `/.well-known/oauth-authorization-server{path}` (RFC 8414).
    OAuth,
    /// Only `/.well-known/openid-configuration{path}` (OIDC, path-inserted).
    OpenIdInserted,
    /// Only `{path}/.well-known/openid-configuration` (OIDC, appended).
    OpenIdAppended,
}

/// Form fields and `Authorization` header of an introspection request.
pub type IntrospectionRequest = (HashMap<String, String>, Option<String>);

#[derive(Default)]
struct Counters {
    metadata: AtomicUsize,
    jwks: AtomicUsize,
    introspection: AtomicUsize,
}

struct State_ {
    issuer: String,
    issuer_path: String,
    metadata: Metadata,
    /// `issuer` announced in the metadata; differs from the real one in mismatch tests.
    announced_issuer: Mutex<Option<String>>,
    jwks: Mutex<Value>,
    down: AtomicBool,
    delay: Mutex<Duration>,
    hits: Counters,
    /// Introspection answers by token; unknown tokens are inactive.
    answers: Mutex<HashMap<String, Value>>,
    /// Client credentials the introspection endpoint accepts.
    client: (String, String),
    /// Form fields and whether `Authorization: Basic` was used, of the last introspection.
    last_introspection: Mutex<Option<IntrospectionRequest>>,
}

/// Handle on a running IdP.
#[derive(Clone)]
pub struct Idp {
    pub base: String,
    state: Arc<State_>,
}

impl Idp {
    /// Starts an IdP whose issuer is its base URL, publishing `keys`.
    pub async fn start(keys: &[&SigningKey]) -> Self {
        Self::start_with("", Metadata::OAuth, keys).await
    }

    /// Starts an IdP whose issuer is `base + issuer_path`, with metadata at `metadata`.
    pub async fn start_with(issuer_path: &str, metadata: Metadata, keys: &[&SigningKey]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(State_ {
            issuer: format!("{base}{issuer_path}"),
            issuer_path: issuer_path.to_owned(),
            metadata,
            announced_issuer: Mutex::new(None),
            jwks: Mutex::new(Value::Null),
            down: AtomicBool::new(false),
            delay: Mutex::new(Duration::ZERO),
            hits: Counters::default(),
            answers: Mutex::new(HashMap::new()),
            client: ("mcp-server".into(), "s3cr3t:&=".into()),
            last_introspection: Mutex::new(None),
        });
        let idp = Self { base, state };
        idp.set_keys(keys);
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&idp.state));
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        idp
    }

    pub fn issuer(&self) -> String {
        self.state.issuer.clone()
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/jwks", self.base)
    }

    pub fn introspection_url(&self) -> String {
        format!("{}/introspect", self.base)
    }

    pub fn client_id(&self) -> &str {
        &self.state.client.0
    }

    pub fn client_secret(&self) -> &str {
        &self.state.client.1
    }

    /// Publishes exactly these keys.
    pub fn set_keys(&self, keys: &[&SigningKey]) {
        let jwks: Vec<Value> = keys.iter().map(|k| k.jwk.clone()).collect();
        self.set_jwks(json!({ "keys": jwks }));
    }

    /// Publishes this document as the JWK set.
    pub fn set_jwks(&self, doc: Value) {
        *self.state.jwks.lock().unwrap() = doc;
    }

    /// Announces another issuer in the metadata.
    pub fn announce_issuer(&self, issuer: &str) {
        *self.state.announced_issuer.lock().unwrap() = Some(issuer.to_owned());
    }

    /// While down, every endpoint answers 503.
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// Every answer waits this long first.
    pub fn set_delay(&self, delay: Duration) {
        *self.state.delay.lock().unwrap() = delay;
    }

    /// The introspection endpoint answers `answer` for `token`.
    pub fn set_introspection(&self, token: &str, answer: Value) {
        self.state
            .answers
            .lock()
            .unwrap()
            .insert(token.to_owned(), answer);
    }

    pub fn jwks_hits(&self) -> usize {
        self.state.hits.jwks.load(Ordering::SeqCst)
    }

    pub fn metadata_hits(&self) -> usize {
        self.state.hits.metadata.load(Ordering::SeqCst)
    }

    pub fn introspection_hits(&self) -> usize {
        self.state.hits.introspection.load(Ordering::SeqCst)
    }

    /// Form fields and `Authorization` header of the last introspection request.
    pub fn last_introspection(&self) -> Option<IntrospectionRequest> {
        self.state.last_introspection.lock().unwrap().clone()
    }

    /// Claims of a valid RFC 9068 access token from this IdP for `sub`.
    pub fn claims(&self, sub: &str) -> Value {
        json!({
            "iss": self.issuer(), "sub": sub, "aud": AUDIENCE,
            "exp": now() + 3600, "iat": now(), "scope": "tools/call tools/list",
            "client_id": "inspector", "jti": "t-1",
        })
    }
}

async fn handle(
    State(state): State<Arc<State_>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> Response {
    let delay = *state.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let path = uri.path();
    let p = &state.issuer_path;
    let metadata_path = match state.metadata {
        Metadata::OAuth => format!("/.well-known/oauth-authorization-server{p}"),
        Metadata::OpenIdInserted => format!("/.well-known/openid-configuration{p}"),
        Metadata::OpenIdAppended => format!("{p}/.well-known/openid-configuration"),
    };
    if path == "/moved/jwks" {
        return (StatusCode::TEMPORARY_REDIRECT, [("location", "/jwks")]).into_response();
    }
    let counter = if path == metadata_path {
        &state.hits.metadata
    } else if path == "/jwks" {
        &state.hits.jwks
    } else if path == "/introspect" {
        &state.hits.introspection
    } else {
        return StatusCode::NOT_FOUND.into_response();
    };
    counter.fetch_add(1, Ordering::SeqCst);
    if state.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    match (method, path) {
        (Method::GET, "/jwks") => Json(state.jwks.lock().unwrap().clone()).into_response(),
        (Method::POST, "/introspect") => introspect(&state, &headers, &body),
        (Method::GET, _) => {
            let issuer = state
                .announced_issuer
                .lock()
                .unwrap()
                .clone()
                .unwrap_or_else(|| state.issuer.clone());
            let base = state
                .issuer
                .strip_suffix(state.issuer_path.as_str())
                .unwrap_or(&state.issuer)
                .to_owned();
            Json(json!({
                "issuer": issuer,
                "jwks_uri": format!("{base}/jwks"),
                "introspection_endpoint": format!("{base}/introspect"),
            }))
            .into_response()
        }
        _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
    }
}

fn introspect(state: &State_, headers: &HeaderMap, body: &str) -> Response {
    let form: HashMap<String, String> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let basic = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    *state.last_introspection.lock().unwrap() = Some((form.clone(), basic.clone()));
    let (id, secret) = &state.client;
    let by_basic = basic.as_deref().and_then(decode_basic) == Some((id.clone(), secret.clone()));
    let by_post = form.get("client_id") == Some(id) && form.get("client_secret") == Some(secret);
    if !by_basic && !by_post {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let answer = form
        .get("token")
        .and_then(|t| state.answers.lock().unwrap().get(t).cloned())
        .unwrap_or_else(|| json!({"active": false}));
    Json(answer).into_response()
}

/// `Basic base64(urlencode(id):urlencode(secret))` → (id, secret), per RFC 6749 2.3.1.
fn decode_basic(value: &str) -> Option<(String, String)> {
    use base64::Engine;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let pair = String::from_utf8(decoded).ok()?;
    let (id, secret) = pair.split_once(':')?;
    let unescape = |s: &str| {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Some((unescape(id)?, unescape(secret)?))
}

/// A base URL on which nothing listens.
pub async fn closed_port_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}
