//! [`JwksVerifier`]: JWT access tokens checked against an identity provider's published keys.

mod discovery;
mod keys;
mod refresh;

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use jsonwebtoken::{Algorithm, Header};
use reqwest::{Client, Url};

use crate::deferred::Deferred;
use crate::error::TokenRejection;
use crate::identity::Identity;

use super::claims::{identity_from_claims, normalize_token_type, token_type_accepted};
use super::crypto::install_crypto_provider;
use super::jwt::{rejection, DEFAULT_LEEWAY};
use super::remote::{default_client, get_json_with_max_age, parse_url, FetchError, UrlError};
use super::verifier::{TokenError, TokenVerifier};

use keys::{ClaimRules, KeySet, Lookup, RawKeySet, ASYMMETRIC};
use refresh::{ensure_running, Signals};

/// A configuration error found by [`JwksVerifierBuilder::build`].
///
/// ```
/// use tower_mcp_auth::{JwksConfigError, JwksVerifier};
///
/// let err = JwksVerifier::from_issuer("auth.example.com").audience("https://mcp/mcp").build();
/// assert!(matches!(err, Err(JwksConfigError::InvalidUrl(_))));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwksConfigError {
    /// The issuer or JWKS URL is not an absolute `http(s)` URL.
    #[error("invalid URL {0}")]
    InvalidUrl(String),
    /// Plain `http` to a host that is not loopback; see
    /// [`allow_http`](JwksVerifierBuilder::allow_http).
    #[error("refusing plain http for {0}: keys fetched without TLS can be replaced in transit")]
    InsecureUrl(String),
    /// No audience was configured. Without one, a token issued for any other resource of the
    /// same identity provider would be accepted (RFC 8707).
    #[error("a JWKS verifier needs an audience (your resource URL)")]
    MissingAudience,
    /// The algorithm allowlist holds no asymmetric algorithm (HMAC is never taken from a JWKS).
    #[error("the algorithm allowlist has no asymmetric algorithm")]
    NoAlgorithms,
    /// The default HTTP client could not be built (no TLS roots, ...).
    #[error("HTTP client: {0}")]
    HttpClient(String),
}

impl From<UrlError> for JwksConfigError {
    fn from(e: UrlError) -> Self {
        match e {
            UrlError::Invalid(m) => JwksConfigError::InvalidUrl(m),
            UrlError::Insecure(m) => JwksConfigError::InsecureUrl(m),
        }
    }
}

/// Why fetching the keys failed. The verifier keeps its last good keys meanwhile.
///
/// ```
/// use std::time::Duration;
/// use tower_mcp_auth::{JwksError, JwksVerifier};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// // Nothing listens on port 9 of the loopback interface.
/// let verifier = JwksVerifier::from_jwks_url("http://127.0.0.1:9/jwks")
///     .audience("https://mcp.example.com/mcp")
///     .fetch_timeout(Duration::from_millis(500))
///     .build()
///     .unwrap();
/// let err = verifier.refresh().await.unwrap_err();
/// assert!(matches!(err, JwksError::Fetch { .. } | JwksError::Timeout), "{err}");
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// A request to the identity provider failed (unreachable, timeout, not 200, bad JSON).
    #[error("{url}: {reason}")]
    Fetch {
        /// The URL fetched.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The discovery document is for another issuer (RFC 8414 section 3.3).
    #[error("discovery document names issuer {found:?}, expected {expected:?}")]
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// The document's `issuer`.
        found: Option<String>,
    },
    /// The discovery document has no usable `jwks_uri`.
    #[error("discovery document has no usable jwks_uri: {0}")]
    NoJwksUri(String),
    /// The JWK set holds no key this verifier can use.
    #[error("the JWK set has no usable signing key")]
    NoUsableKeys,
    /// The whole attempt took longer than its budget (twice the fetch timeout).
    #[error("fetching keys took too long")]
    Timeout,
}

