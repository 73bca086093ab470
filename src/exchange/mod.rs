//! On-behalf-of tokens (RFC 8693 token exchange, feature `token-exchange`): a tool handler
//! that calls a downstream API for the caller asks the identity provider for a token for that
//! API, in exchange for the caller's verified token. The caller's token itself is never
//! forwarded downstream: it goes only to the configured token endpoint, as `subject_token`.
//!
//! Keycloak, Okta, Auth0 and other RFC 8693 providers support it. Exchanged tokens are cached
//! in memory per (issuer, subject, audience, resource, scopes) until shortly before they
//! expire (never beyond the caller's own token), and concurrent exchanges of one key make one
//! request (single flight); answers without `expires_in` are not cached. Nothing is written
//! to a store.
//!
//! ```no_run
//! use tower_mcp_auth::exchange::{Downstream, TokenExchange};
//!
//! # async fn handler(parts: http::request::Parts) -> Result<(), Box<dyn std::error::Error>> {
//! let exchange = TokenExchange::builder(
//!     "https://idp.example.com/realms/mcp/protocol/openid-connect/token",
//!     "mcp-server",
//!     "client-secret",
//! )
//! .build()?;
//! // In a tool handler, with the request parts the auth stack saw (rmcp puts them in the
//! // request context's extensions):
//! let crm = exchange
//!     .on_behalf_of(&parts, &Downstream::audience("crm-api").scopes(["crm:read"]))
//!     .await?;
//! // Authorization: Bearer {crm.access_token()} on the CRM API.
//! # let _ = crm;
//! # Ok(()) }
//! ```

mod builder;
mod cache;
mod error;
mod target;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::{Client, Url};
use serde_json::Value;

use crate::bearer::remote::{read_body, ClientCredentials, FetchError};
use crate::credentials::{self, Presented};
use crate::identity::{AuthMethod, Identity};
use crate::keyed_locks::KeyedLocks;

pub use crate::bearer::ClientAuth;
pub use builder::TokenExchangeBuilder;
pub use error::{ExchangeConfigError, ExchangeError};
pub use target::Downstream;

use cache::ExchangeCache;

/// `grant_type` of RFC 8693.
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The token type of an OAuth access token (RFC 8693 section 3), the default subject and
/// requested token type.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// Longest subject token sent.
const MAX_SUBJECT_TOKEN: usize = 8 * 1024;

/// An RFC 8693 token-exchange client; see the [module docs](self). Cheap to clone.
#[derive(Clone)]
pub struct TokenExchange {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: Url,
    client: Client,
    credentials: ClientCredentials,
    subject_token_type: String,
    requested_token_type: Option<String>,
    timeout: Duration,
    skew: Duration,
    cache: ExchangeCache,
    locks: KeyedLocks,
}

/// A token from an exchange. `Debug` does not show the token.
///
/// ```
/// # use tower_mcp_auth::exchange::ExchangedToken;
/// fn bearer(t: &ExchangedToken) -> String {
///     format!("Bearer {}", t.access_token())
/// }
/// ```
#[derive(Clone)]
pub struct ExchangedToken {
    access_token: String,
    issued_token_type: String,
    expires_at: Option<SystemTime>,
    scopes: Vec<String>,
}

impl ExchangedToken {
    /// The token to send downstream.
    pub fn access_token(&self) -> &str {
        &self.access_token
    }

    /// `issued_token_type` of the answer (an access token unless asked otherwise).
    pub fn issued_token_type(&self) -> &str {
        &self.issued_token_type
    }

    /// When it expires, if the provider said (`expires_in`).
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }

    /// The scopes granted, if the provider said (`scope`).
    pub fn granted_scopes(&self) -> &[String] {
        &self.scopes
    }
}

impl fmt::Debug for ExchangedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExchangedToken")
            .field("access_token", &"[redacted]")
            .field("issued_token_type", &self.issued_token_type)
            .field("expires_at", &self.expires_at)
            .field("scopes", &self.scopes)
            .finish()
    }
}

impl TokenExchange {
    /// Default timeout of one exchange (10 s).
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default refresh skew: a cached token expiring within it is exchanged again (30 s).
    pub const DEFAULT_SKEW: Duration = Duration::from_secs(30);
    /// Default bound of the cache (10,000 tokens).
    pub const DEFAULT_CACHE_ENTRIES: usize = 10_000;

