//! [`IntrospectionVerifierBuilder`]: the endpoint, client credentials and token checks.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Client;

use super::{Inner, IntrospectionConfigError, IntrospectionVerifier};
use crate::bearer::cache::single_flight::Flights;
use crate::bearer::cache::token_cache::TokenCache;
use crate::bearer::verify::audience;
use crate::bearer::verify::jwt::DEFAULT_LEEWAY;
use crate::bearer::verify::remote::{default_client, parse_url, ClientAuth, ClientCredentials};

/// Configures an [`IntrospectionVerifier`]; see [`IntrospectionVerifier::builder`].
#[must_use]
pub struct IntrospectionVerifierBuilder {
    endpoint: String,
    client_id: String,
    client_secret: String,
    auth: ClientAuth,
    audiences: Vec<String>,
    issuer: Option<String>,
    leeway: Duration,
    timeout: Duration,
    cache_entries: usize,
    cache_ttl: Duration,
    allow_http: bool,
    client: Option<Client>,
}

impl IntrospectionVerifierBuilder {
    pub(super) fn new(endpoint: String, client_id: String, client_secret: String) -> Self {
        Self {
            endpoint,
            client_id,
            client_secret,
            auth: ClientAuth::default(),
            audiences: Vec::new(),
            issuer: None,
            leeway: DEFAULT_LEEWAY,
            timeout: IntrospectionVerifier::DEFAULT_TIMEOUT,
            cache_entries: IntrospectionVerifier::DEFAULT_CACHE_ENTRIES,
            cache_ttl: IntrospectionVerifier::DEFAULT_CACHE_TTL,
            allow_http: false,
            client: None,
        }
    }

    /// How to send the client credentials (default [`ClientAuth::SecretBasic`]).
    ///
    /// ```
    /// # use tower_mcp_auth::{bearer::{ClientAuth, IntrospectionVerifier}};
    /// let b = IntrospectionVerifier::builder("https://as.example/introspect", "id", "secret")
    ///     .client_auth(ClientAuth::SecretPost);
    /// # let _ = b;
    /// ```
    pub fn client_auth(mut self, auth: ClientAuth) -> Self {
        self.auth = auth;
        self
    }

    /// Requires the answer's `aud` to name `audience` (your resource URL); may be called more
    /// than once. Without it, `aud` is not checked: many servers omit it from introspection.
    ///
    /// ```
    /// # use tower_mcp_auth::bearer::IntrospectionVerifier;
    /// let b = IntrospectionVerifier::builder("https://as.example/introspect", "id", "secret")
    ///     .audience("https://mcp.example.com/mcp");
    /// # let _ = b;
    /// ```
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Requires the answer's `iss` to equal `issuer`.
    ///
    /// ```
    /// # use tower_mcp_auth::bearer::IntrospectionVerifier;
    /// let b = IntrospectionVerifier::builder("https://as.example/introspect", "id", "secret")
    ///     .issuer("https://as.example");
    /// # let _ = b;
    /// ```
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Clock-skew allowance for `exp` / `nbf` in answers (default 60 s).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use tower_mcp_auth::bearer::IntrospectionVerifier;
    /// let b = IntrospectionVerifier::builder("https://as.example/introspect", "id", "secret")
    ///     .leeway(Duration::from_secs(10));
    /// # let _ = b;
    /// ```
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Timeout of each introspection request (default 5 s).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use tower_mcp_auth::bearer::IntrospectionVerifier;
    /// let b = IntrospectionVerifier::builder("https://as.example/introspect", "id", "secret")
    ///     .timeout(Duration::from_secs(2));
    /// # let _ = b;
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The longest an active answer is reused (default 60 s); also never past the token's
    /// `exp`. `Duration::ZERO` asks the server on every request.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use tower_mcp_auth::bearer::IntrospectionVerifier;
    /// let b = IntrospectionVerifier::builder("https://as.example/introspect", "id", "secret")
    ///     .cache_ttl(Duration::from_secs(10));
    /// # let _ = b;
    /// ```
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// The most answers cached (default 10 000; FIFO eviction per shard). `0` disables the
    /// cache.
    ///
    /// ```
    /// # use tower_mcp_auth::bearer::IntrospectionVerifier;
    /// let b = IntrospectionVerifier::builder("https://as.example/introspect", "id", "secret")
    ///     .cache_entries(1_000);
    /// # let _ = b;
    /// ```
    pub fn cache_entries(mut self, entries: usize) -> Self {
        self.cache_entries = entries;
        self
    }

    /// Allows plain `http` to hosts other than loopback (default: `https` only, or `http` to
    /// `localhost` / `127.0.0.1` / `::1`).
    ///
    /// ```
    /// # use tower_mcp_auth::bearer::IntrospectionVerifier;
    /// let b = IntrospectionVerifier::builder("http://as.internal/introspect", "id", "secret")
    ///     .allow_http(true);
    /// # let _ = b;
    /// ```
    pub fn allow_http(mut self, allow: bool) -> Self {
        self.allow_http = allow;
        self
    }

    /// Uses this client instead of the default one (rustls, platform roots, no redirects).
    ///
    /// ```
    /// # use tower_mcp_auth::bearer::IntrospectionVerifier;
    /// let b = IntrospectionVerifier::builder("https://as.example/introspect", "id", "secret")
    ///     .http_client(reqwest::Client::new());
    /// # let _ = b;
    /// ```
    pub fn http_client(mut self, client: Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Validates the configuration.
    ///
    /// # Errors
    ///
    /// A URL that is not `https` (or loopback `http`), credentials that cannot be sent, or a
    /// default HTTP client that cannot be built.
    ///
    /// ```
    /// use tower_mcp_auth::{bearer::{IntrospectionConfigError, IntrospectionVerifier}};
    ///
    /// let err = IntrospectionVerifier::builder("http://as.example/introspect", "id", "secret")
    ///     .build()
    ///     .unwrap_err();
    /// assert!(matches!(err, IntrospectionConfigError::InsecureUrl(_)));
    /// ```
    pub fn build(self) -> Result<IntrospectionVerifier, IntrospectionConfigError> {
        let endpoint = parse_url(&self.endpoint, self.allow_http)?;
        let credentials = ClientCredentials::new(self.auth, self.client_id, self.client_secret)
            .ok_or(IntrospectionConfigError::InvalidCredentials)?;
        let client = match self.client {
            Some(client) => client,
            // POSTs must not be redirected: the token and the secret would follow.
            None => {
                default_client(self.timeout, false).map_err(IntrospectionConfigError::HttpClient)?
            }
        };
        Ok(IntrospectionVerifier {
            inner: Arc::new(Inner {
                endpoint,
                client,
                credentials,
                canonical_audiences: audience::canonical_list(&self.audiences),
                audiences: self.audiences,
                issuer: self.issuer,
                leeway: self.leeway,
                timeout: self.timeout,
                cache: TokenCache::new(self.cache_entries, self.cache_ttl),
                flights: Flights::new(),
            }),
        })
    }
}

impl fmt::Debug for IntrospectionVerifierBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntrospectionVerifierBuilder")
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .field("auth", &self.auth)
            .field("audiences", &self.audiences)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}