impl JwksError {
    fn fetch(url: &Url, e: FetchError) -> Self {
        JwksError::Fetch {
            url: url.to_string(),
            reason: e.to_string(),
        }
    }
}

/// Where the keys come from.
enum Source {
    Jwks(Url),
    /// Discovery first; the found `jwks_uri` is kept until a fetch from it fails.
    Issuer {
        issuer: String,
        url: Url,
        jwks_uri: Mutex<Option<Url>>,
    },
}

impl Source {
    fn describe(&self) -> String {
        match self {
            Source::Jwks(url) => url.to_string(),
            Source::Issuer { issuer, .. } => format!("issuer {issuer}"),
        }
    }
}

#[derive(Debug, Clone)]
struct Config {
    fetch_timeout: Duration,
    refresh_interval: Duration,
    cooldown: Duration,
    allow_http: bool,
}

/// State shared by clones of one verifier and (weakly) its refresh task.
struct Shared {
    /// `None` until the first successful fetch. Read lock-free on every request.
    keys: ArcSwapOption<KeySet>,
    rules: ClaimRules,
    source: Source,
    client: Client,
    config: Config,
    signals: Arc<Signals>,
    /// Why the last attempt failed, for the 503's log line while no keys exist.
    last_error: Mutex<Option<JwksError>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.signals.close();
    }
}

impl Shared {
    /// Budget of one attempt: discovery plus the JWK set.
    fn attempt_budget(&self) -> Duration {
        self.config.fetch_timeout.saturating_mul(2)
    }

    /// Verifies against the keys held now.
    fn verify_loaded(&self, token: &str, header: &Header) -> Result<Identity, TokenError> {
        match self.keys.load().as_deref() {
            Some(keys) => match keys.verify(token, header) {
                Lookup::Verified(claims) => Ok(identity_from_claims(claims)),
                Lookup::Rejected(reason) => Err(reason.into()),
                Lookup::UnknownKey => Err(TokenRejection::UnknownKey.into()),
            },
            None => Err(self.unavailable()),
        }
    }

    /// The answer for a key not held when no refresh can be made: the key is unknown (401),
    /// or, with no keys at all, the verifier cannot decide (503).
    fn without_refresh(&self, have_keys: bool, why: Option<&str>) -> TokenError {
        match (have_keys, why) {
            (true, _) => TokenRejection::UnknownKey.into(),
            (false, Some(why)) => TokenError::Unavailable(why.to_owned()),
            (false, None) => self.unavailable(),
        }
    }

    fn unavailable(&self) -> TokenError {
        let last = self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        TokenError::Unavailable(match last {
            Some(e) => format!("no JWKS keys yet from {}: {e}", self.source.describe()),
            None => format!("no JWKS keys yet from {}", self.source.describe()),
        })
    }

    /// One attempt: discovery if needed, then the JWK set. Keeps the old keys on failure.
    /// Fetches and swaps in the keys; on success, how many keys and how long the identity
    /// provider says they stay fresh.
    async fn fetch_and_store(&self) -> Result<(usize, Option<Duration>), JwksError> {
        let result = match tokio::time::timeout(self.attempt_budget(), self.fetch()).await {
            Ok(result) => result,
            Err(_) => Err(JwksError::Timeout),
        };
        let mut last_error = self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok((keys, max_age)) => {
                let count = keys.len();
                self.keys.store(Some(Arc::new(keys)));
                *last_error = None;
                tracing::debug!(keys = count, ?max_age, source = %self.source.describe(), "JWKS refreshed");
                Ok((count, max_age))
            }
            Err(e) => {
                let stale = self.keys.load().is_some();
                tracing::warn!(error = %e, serving_stale_keys = stale, "JWKS refresh failed");
                *last_error = Some(e.clone());
                Err(e)
            }
        }
    }

    async fn fetch(&self) -> Result<(KeySet, Option<Duration>), JwksError> {
        let timeout = self.config.fetch_timeout;
        let url = self.jwks_uri().await?;
        let (raw, max_age) =
            match get_json_with_max_age::<RawKeySet>(&self.client, &url, timeout).await {
                Ok(raw) => raw,
                Err(e) => {
                    if let Source::Issuer { jwks_uri, .. } = &self.source {
                        // The issuer may have moved its keys: discover again next time.
                        *jwks_uri.lock().unwrap_or_else(PoisonError::into_inner) = None;
                    }
                    return Err(JwksError::fetch(&url, e));
                }
            };
        let keys = KeySet::prepare(raw, &self.rules);
        if keys.len() == 0 {
            return Err(JwksError::NoUsableKeys);
        }
        Ok((keys, max_age))
    }

    async fn jwks_uri(&self) -> Result<Url, JwksError> {
        match &self.source {
            Source::Jwks(url) => Ok(url.clone()),
            Source::Issuer {
                issuer,
                url,
                jwks_uri,
            } => {
                let known = jwks_uri
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                if let Some(known) = known {
                    return Ok(known);
                }
                let found = discovery::discover_jwks_uri(
                    &self.client,
                    issuer,
                    url,
                    self.config.fetch_timeout,
                    self.config.allow_http,
                )
                .await?;
                *jwks_uri.lock().unwrap_or_else(PoisonError::into_inner) = Some(found.clone());
                Ok(found)
            }
        }
    }
}

