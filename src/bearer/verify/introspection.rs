//! [`IntrospectionVerifier`]: opaque tokens checked with the authorization server (RFC 7662).

mod builder;
mod error;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::{Client, Url};
use serde_json::{Map, Value};

use crate::deferred::Deferred;
use crate::error::TokenRejection;
use crate::identity::Identity;

use super::claims::identity_from_claims;
use super::remote::{read_json, ClientCredentials, FetchError};
use crate::bearer::cache::single_flight::{self, Flights, Outcome, SingleFlight};
use crate::bearer::cache::token_cache::TokenCache;
use crate::bearer::verifier::{TokenError, TokenVerifier};

pub use builder::IntrospectionVerifierBuilder;
pub use error::IntrospectionConfigError;

/// Longest token sent to the authorization server. Real access tokens are far shorter; a
/// longer value is refused without a request.
const MAX_TOKEN_LEN: usize = 8 * 1024;

struct Inner {
    endpoint: Url,
    client: Client,
    credentials: ClientCredentials,
    audiences: Vec<String>,
    /// Canonical forms of `audiences`, computed once.
    canonical_audiences: Vec<String>,
    issuer: Option<String>,
    leeway: Duration,
    timeout: Duration,
    cache: TokenCache,
    flights: Flights,
}

/// Verifies opaque (or any) access tokens by asking the authorization server's
/// introspection endpoint (RFC 7662).
///
/// - Sends `token=…&token_type_hint=access_token` with client authentication
///   ([`ClientAuth::SecretBasic`](crate::bearer::ClientAuth::SecretBasic) by default).
/// - `active` must be `true`, otherwise the token is
///   [`TokenRejection::Inactive`]; `exp` / `nbf` in the answer are checked too (60 s
///   leeway), and `aud` / `iss` when configured.
/// - The answer becomes an [`Identity`] with [`identity_from_claims`]: `sub` (else
///   `client_id`), `scope`, `exp`, and every other member as claims.
/// - Active answers are cached, keyed by the SHA-256 of the token, until the earlier of the
///   token's `exp` (integer or not) and [`cache_ttl`](IntrospectionVerifierBuilder::cache_ttl)
///   (default 60 s, so a revoked token stops working within a minute). Answers without `exp`
///   are not cached (their end is unknown), nor are rejections.
/// - **Single flight: concurrent first requests with one token cost one introspection.**
///   While the answer for a token is awaited, other requests with the same token wait for it
///   instead of sending their own request, and all get the same result, active or not,
///   reachable or not (only active answers are cached). If the request that asked goes away
///   (client gone, timeout), one of the waiting requests asks again and the others wait for
///   that one.
/// - The endpoint unreachable, slow (beyond [`timeout`](IntrospectionVerifierBuilder::timeout))
///   or answering anything but 200 with JSON: [`TokenError::Unavailable`] (503).
///
/// The token is never logged, and neither it nor the client secret appears in `Debug` output
/// or error messages.
///
/// ```no_run
/// use tower_mcp_auth::{bearer::IntrospectionVerifier, McpAuth};
///
/// let verifier = IntrospectionVerifier::builder(
///     "https://auth.example.com/oauth2/introspect",
///     "mcp-server",
///     "client-secret",
/// )
/// .audience("https://mcp.example.com/mcp")
/// .build()
/// .unwrap();
/// let auth = McpAuth::builder().bearer(verifier).build().unwrap();
/// # let _ = auth;
/// ```
#[derive(Clone)]
pub struct IntrospectionVerifier {
    inner: Arc<Inner>,
}

impl IntrospectionVerifier {
    /// Default [`cache_ttl`](IntrospectionVerifierBuilder::cache_ttl): 60 s.
    ///
    /// ```
    /// # use std::time::Duration;
    /// assert_eq!(tower_mcp_auth::bearer::IntrospectionVerifier::DEFAULT_CACHE_TTL, Duration::from_secs(60));
    /// ```
    pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(60);
    /// Default [`cache_entries`](IntrospectionVerifierBuilder::cache_entries): 10 000.
    ///
    /// ```
    /// # use std::time::Duration;
    /// assert_eq!(tower_mcp_auth::bearer::IntrospectionVerifier::DEFAULT_CACHE_ENTRIES, 10_000);
    /// ```
    pub const DEFAULT_CACHE_ENTRIES: usize = 10_000;
    /// Default [`timeout`](IntrospectionVerifierBuilder::timeout): 5 s.
    ///
    /// ```
    /// # use std::time::Duration;
    /// assert_eq!(tower_mcp_auth::bearer::IntrospectionVerifier::DEFAULT_TIMEOUT, Duration::from_secs(5));
    /// ```
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

