//! [`JwksVerifier`]: JWT access tokens checked against an identity provider's published keys.

mod builder;
mod discovery;
mod error;
mod keys;
mod refresh;

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use jsonwebtoken::Header;
use reqwest::{Client, Url};

use crate::deferred::Deferred;
use crate::error::TokenRejection;
use crate::identity::Identity;

use super::claims::{identity_from_claims, token_type_accepted};
use super::jwt::rejection;
use super::remote::get_json_with_max_age;
use crate::bearer::verifier::{TokenError, TokenVerifier};

pub use builder::JwksVerifierBuilder;
pub use error::{JwksConfigError, JwksError};

use builder::SourceSpec;
use keys::{ClaimRules, KeySet, Lookup, RawKeySet};
use refresh::{ensure_running, Signals};

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
        let timer = crate::metrics::Timer::start();
        let result = self.verify_with_keys(token, header);
        timer.verified("jwks", &result);
        result
    }

    fn verify_with_keys(&self, token: &str, header: &Header) -> Result<Identity, TokenError> {
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
                crate::metrics::jwks_refresh(true);
                Ok((count, max_age))
            }
            Err(e) => {
                let stale = self.keys.load().is_some();
                tracing::warn!(error = %e, serving_stale_keys = stale, "JWKS refresh failed");
                crate::metrics::jwks_refresh(false);
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
/// Needs a Tokio runtime. Put a [`CachedVerifier`](crate::bearer::CachedVerifier) in front to skip
/// the signature check for tokens seen before.
///
/// Until keys were fetched once, every token is answered with
/// [`TokenError::Unavailable`], which the policy layer turns into 503:
///
/// ```
/// use std::time::Duration;
/// use tower_mcp_auth::{TokenVerifier, bearer::{JwksVerifier, TokenError}};
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
/// use tower_mcp_auth::{bearer::JwksVerifier, McpAuth};
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
    /// assert_eq!(tower_mcp_auth::bearer::JwksVerifier::DEFAULT_REFRESH_INTERVAL, Duration::from_secs(300));
    /// ```
    pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(300);
    /// Default [`unknown_kid_cooldown`](JwksVerifierBuilder::unknown_kid_cooldown): 5 s.
    ///
    /// ```
    /// # use std::time::Duration;
    /// assert_eq!(tower_mcp_auth::bearer::JwksVerifier::DEFAULT_UNKNOWN_KID_COOLDOWN, Duration::from_secs(5));
    /// ```
    pub const DEFAULT_UNKNOWN_KID_COOLDOWN: Duration = Duration::from_secs(5);
    /// Default [`fetch_timeout`](JwksVerifierBuilder::fetch_timeout): 5 s.
    ///
    /// ```
    /// # use std::time::Duration;
    /// assert_eq!(tower_mcp_auth::bearer::JwksVerifier::DEFAULT_FETCH_TIMEOUT, Duration::from_secs(5));
    /// ```
    pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(5);

    /// Keys from the issuer's metadata: `/.well-known/oauth-authorization-server`, then
    /// `/.well-known/openid-configuration` (path-inserted for issuers with a path), whose
    /// `jwks_uri` gives the keys. Tokens must carry this exact `iss`.
    ///
    /// ```
    /// let builder = tower_mcp_auth::bearer::JwksVerifier::from_issuer("https://auth.example.com/tenant-1");
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
    /// let builder = tower_mcp_auth::bearer::JwksVerifier::from_jwks_url("https://auth.example.com/jwks.json")
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
    /// let verifier = tower_mcp_auth::bearer::JwksVerifier::from_issuer("https://auth.example.com")
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