/// Verifies JWT access tokens with the keys an identity provider publishes as a JWK set
/// (RFC 7517), found directly or through the issuer's metadata (RFC 8414 / OpenID Connect
/// Discovery).
///
/// What is checked:
/// - the signature, with the key named by `kid`; each key allows only the algorithms its JWK
///   allows (`kty`, `crv`, `alg`); `alg: none`, HMAC and keys of other types are refused;
/// - `aud` names one of the configured audiences (required: your resource URL, RFC 8707);
/// - `iss` equals the issuer when built [`from_issuer`](Self::from_issuer) (or set with
///   [`issuer`](JwksVerifierBuilder::issuer));
/// - `exp` is present and not past, `nbf` not in the future, both with a leeway (60 s).
///
/// RFC 9068 access tokens (`typ: at+jwt`, `scope`, `client_id`) are accepted; the identity
/// comes from [`identity_from_claims`]. Header `jku` / `jwk` / `x5u` are ignored: keys come
/// only from the configured source.
///
/// How keys are kept:
/// - held in memory and read without locks; a token whose `kid` is known is verified at once
///   ([`Deferred::ready`], no await);
/// - a background task refreshes them every
///   [`refresh_interval`](JwksVerifierBuilder::refresh_interval) and stops when the last
///   clone of the verifier is dropped;
/// - an unknown `kid` (a key rotation) triggers a refresh at once, at most one per
///   [`unknown_kid_cooldown`](JwksVerifierBuilder::unknown_kid_cooldown); concurrent requests
///   share one fetch, and while the cooldown runs unknown `kid`s are refused without a fetch;
/// - while the identity provider is down the last good keys stay in use; before any fetch
///   succeeded, tokens get [`TokenError::Unavailable`] (503 `temporarily_unavailable`).
///
/// Needs a Tokio runtime. Put a [`CachedVerifier`](crate::CachedVerifier) in front to skip
/// the signature check for tokens seen before.
///
/// Until keys were fetched once, every token is answered with
/// [`TokenError::Unavailable`], which the policy layer turns into 503:
///
/// ```
/// use std::time::Duration;
/// use tower_mcp_auth::{JwksVerifier, TokenError, TokenVerifier};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let verifier = JwksVerifier::from_jwks_url("http://127.0.0.1:9/jwks") // nothing listens
///     .audience("https://mcp.example.com/mcp")
///     .fetch_timeout(Duration::from_millis(500))
///     .build()
///     .unwrap();
/// // Header {"alg":"RS256","kid":"k1"}: a key the verifier cannot know yet.
/// let token = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJhIn0.c2ln";
/// assert!(matches!(verifier.verify(token).await, Err(TokenError::Unavailable(_))));
/// # }
/// ```
///
/// A typical setup:
///
/// ```no_run
/// use tower_mcp_auth::{JwksVerifier, McpAuth};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let verifier = JwksVerifier::from_issuer("https://auth.example.com")
///     .audience("https://mcp.example.com/mcp")
///     .build()?;
/// // Optional: fail at startup rather than at the first request if the IdP is unreachable.
/// verifier.refresh().await?;
/// let auth = McpAuth::builder().bearer(verifier).build()?;
/// # let _ = auth;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct JwksVerifier {
    shared: Arc<Shared>,
}