    /// Configures an exchange at `token_endpoint` by the client `client_id` / `client_secret`
    /// (this server's client at the identity provider, allowed to exchange).
    ///
    /// ```
    /// use tower_mcp_auth::exchange::TokenExchange;
    ///
    /// let exchange = TokenExchange::builder("https://idp.example.com/token", "mcp", "secret")
    ///     .build()
    ///     .unwrap();
    /// # let _ = exchange;
    /// ```
    pub fn builder(
        token_endpoint: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> TokenExchangeBuilder {
        TokenExchangeBuilder::new(
            token_endpoint.into(),
            client_id.into(),
            client_secret.into(),
        )
    }

    /// A token for `downstream` on behalf of the caller of this request: the [`Identity`]
    /// the auth stack put in `parts`' extensions (a verified bearer token) and the token of
    /// its `Authorization: Bearer` header.
    ///
    /// # Errors
    ///
    /// [`ExchangeError::NoSubjectToken`] for a request without a verified bearer token (API
    /// keys, session cookies, open endpoints); otherwise as [`exchange`](Self::exchange).
    pub async fn on_behalf_of(
        &self,
        parts: &http::request::Parts,
        downstream: &Downstream,
    ) -> Result<ExchangedToken, ExchangeError> {
        let identity = parts
            .extensions
            .get::<Identity>()
            .ok_or(ExchangeError::NoSubjectToken)?;
        let Presented::Value(token) = credentials::bearer(&parts.headers) else {
            return Err(ExchangeError::NoSubjectToken);
        };
        self.exchange(identity, &token, downstream).await
    }

    /// A token for `downstream` in exchange for `subject_token`, the bearer token `identity`
    /// was verified from: from the cache, by waiting for the same exchange in flight, or
    /// from the identity provider.
    ///
    /// # Errors
    ///
    /// [`ExchangeError`]: no subject (not a bearer identity, no user id, no or an oversized
    /// token), the provider's refusal, or the provider unavailable.
    pub async fn exchange(
        &self,
        identity: &Identity,
        subject_token: &str,
        downstream: &Downstream,
    ) -> Result<ExchangedToken, ExchangeError> {
        let subject = identity
            .user_id()
            .filter(|_| identity.method() == AuthMethod::Bearer);
        let Some(subject) = subject else {
            return Err(ExchangeError::NoSubjectToken);
        };
        if subject_token.is_empty() || subject_token.len() > MAX_SUBJECT_TOKEN {
            return Err(ExchangeError::NoSubjectToken);
        }
        let key = cache_key(identity.issuer().unwrap_or(""), subject, downstream);
        let inner = &self.inner;
        if let Some(token) = inner.cache.get(&key, SystemTime::now()) {
            return Ok(token);
        }
        // One exchange per key in this process; the others find its answer in the cache.
        let lock = inner.locks.lock_for(&key);
        let _held = lock.lock().await;
        if let Some(token) = inner.cache.get(&key, SystemTime::now()) {
            return Ok(token);
        }
        let token = inner.request(subject_token, downstream).await?;
        if let Some(expires) = token.expires_at {
            let mut fresh_until = expires.checked_sub(inner.skew).unwrap_or(expires);
            if let Some(subject_end) = identity.expires_at() {
                fresh_until = fresh_until.min(subject_end);
            }
            inner
                .cache
                .put(key, token.clone(), fresh_until, SystemTime::now());
        }
        Ok(token)
    }
}

impl fmt::Debug for TokenExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenExchange")
            .field("endpoint", &self.inner.endpoint.as_str())
            .field("credentials", &self.inner.credentials)
            .field("cached", &self.inner.cache.len())
            .finish_non_exhaustive()
    }
}

/// The cache key: each part written with `{:?}`, so quotes inside a part are escaped and
/// two different (issuer, subject, downstream) never share a key.
fn cache_key(issuer: &str, subject: &str, d: &Downstream) -> String {
    format!(
        "{issuer:?}{subject:?}{:?}{:?}{:?}",
        d.audience_name(),
        d.resource_url(),
        d.scope_list()
    )
}

