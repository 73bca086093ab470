//! [`JwksVerifierBuilder`]: where the keys come from and what tokens must satisfy.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use jsonwebtoken::Algorithm;
use reqwest::Client;

use super::keys::{ClaimRules, ASYMMETRIC};
use super::refresh::{ensure_running, Signals};
use super::{Config, JwksConfigError, JwksVerifier, Shared, Source};
use crate::bearer::verify::claims::normalize_token_type;
use crate::bearer::verify::crypto::install_crypto_provider;
use crate::bearer::verify::jwt::DEFAULT_LEEWAY;
use crate::bearer::verify::remote::{default_client, parse_url};

pub(super) enum SourceSpec {
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
    pub(super) fn new(source: SourceSpec) -> Self {
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
    /// # use tower_mcp_auth::bearer::JwksVerifier;
    /// let b = JwksVerifier::from_issuer("https://auth.example.com")
    ///     .audience("https://mcp.example.com/mcp");
    /// # let _ = b;
    /// ```
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Accepts only tokens whose header `typ` is `token_type`, for example `at+jwt` (RFC 9068
    /// access tokens); see [`JwtVerifierBuilder::token_type`](crate::bearer::JwtVerifierBuilder::token_type).
    ///
    /// ```
    /// # use tower_mcp_auth::bearer::JwksVerifier;
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
    /// # use tower_mcp_auth::bearer::JwksVerifier;
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
    /// # use tower_mcp_auth::bearer::JwksVerifier;
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
    /// # use tower_mcp_auth::{bearer::{Algorithm, JwksVerifier}};
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
    /// # use tower_mcp_auth::bearer::JwksVerifier;
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
    /// # use tower_mcp_auth::bearer::JwksVerifier;
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
    /// # use tower_mcp_auth::bearer::JwksVerifier;
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
    /// # use tower_mcp_auth::bearer::JwksVerifier;
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
    /// # use tower_mcp_auth::bearer::JwksVerifier;
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
    /// use tower_mcp_auth::{bearer::{JwksConfigError, JwksVerifier}};
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