impl JwksVerifier {
    /// Default [`refresh_interval`](JwksVerifierBuilder::refresh_interval): 5 minutes.
    ///
    /// ```
    /// # use std::time::Duration;
    /// assert_eq!(tower_mcp_auth::JwksVerifier::DEFAULT_REFRESH_INTERVAL, Duration::from_secs(300));
    /// ```
    pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(300);
    /// Default [`unknown_kid_cooldown`](JwksVerifierBuilder::unknown_kid_cooldown): 5 s.
    ///
    /// ```
    /// # use std::time::Duration;
    /// assert_eq!(tower_mcp_auth::JwksVerifier::DEFAULT_UNKNOWN_KID_COOLDOWN, Duration::from_secs(5));
    /// ```
    pub const DEFAULT_UNKNOWN_KID_COOLDOWN: Duration = Duration::from_secs(5);
    /// Default [`fetch_timeout`](JwksVerifierBuilder::fetch_timeout): 5 s.
    ///
    /// ```
    /// # use std::time::Duration;
    /// assert_eq!(tower_mcp_auth::JwksVerifier::DEFAULT_FETCH_TIMEOUT, Duration::from_secs(5));
    /// ```
    pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(5);

    /// Keys from the issuer's metadata: `/.well-known/oauth-authorization-server`, then
    /// `/.well-known/openid-configuration` (path-inserted for issuers with a path), whose
    /// `jwks_uri` gives the keys. Tokens must carry this exact `iss`.
    ///
    /// ```
    /// let builder = tower_mcp_auth::JwksVerifier::from_issuer("https://auth.example.com/tenant-1");
    /// # let _ = builder;
    /// ```
    pub fn from_issuer(issuer: impl Into<String>) -> JwksVerifierBuilder {
        let issuer = issuer.into();
        JwksVerifierBuilder::new(SourceSpec::Issuer(issuer.clone())).issuer(issuer)
    }

    /// Keys from a JWK set URL. `iss` is not checked unless
    /// [`issuer`](JwksVerifierBuilder::issuer) is set.
    ///
    /// ```
    /// let builder = tower_mcp_auth::JwksVerifier::from_jwks_url("https://auth.example.com/jwks.json")
    ///     .issuer("https://auth.example.com");
    /// # let _ = builder;
    /// ```
    pub fn from_jwks_url(url: impl Into<String>) -> JwksVerifierBuilder {
        JwksVerifierBuilder::new(SourceSpec::Jwks(url.into()))
    }

    /// Fetches the keys now, ignoring the cooldown, and returns how many are usable.
    ///
    /// Not needed for operation (the first request that needs keys fetches them); call it at
    /// startup to fail fast or warm up. On failure the previous keys stay in use.
    ///
    /// # Errors
    ///
    /// The identity provider is unreachable, slow, or serves no usable key.
    ///
    /// ```no_run
    /// # async fn demo() {
    /// let verifier = tower_mcp_auth::JwksVerifier::from_issuer("https://auth.example.com")
    ///     .audience("https://mcp.example.com/mcp")
    ///     .build()
    ///     .unwrap();
    /// match verifier.refresh().await {
    ///     Ok(keys) => println!("{keys} signing keys"),
    ///     Err(e) => eprintln!("identity provider not ready: {e}"),
    /// }
    /// # }
    /// ```
    pub async fn refresh(&self) -> Result<usize, JwksError> {
        ensure_running(&self.shared);
        let _attempt = self.shared.signals.attempt();
        self.shared.fetch_and_store().await.map(|(count, _)| count)
    }