impl Inner {
    async fn request(
        &self,
        subject_token: &str,
        downstream: &Downstream,
    ) -> Result<ExchangedToken, ExchangeError> {
        // Built before any await: the serializer is not `Send`.
        let body = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", GRANT_TYPE);
            form.append_pair("subject_token", subject_token);
            form.append_pair("subject_token_type", &self.subject_token_type);
            form.append_pair("audience", downstream.audience_name());
            if let Some(resource) = downstream.resource_url() {
                form.append_pair("resource", resource);
            }
            if !downstream.scope_list().is_empty() {
                form.append_pair("scope", &downstream.scope_list().join(" "));
            }
            if let Some(requested) = &self.requested_token_type {
                form.append_pair("requested_token_type", requested);
            }
            self.credentials.append_to(&mut form);
            form.finish()
        };
        let unavailable = |e: FetchError| {
            ExchangeError::Unavailable(format!("token endpoint {}: {e}", self.endpoint))
        };
        let response = self
            .credentials
            .post_form(&self.client, &self.endpoint, self.timeout, body)
            .send()
            .await
            .map_err(|e| unavailable(e.into()))?;
        let status = response.status().as_u16();
        let body: Result<Value, _> = read_body(response).await;
        match (status, body) {
            (200, Ok(body)) => parse_answer(&body, self.requested_token_type.as_deref())
                .map_err(|e| unavailable(FetchError::Json(e.to_owned()))),
            (400 | 401, Ok(body)) if body["error"].is_string() => {
                let code = sanitize(body["error"].as_str().unwrap_or_default());
                if code == "invalid_client" || code == "unauthorized_client" {
                    tracing::error!(endpoint = %self.endpoint, %code,
                        "the identity provider refused this server's client for token exchange");
                } else {
                    tracing::debug!(endpoint = %self.endpoint, %code, "token exchange refused");
                }
                Err(ExchangeError::Refused { code })
            }
            (200, Err(e)) => Err(unavailable(e)),
            (status, _) => Err(unavailable(FetchError::Status(status))),
        }
    }
}

/// An error code as logged and returned: `[a-z_]` only, at most 64 characters.
fn sanitize(code: &str) -> String {
    let clean: String = code
        .chars()
        .filter(|c| c.is_ascii_lowercase() || *c == '_')
        .take(64)
        .collect();
    if clean.is_empty() {
        "invalid_request".to_owned()
    } else {
        clean
    }
}

/// A 200 answer of RFC 8693 section 2.2.1.
fn parse_answer(body: &Value, requested: Option<&str>) -> Result<ExchangedToken, &'static str> {
    let access_token = body["access_token"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or("no access_token")?;
    match body["token_type"].as_str() {
        Some(t) if t.eq_ignore_ascii_case("bearer") || t.eq_ignore_ascii_case("n_a") => {}
        Some(_) => return Err("token_type is not Bearer"),
        None => return Err("no token_type"),
    }
    let issued_token_type = body["issued_token_type"]
        .as_str()
        .or(requested)
        .unwrap_or(ACCESS_TOKEN_TYPE)
        .to_owned();
    let expires_at = body["expires_in"]
        .as_u64()
        .and_then(|s| SystemTime::now().checked_add(Duration::from_secs(s)));
    let scopes = body["scope"]
        .as_str()
        .map(|s| s.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    Ok(ExchangedToken {
        access_token: access_token.to_owned(),
        issued_token_type,
        expires_at,
        scopes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_are_checked() {
        let ok = parse_answer(
            &json!({"access_token": "t", "token_type": "Bearer", "expires_in": 60,
                "issued_token_type": ACCESS_TOKEN_TYPE, "scope": "a b"}),
            None,
        )
        .unwrap();
        assert_eq!(ok.access_token(), "t");
        assert_eq!(ok.granted_scopes(), ["a", "b"]);
        assert!(ok.expires_at().is_some());
        assert!(!format!("{ok:?}").contains("\"t\""));
        for bad in [
            json!({"token_type": "Bearer"}),
            json!({"access_token": "", "token_type": "Bearer"}),
            json!({"access_token": "t"}),
            json!({"access_token": "t", "token_type": "mac"}),
        ] {
            assert!(parse_answer(&bad, None).is_err(), "{bad}");
        }
        // An expires_in beyond SystemTime is an unknown expiry, never a panic.
        let far = parse_answer(
            &json!({"access_token": "t", "token_type": "N_A", "expires_in": u64::MAX}),
            None,
        )
        .unwrap();
        assert_eq!(far.expires_at(), None);
    }

    #[test]
    fn error_codes_are_sanitized() {
        assert_eq!(sanitize("invalid_grant"), "invalid_grant");
        assert_eq!(sanitize("<script>"), "script");
        assert_eq!(sanitize("ÄÖ"), "invalid_request");
    }

    #[test]
    fn cache_keys_do_not_collide_across_parts() {
        let d = Downstream::audience("b");
        assert_ne!(cache_key("a", "x", &d), cache_key("a\"", "x", &d));
        assert_ne!(
            cache_key("i", "s", &Downstream::audience("a").scopes(["x"])),
            cache_key("i", "s", &Downstream::audience("a").scopes(["x y"]))
        );
    }

    /// Tool handlers run on multi-threaded runtimes: the futures must be `Send` (checked at
    /// compile time).
    #[allow(dead_code)]
    fn futures_are_send(e: &TokenExchange, p: &http::request::Parts, d: &Downstream) {
        fn send<T: Send>(_: T) {}
        send(e.on_behalf_of(p, d));
    }
}