    /// Starts a verifier for the introspection `endpoint`, authenticating as `client_id` with
    /// `client_secret`.
    ///
    /// ```
    /// let builder = tower_mcp_auth::bearer::IntrospectionVerifier::builder(
    ///     "https://auth.example.com/introspect", "mcp-server", "s3cret",
    /// );
    /// # let _ = builder;
    /// ```
    pub fn builder(
        endpoint: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> IntrospectionVerifierBuilder {
        IntrospectionVerifierBuilder::new(endpoint.into(), client_id.into(), client_secret.into())
    }

    /// Forgets every cached answer (for example after a mass revocation).
    ///
    /// ```
    /// # let v = tower_mcp_auth::bearer::IntrospectionVerifier::builder(
    /// #     "https://auth.example.com/introspect", "id", "secret").build().unwrap();
    /// v.clear_cache();
    /// ```
    pub fn clear_cache(&self) {
        self.inner.cache.clear();
    }
}

impl TokenVerifier for IntrospectionVerifier {
    fn verify(&self, token: &str) -> Deferred<Result<Identity, TokenError>> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Deferred::ready(Err(TokenRejection::Malformed.into()));
        }
        single_flight::verify(&self.inner, token)
    }

    fn cached(&self, token: &[u8]) -> Option<Identity> {
        single_flight::cached(&*self.inner, token)
    }
}

impl SingleFlight for Inner {
    fn cache(&self) -> &TokenCache {
        &self.cache
    }

    fn flights(&self) -> &Flights {
        &self.flights
    }

    fn verify_uncached(self: &Arc<Self>, token: &str) -> Deferred<Outcome> {
        let inner = Arc::clone(self);
        let token = token.to_owned();
        Deferred::boxed(async move {
            let timer = crate::metrics::Timer::start();
            let result = inner.introspect(&token).await;
            timer.verified("introspection", &result);
            result
        })
    }
}

impl Inner {
    async fn introspect(&self, token: &str) -> Result<Identity, TokenError> {
        let request = self.credentials.post_form(
            &self.client,
            &self.endpoint,
            self.timeout,
            self.form(token),
        );
        let answer = match request.send().await {
            Ok(response) => read_json::<Map<String, Value>>(response).await,
            Err(e) => Err(FetchError::from(e)),
        };
        match answer {
            Ok(claims) => self.check(claims, SystemTime::now()),
            Err(e) => {
                if matches!(e, FetchError::Status(401 | 403)) {
                    tracing::error!(endpoint = %self.endpoint, error = %e,
                        "introspection endpoint refused our client credentials");
                }
                Err(TokenError::Unavailable(format!(
                    "introspection endpoint {}: {e}",
                    self.endpoint
                )))
            }
        }
    }

    /// The request body: the token, a hint, and the credentials for `SecretPost`.
    fn form(&self, token: &str) -> String {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("token", token);
        form.append_pair("token_type_hint", "access_token");
        self.credentials.append_to(&mut form);
        form.finish()
    }

    /// Turns an introspection answer into an identity, or says why the token is refused.
    fn check(
        &self,
        mut claims: Map<String, Value>,
        now: SystemTime,
    ) -> Result<Identity, TokenError> {
        if claims.get("active") != Some(&Value::Bool(true)) {
            return Err(TokenRejection::Inactive.into());
        }
        claims.remove("active");
        let now_secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let leeway = self.leeway.as_secs();
        match numeric(&claims, "exp")? {
            Some(exp) if exp.saturating_add(leeway) <= now_secs => {
                return Err(TokenRejection::Expired.into())
            }
            _ => {}
        }
        match numeric(&claims, "nbf")? {
            Some(nbf) if nbf > now_secs.saturating_add(leeway) => {
                return Err(TokenRejection::NotYetValid.into())
            }
            _ => {}
        }
        if !self.audiences.is_empty() {
            let matches = |a: &Value| {
                a.as_str()
                    .is_some_and(|a| self.audiences.iter().any(|w| w == a))
            };
            match claims.get("aud") {
                None => return Err(TokenRejection::MissingClaim.into()),
                Some(Value::Array(items)) if items.iter().any(matches) => {}
                Some(single @ Value::String(_)) if matches(single) => {}
                // Not byte for byte: compare canonical forms (uppercase host, trailing slash).
                _ if super::audience::aud_matches(&claims, &self.canonical_audiences) => {}
                Some(_) => return Err(TokenRejection::WrongAudience.into()),
            }
        }
        if let Some(issuer) = &self.issuer {
            match claims.get("iss") {
                None => return Err(TokenRejection::MissingClaim.into()),
                Some(Value::String(iss)) if iss == issuer => {}
                Some(_) => return Err(TokenRejection::WrongIssuer.into()),
            }
        }
        Ok(identity_from_claims(claims))
    }
}

/// A NumericDate member: absent is fine, anything but a non-negative integer is not.
fn numeric(claims: &Map<String, Value>, name: &str) -> Result<Option<u64>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .or_else(|| {
                v.as_f64()
                    .filter(|f| *f >= 0.0 && f.is_finite())
                    .map(|f| f as u64)
            })
            .map(Some)
            .ok_or_else(|| {
                TokenError::Unavailable(format!("introspection answer has a malformed {name}"))
            }),
    }
}