    /// Verifies with the keys held now, or fetches first (boxed) when the token names a key
    /// not held yet.
    fn verify_token(&self, token: &str) -> Deferred<Result<Identity, TokenError>> {
        let header = match jsonwebtoken::decode_header(token) {
            Ok(header) => header,
            Err(e) => return Deferred::ready(Err(rejection(e.kind()).into())),
        };
        if !token_type_accepted(&self.shared.rules.token_types, header.typ.as_deref()) {
            return Deferred::ready(Err(TokenRejection::WrongType.into()));
        }
        if !self.shared.rules.algorithms.contains(&header.alg) {
            // HMAC, or an algorithm the application excluded: no key could ever verify it,
            // so it must not trigger a fetch either.
            return Deferred::ready(Err(TokenRejection::AlgorithmNotAllowed.into()));
        }
        let shared = &self.shared;
        let have_keys = match shared.keys.load().as_deref() {
            Some(keys) => match keys.verify(token, &header) {
                Lookup::Verified(claims) => {
                    return Deferred::ready(Ok(identity_from_claims(claims)))
                }
                Lookup::Rejected(reason) => return Deferred::ready(Err(reason.into())),
                Lookup::UnknownKey => true,
            },
            None => false,
        };
        let signals = &shared.signals;
        let fetching = signals.fetching();
        if !fetching && signals.cooling_down(shared.config.cooldown) {
            return Deferred::ready(Err(shared.without_refresh(have_keys, None)));
        }
        if tokio::runtime::Handle::try_current().is_err() {
            let why = "JwksVerifier needs a Tokio runtime to fetch keys";
            return Deferred::ready(Err(shared.without_refresh(have_keys, Some(why))));
        }
        ensure_running(shared);
        let shared = Arc::clone(shared);
        let token = token.to_owned();
        Deferred::boxed(async move {
            // Waiting longer than one attempt's budget would only hold the request.
            let budget = shared.attempt_budget() + Duration::from_millis(100);
            shared.signals.wait_for_fetch(!fetching, budget).await;
            shared.verify_loaded(&token, &header)
        })
    }
}

impl TokenVerifier for JwksVerifier {
    fn verify(&self, token: &str) -> Deferred<Result<Identity, TokenError>> {
        self.verify_token(token)
    }
}

impl fmt::Debug for JwksVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.shared;
        f.debug_struct("JwksVerifier")
            .field("source", &s.source.describe())
            .field("audiences", &s.rules.audiences)
            .field("issuer", &s.rules.issuer)
            .field("keys", &s.keys.load().as_deref().map(KeySet::len))
            .field("config", &s.config)
            .finish()
    }
}

enum SourceSpec {
    Jwks(String),
    Issuer(String),
}

/// Configures a [`JwksVerifier`]; see [`JwksVerifier::from_issuer`] and
/// [`JwksVerifier::from_jwks_url`].
#[must_use]
pub struct JwksVerifierBuilder {
    source: SourceSpec,
    audiences: Vec<String>,
    issuer: Option<String>,
    leeway: Duration,
    algorithms: Vec<Algorithm>,
    token_types: Vec<String>,
    config: Config,
    client: Option<Client>,
}

impl JwksVerifierBuilder {
    fn new(source: SourceSpec) -> Self {
        Self {
            source,
            audiences: Vec::new(),
            issuer: None,
            token_types: Vec::new(),
            leeway: DEFAULT_LEEWAY,
            algorithms: ASYMMETRIC.to_vec(),
            config: Config {
                fetch_timeout: JwksVerifier::DEFAULT_FETCH_TIMEOUT,
                refresh_interval: JwksVerifier::DEFAULT_REFRESH_INTERVAL,
                cooldown: JwksVerifier::DEFAULT_UNKNOWN_KID_COOLDOWN,
                allow_http: false,
            },
            client: None,
        }
    }

