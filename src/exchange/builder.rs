//! [`TokenExchangeBuilder`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Client;

use super::cache::ExchangeCache;
use super::{ExchangeConfigError, Inner, TokenExchange, ACCESS_TOKEN_TYPE};
use crate::bearer::remote::{default_client, parse_url, ClientCredentials};
use crate::bearer::ClientAuth;
use crate::keyed_locks::KeyedLocks;

/// Configures a [`TokenExchange`]; see [`TokenExchange::builder`].
#[must_use]
pub struct TokenExchangeBuilder {
    endpoint: String,
    client_id: String,
    client_secret: String,
    auth: ClientAuth,
    subject_token_type: String,
    requested_token_type: Option<String>,
    timeout: Duration,
    skew: Duration,
    cache_entries: usize,
    allow_http: bool,
    client: Option<Client>,
}

impl TokenExchangeBuilder {
    pub(super) fn new(endpoint: String, client_id: String, client_secret: String) -> Self {
        Self {
            endpoint,
            client_id,
            client_secret,
            auth: ClientAuth::default(),
            subject_token_type: ACCESS_TOKEN_TYPE.to_owned(),
            requested_token_type: None,
            timeout: TokenExchange::DEFAULT_TIMEOUT,
            skew: TokenExchange::DEFAULT_SKEW,
            cache_entries: TokenExchange::DEFAULT_CACHE_ENTRIES,
            allow_http: false,
            client: None,
        }
    }

    /// How the client credentials are sent (default [`ClientAuth::SecretBasic`]).
    ///
    /// ```
    /// use tower_mcp_auth::exchange::{ClientAuth, TokenExchange};
    /// let b = TokenExchange::builder("https://idp.example/token", "id", "secret")
    ///     .client_auth(ClientAuth::SecretPost);
    /// # let _ = b;
    /// ```
    pub fn client_auth(mut self, auth: ClientAuth) -> Self {
        self.auth = auth;
        self
    }

    /// `subject_token_type` sent with the caller's token (default
    /// [`ACCESS_TOKEN_TYPE`]; `urn:ietf:params:oauth:token-type:jwt` for some providers).
    ///
    /// ```
    /// # use tower_mcp_auth::exchange::TokenExchange;
    /// let b = TokenExchange::builder("https://idp.example/token", "id", "secret")
    ///     .subject_token_type("urn:ietf:params:oauth:token-type:jwt");
    /// # let _ = b;
    /// ```
    pub fn subject_token_type(mut self, token_type: impl Into<String>) -> Self {
        self.subject_token_type = token_type.into();
        self
    }

    /// `requested_token_type` (default: not sent, the provider issues an access token).
    ///
    /// ```
    /// # use tower_mcp_auth::exchange::{TokenExchange, ACCESS_TOKEN_TYPE};
    /// let b = TokenExchange::builder("https://idp.example/token", "id", "secret")
    ///     .requested_token_type(ACCESS_TOKEN_TYPE);
    /// # let _ = b;
    /// ```
    pub fn requested_token_type(mut self, token_type: impl Into<String>) -> Self {
        self.requested_token_type = Some(token_type.into());
        self
    }

    /// Timeout of one exchange (default [`TokenExchange::DEFAULT_TIMEOUT`]).
    ///
    /// ```
    /// # use tower_mcp_auth::exchange::TokenExchange;
    /// # use std::time::Duration;
    /// let b = TokenExchange::builder("https://idp.example/token", "id", "secret")
    ///     .timeout(Duration::from_secs(3));
    /// # let _ = b;
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// A cached token expiring within `skew` is exchanged again (default
    /// [`TokenExchange::DEFAULT_SKEW`]).
    ///
    /// ```
    /// # use tower_mcp_auth::exchange::TokenExchange;
    /// # use std::time::Duration;
    /// let b = TokenExchange::builder("https://idp.example/token", "id", "secret")
    ///     .refresh_before_expiry(Duration::from_secs(60));
    /// # let _ = b;
    /// ```
    pub fn refresh_before_expiry(mut self, skew: Duration) -> Self {
        self.skew = skew;
        self
    }

    /// Most tokens cached (default [`TokenExchange::DEFAULT_CACHE_ENTRIES`]; `0` turns the
    /// cache off).
    ///
    /// ```
    /// # use tower_mcp_auth::exchange::TokenExchange;
    /// let b = TokenExchange::builder("https://idp.example/token", "id", "secret").cache_entries(0);
    /// # let _ = b;
    /// ```
    pub fn cache_entries(mut self, entries: usize) -> Self {
        self.cache_entries = entries;
        self
    }

    /// Allows an `http` token endpoint on a host that is not loopback (a private network).
    ///
    /// ```
    /// # use tower_mcp_auth::exchange::TokenExchange;
    /// let exchange = TokenExchange::builder("http://idp.internal/token", "id", "secret")
    ///     .allow_http(true)
    ///     .build();
    /// assert!(exchange.is_ok());
    /// ```
    pub fn allow_http(mut self, allow: bool) -> Self {
        self.allow_http = allow;
        self
    }

    /// The HTTP client (default: rustls, the timeout, no redirects: the caller's token must
    /// not follow one).
    ///
    /// ```
    /// # use tower_mcp_auth::exchange::TokenExchange;
    /// let b = TokenExchange::builder("https://idp.example/token", "id", "secret")
    ///     .http_client(reqwest::Client::new());
    /// # let _ = b;
    /// ```
    pub fn http_client(mut self, client: Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Builds the client.
    ///
    /// # Errors
    ///
    /// [`ExchangeConfigError`]: a bad or insecure URL, unsendable credentials, or an HTTP
    /// client that cannot be built.
    ///
    /// ```
    /// # use tower_mcp_auth::exchange::{ExchangeConfigError, TokenExchange};
    /// let err = TokenExchange::builder("not a url", "id", "secret").build().unwrap_err();
    /// assert!(matches!(err, ExchangeConfigError::InvalidUrl(_)));
    /// ```
    pub fn build(self) -> Result<TokenExchange, ExchangeConfigError> {
        let endpoint = parse_url(&self.endpoint, self.allow_http)?;
        let credentials = ClientCredentials::new(self.auth, self.client_id, self.client_secret)
            .ok_or(ExchangeConfigError::InvalidCredentials)?;
        let client = match self.client {
            Some(client) => client,
            None => default_client(self.timeout, false).map_err(ExchangeConfigError::HttpClient)?,
        };
        Ok(TokenExchange {
            inner: Arc::new(Inner {
                endpoint,
                client,
                credentials,
                subject_token_type: self.subject_token_type,
                requested_token_type: self.requested_token_type,
                timeout: self.timeout,
                skew: self.skew,
                cache: ExchangeCache::new(self.cache_entries),
                locks: KeyedLocks::default(),
            }),
        })
    }
}

impl fmt::Debug for TokenExchangeBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenExchangeBuilder")
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}