impl fmt::Debug for IntrospectionVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("IntrospectionVerifier")
            .field("endpoint", &i.endpoint.as_str())
            .field("auth", &i.credentials.auth())
            .field("audiences", &i.audiences)
            .field("issuer", &i.issuer)
            .field("cache", &i.cache)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn verifier() -> IntrospectionVerifier {
        IntrospectionVerifier::builder("http://127.0.0.1:1/introspect", "id", "hunter2")
            .audience("https://mcp/mcp")
            .issuer("https://as")
            .build()
            .unwrap()
    }

    fn check(answer: Value) -> Result<Identity, TokenError> {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        verifier()
            .inner
            .check(answer.as_object().unwrap().clone(), now)
    }

    fn good() -> Value {
        json!({"active": true, "sub": "alice", "scope": "a b", "client_id": "c",
               "exp": 1_000_100, "aud": ["x", "https://mcp/mcp"], "iss": "https://as"})
    }

    fn with(key: &str, value: Value) -> Value {
        let mut v = good();
        v[key] = value;
        v
    }

    fn rejected(answer: Value) -> TokenRejection {
        match check(answer) {
            Err(TokenError::Rejected(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn active_answer_becomes_an_identity() {
        let id = check(good()).unwrap();
        assert_eq!(id.user_id(), Some("alice"));
        assert_eq!(id.scopes(), ["a", "b"]);
        assert!(id.expires_at().is_some());
        assert!(id.claims().unwrap().get("active").is_none());
    }

    #[test]
    fn inactive_or_odd_active_values_are_inactive() {
        for active in [json!(false), json!("true"), json!(1), Value::Null] {
            assert_eq!(rejected(with("active", active)), TokenRejection::Inactive);
        }
        assert_eq!(rejected(json!({})), TokenRejection::Inactive);
    }

    #[test]
    fn claims_are_checked() {
        assert_eq!(
            rejected(with("exp", json!(999_000))),
            TokenRejection::Expired
        );
        assert!(check(with("exp", json!(999_990))).is_ok(), "within leeway");
        assert_eq!(
            rejected(with("nbf", json!(1_000_500))),
            TokenRejection::NotYetValid
        );
        assert_eq!(
            rejected(with("aud", json!("other"))),
            TokenRejection::WrongAudience
        );
        assert!(check(with("aud", json!("https://mcp/mcp"))).is_ok());
        // Canonical resource URI: uppercase scheme / host and a trailing slash are the same.
        assert!(check(with("aud", json!("HTTPS://MCP/mcp/"))).is_ok());
        assert!(check(with("aud", json!(["x", "https://MCP:443/mcp"]))).is_ok());
        rejected(with("aud", json!("https://mcp/MCP")));
        assert_eq!(
            rejected(with("iss", json!("https://evil"))),
            TokenRejection::WrongIssuer
        );
        let mut no_aud = good();
        no_aud.as_object_mut().unwrap().remove("aud");
        assert_eq!(rejected(no_aud), TokenRejection::MissingClaim);
        assert!(matches!(
            check(with("exp", json!("soon"))),
            Err(TokenError::Unavailable(_))
        ));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let dbg = format!("{:?}", verifier());
        assert!(!dbg.contains("hunter2"), "{dbg}");
        let b = IntrospectionVerifier::builder("https://as/introspect", "id", "hunter2");
        assert!(!format!("{b:?}").contains("hunter2"));
    }

    #[tokio::test]
    async fn concurrent_requests_share_one_answer_and_leave_nothing_in_flight() {
        // Nothing listens on port 1: the one request fails, and every waiter gets its error.
        let v = verifier();
        let pending: Vec<_> = (0..8).map(|_| v.verify("opaque")).collect();
        assert_eq!(v.inner.flights.len(), 1);
        let mut errors = Vec::new();
        for p in pending {
            errors.push(p.await.unwrap_err());
        }
        assert!(
            matches!(&errors[0], TokenError::Unavailable(_)),
            "{errors:?}"
        );
        assert!(errors.iter().all(|e| e == &errors[0]));
        assert_eq!(v.inner.flights.len(), 0);
        assert_eq!(v.inner.cache.len(), 0);
        // A request dropped before it was polled leaves nothing behind either.
        drop(v.verify("opaque"));
        assert_eq!(v.inner.flights.len(), 0);
    }

    #[test]
    fn oversized_and_empty_tokens_are_refused_without_a_request() {
        let v = verifier();
        for token in [String::new(), "x".repeat(MAX_TOKEN_LEN + 1)] {
            let result = v.verify(&token).try_into_ready().unwrap();
            assert_eq!(result.unwrap_err(), TokenRejection::Malformed.into());
        }
    }
}