    /// Accepts tokens whose `aud` names `audience` (your resource URL, byte for byte as in
    /// your protected resource metadata). Required; may be called more than once.
    ///
    /// ```
    /// # use tower_mcp_auth::JwksVerifier;
    /// let b = JwksVerifier::from_issuer("https://auth.example.com")
    ///     .audience("https://mcp.example.com/mcp");
    /// # let _ = b;
    /// ```
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Accepts only tokens whose header `typ` is `token_type`, for example `at+jwt` (RFC 9068
    /// access tokens); see [`JwtVerifierBuilder::token_type`](crate::JwtVerifierBuilder::token_type).
    ///
    /// ```
    /// # use tower_mcp_auth::JwksVerifier;
    /// let b = JwksVerifier::from_issuer("https://auth.example.com").token_type("at+jwt");
    /// # let _ = b;
    /// ```
    pub fn token_type(mut self, token_type: impl AsRef<str>) -> Self {
        self.token_types
            .push(normalize_token_type(token_type.as_ref()));
        self
    }

    /// Requires tokens' `iss` to equal `issuer` (set already by
    /// [`from_issuer`](JwksVerifier::from_issuer); this replaces it).
    ///
    /// ```
    /// # use tower_mcp_auth::JwksVerifier;
    /// let b = JwksVerifier::from_jwks_url("https://auth.example.com/jwks")
    ///     .issuer("https://auth.example.com");
    /// # let _ = b;
    /// ```
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Clock-skew allowance for `exp` / `nbf` (default 60 s).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use tower_mcp_auth::JwksVerifier;
    /// let b = JwksVerifier::from_issuer("https://auth.example.com").leeway(Duration::from_secs(30));
    /// # let _ = b;
    /// ```
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Restricts the algorithms accepted from any key (default: RS256/384/512, PS256/384/512,
    /// ES256, ES384, EdDSA). HMAC algorithms in the list are ignored: keys from a JWKS are
    /// public.
    ///
    /// ```
    /// # use tower_mcp_auth::{Algorithm, JwksVerifier};
    /// let b = JwksVerifier::from_issuer("https://auth.example.com")
    ///     .algorithms([Algorithm::RS256, Algorithm::ES256]);
    /// # let _ = b;
    /// ```
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algorithms
            .into_iter()
            .filter(|a| ASYMMETRIC.contains(a))
            .collect();
        self
    }

    /// How often the keys are fetched in the background (default 5 minutes). When the
    /// identity provider answers with a shorter `Cache-Control: max-age`, the next fetch comes
    /// that much sooner (never sooner than a minute after the last one); a longer one does not
    /// stretch the interval.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use tower_mcp_auth::JwksVerifier;
    /// let b = JwksVerifier::from_issuer("https://auth.example.com")
    ///     .refresh_interval(Duration::from_secs(600));
    /// # let _ = b;
    /// ```
    pub fn refresh_interval(mut self, interval: Duration) -> Self {
        // A zero interval would spin; one second is the floor.
        self.config.refresh_interval = interval.max(Duration::from_secs(1));
        self
    }

    /// The least time between two fetches caused by unknown `kid`s (default 5 s), counted
    /// from the end of the last fetch, so a slow identity provider is not asked again the
    /// moment it answers. A rotation is picked up by the first token that uses
    /// the new key; a flood of made-up `kid`s causes at most one fetch per cooldown.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use tower_mcp_auth::JwksVerifier;
    /// let b = JwksVerifier::from_issuer("https://auth.example.com")
    ///     .unknown_kid_cooldown(Duration::from_secs(10));
    /// # let _ = b;
    /// ```
    pub fn unknown_kid_cooldown(mut self, cooldown: Duration) -> Self {
        self.config.cooldown = cooldown;
        self
    }

    /// Timeout of each request to the identity provider (default 5 s). A request waiting for
    /// keys waits at most twice this (discovery plus JWK set).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use tower_mcp_auth::JwksVerifier;
    /// let b = JwksVerifier::from_issuer("https://auth.example.com")
    ///     .fetch_timeout(Duration::from_secs(2));
    /// # let _ = b;
    /// ```
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.config.fetch_timeout = timeout;
        self
    }

    /// Allows plain `http` URLs to hosts other than loopback (default: only `https`, or
    /// `http` to `localhost` / `127.0.0.1` / `::1`). Keys fetched without TLS can be replaced
    /// by anyone on the path: use only inside a trusted network.
    ///
    /// ```
    /// # use tower_mcp_auth::JwksVerifier;
    /// let b = JwksVerifier::from_issuer("http://keycloak.internal:8080/realms/mcp").allow_http(true);
    /// # let _ = b;
    /// ```
    pub fn allow_http(mut self, allow: bool) -> Self {
        self.config.allow_http = allow;
        self
    }

    /// Uses this client (custom roots, proxy, ...) instead of the default one (rustls with
    /// the platform's roots). The fetch timeout still applies per request.
    ///
    /// ```
    /// # use tower_mcp_auth::JwksVerifier;
    /// let client = reqwest::Client::new();
    /// let b = JwksVerifier::from_issuer("https://auth.example.com").http_client(client);
    /// # let _ = b;
    /// ```
    pub fn http_client(mut self, client: Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Validates the configuration. Fetches nothing: the refresh task (started here if a
    /// Tokio runtime is running, else at the first request) fetches the keys.
    ///
    /// # Errors
    ///
    /// A URL that is not `https` (or loopback `http`), no audience, an empty algorithm
    /// allowlist, or a default HTTP client that cannot be built.
    ///
    /// ```
    /// use tower_mcp_auth::{JwksConfigError, JwksVerifier};
    ///
    /// let missing_audience = JwksVerifier::from_issuer("https://auth.example.com").build();
    /// assert!(matches!(missing_audience, Err(JwksConfigError::MissingAudience)));
    ///
    /// let plain_http = JwksVerifier::from_jwks_url("http://auth.example.com/jwks")
    ///     .audience("https://mcp.example.com/mcp")
    ///     .build();
    /// assert!(matches!(plain_http, Err(JwksConfigError::InsecureUrl(_))));
    /// ```
    pub fn build(self) -> Result<JwksVerifier, JwksConfigError> {
        install_crypto_provider();
        if self.audiences.is_empty() {
            return Err(JwksConfigError::MissingAudience);
        }
        if self.algorithms.is_empty() {
            return Err(JwksConfigError::NoAlgorithms);
        }
        let allow_http = self.config.allow_http;
        let source = match self.source {
            SourceSpec::Jwks(raw) => Source::Jwks(parse_url(&raw, allow_http)?),
            SourceSpec::Issuer(issuer) => Source::Issuer {
                url: parse_url(&issuer, allow_http)?,
                issuer,
                jwks_uri: Mutex::new(None),
            },
        };
        let client = match self.client {
            Some(client) => client,
            None => default_client(self.config.fetch_timeout, true)
                .map_err(JwksConfigError::HttpClient)?,
        };
        let shared = Arc::new(Shared {
            keys: ArcSwapOption::empty(),
            rules: ClaimRules {
                audiences: self.audiences,
                issuer: self.issuer,
                leeway: self.leeway,
                algorithms: self.algorithms,
                token_types: self.token_types,
            },
            source,
            client,
            config: self.config,
            signals: Arc::new(Signals::new()),
            last_error: Mutex::new(None),
        });
        ensure_running(&shared);
        Ok(JwksVerifier { shared })
    }
}

impl fmt::Debug for JwksVerifierBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            SourceSpec::Jwks(url) => url,
            SourceSpec::Issuer(issuer) => issuer,
        };
        f.debug_struct("JwksVerifierBuilder")
            .field("source", source)
            .field("audiences", &self.audiences)
            .field("issuer", &self.issuer)
            .field("leeway", &self.leeway)
            .field("algorithms", &self.algorithms)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
