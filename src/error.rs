//! [`AuthError`] and the response contract every failure follows.
//!
//! Every error response has a status, `Content-Type: application/json`,
//! `Cache-Control: no-store`, a JSON body with `error`, `error_description` and `timestamp`
//! (plus `supported_methods`, `resource_metadata`, `scope` or `retry_after` where they apply),
//! an RFC 6750 / RFC 9728 `WWW-Authenticate` challenge when the endpoint accepts OAuth, and an
//! [`AuthFailure`] marker in the response extensions. The body never contains a credential.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;

use crate::identity::AuthMethod;
use crate::policy::PathRejection;

/// Why a presented API key was not accepted. Logged, never shown to the client in detail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialRejection {
    /// No key with this hash exists.
    #[error("unknown API key")]
    Unknown,
    /// The key's `expiresAt` has passed.
    #[error("API key expired")]
    Expired,
    /// The key was revoked.
    #[error("API key revoked")]
    Revoked,
    /// The value cannot be a key: empty, too long, not visible ASCII, sent twice, or a
    /// generated key whose checksum does not match (a typo, rejected without a lookup).
    #[error("malformed API key")]
    Malformed,
}

/// Why a presented bearer token was not accepted. The description is safe to show.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenRejection {
    /// Not a well-formed token (`Bearer` with nothing after it, bad characters, not a JWT).
    #[error("The access token is malformed")]
    Malformed,
    /// The signature does not verify.
    #[error("The access token signature is invalid")]
    BadSignature,
    /// `exp` has passed (beyond the leeway).
    #[error("The access token has expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("The access token is not yet valid")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("The access token issuer is not accepted")]
    WrongIssuer,
    /// `aud` does not name this resource.
    #[error("The access token audience is not accepted")]
    WrongAudience,
    /// A required claim (such as `exp`) is absent.
    #[error("The access token is missing a required claim")]
    MissingClaim,
    /// The header's `typ` is not an accepted token type (only when a verifier requires one,
    /// for example `at+jwt` for RFC 9068 access tokens).
    #[error("The access token type is not accepted")]
    WrongType,
    /// The header's `kid` names no known key.
    #[error("The access token was signed with an unknown key")]
    UnknownKey,
    /// The header's `alg` is not allowed for the key (includes `none` and HMAC-with-public-key).
    #[error("The access token algorithm is not accepted")]
    AlgorithmNotAllowed,
    /// The authorization server says the token is not active (introspection).
    #[error("The access token is not active")]
    Inactive,
    /// The token's `jti`, or its subject as of its `iat`, is on the revocation list
    /// (`Revocations`, feature `revocation`).
    #[error("The access token has been revoked")]
    Revoked,
}

/// Which request header an [`OriginLayer`](crate::origin::OriginLayer) refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OriginRejection {
    /// The `Origin` header is present and not allowed (or not a valid origin).
    #[error("The request origin is not allowed")]
    Origin,
    /// The `Host` header (or the request authority) is not allowed.
    #[error("The request host is not allowed")]
    Host,
}

/// An authentication or authorization failure, rendered by
/// [`AuthError::to_response`] as the crate's response contract.
///
/// ```
/// use tower_mcp_auth::{AuthError, ErrorContext};
///
/// let res = AuthError::AuthenticationRequired.to_response(&ErrorContext::api_key_only());
/// assert_eq!(res.status(), 401);
/// // api-key-only endpoints never send a Bearer challenge.
/// assert!(res.headers().get("www-authenticate").is_none());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No usable credential for this endpoint.
    #[error("authentication required")]
    AuthenticationRequired,
    /// The API key is unknown, expired, revoked or malformed.
    #[error("invalid credentials: {0}")]
    InvalidCredentials(CredentialRejection),
    /// The bearer token is not valid.
    #[error("invalid token: {0}")]
    InvalidToken(TokenRejection),
    /// The caller is known but may not use this endpoint (ownership).
    #[error("access denied: {0}")]
    AccessDenied(Cow<'static, str>),
    /// The caller lacks a permission or scope; `required` lists what the endpoint needs.
    #[error("insufficient scope")]
    InsufficientScope {
        /// Every permission / scope the endpoint requires.
        required: Vec<String>,
    },
    /// Rate limit or failed-auth lockout.
    #[error("too many requests")]
    TooManyRequests {
        /// When the client may try again.
        retry_after: Duration,
    },
    /// A store or key provider is down and the policy is fail-closed.
    #[error("temporarily unavailable")]
    TemporarilyUnavailable,
    /// 400 `invalid_request`: the request path is not canonical (`%2F`, a dot segment, NUL,
    /// ...), so which endpoint it names depends on who decodes it. Not an auth failure: the
    /// failed-auth lockout does not count it.
    #[error("malformed request path: {0}")]
    MalformedPath(PathRejection),
    /// A browser origin (or `Host`) that may not reach this server: 403 `invalid_origin`,
    /// DNS-rebinding protection of the MCP streamable HTTP transport.
    #[error("invalid origin: {0}")]
    InvalidOrigin(OriginRejection),
}

/// What kind of failure a response carries; see [`AuthFailure`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthFailureKind {
    /// No usable credential was presented.
    MissingCredentials,
    /// A presented API key was wrong.
    InvalidCredentials,
    /// A presented bearer token was wrong.
    InvalidToken,
    /// Ownership check failed.
    AccessDenied,
    /// Permission / scope missing.
    InsufficientScope,
    /// Rate limited or locked out.
    RateLimited,
    /// Backing store unavailable.
    Unavailable,
    /// The request itself is malformed (a non-canonical path); no credential was judged.
    MalformedRequest,
    /// `Origin` or `Host` refused (DNS-rebinding protection).
    InvalidOrigin,
}

/// Typed marker in the extensions of every error response this crate produces, so outer
/// layers (the failed-auth limiter, metrics, logs) can react without parsing bodies.
///
/// ```
/// use tower_mcp_auth::{AuthError, AuthFailure, ErrorContext, CredentialRejection};
///
/// let res = AuthError::InvalidCredentials(CredentialRejection::Unknown)
///     .to_response(&ErrorContext::api_key_only());
/// let failure = res.extensions().get::<AuthFailure>().unwrap();
/// assert!(failure.is_invalid_credential());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthFailure {
    /// What failed.
    pub kind: AuthFailureKind,
    /// Which credential was involved, if one was.
    pub method: Option<AuthMethod>,
}

impl AuthFailure {
    /// True for a presented-but-wrong API key or token: what a failed-auth lockout counts.
    /// A *missing* credential is never counted, so an OAuth discovery probe cannot lock a
    /// client out.
    pub fn is_invalid_credential(&self) -> bool {
        matches!(
            self.kind,
            AuthFailureKind::InvalidCredentials | AuthFailureKind::InvalidToken
        )
    }
}

/// What the endpoint accepts and how to point clients at OAuth; shapes the error response.
///
/// The policy layer builds one per failing request from the endpoint's configuration.
///
/// ```
/// use tower_mcp_auth::{AuthError, ErrorContext};
///
/// let ctx = ErrorContext::both()
///     .with_resource_metadata("https://mcp.example.com/.well-known/oauth-protected-resource/mcp");
/// let res = AuthError::AuthenticationRequired.to_response(&ctx);
/// let challenge = res.headers()["www-authenticate"].to_str().unwrap();
/// assert!(challenge.starts_with("Bearer realm=\"mcp\""));
/// assert!(challenge.contains("resource_metadata=\"https://mcp.example.com/"));
/// ```
#[derive(Clone, Debug)]
pub struct ErrorContext<'a> {
    /// The endpoint accepts API keys.
    pub api_key: bool,
    /// API keys may come from the query string.
    pub api_key_query: bool,
    /// The endpoint accepts OAuth bearer tokens (enables the `WWW-Authenticate` challenge).
    pub oauth: bool,
    /// `realm` of the challenge.
    pub realm: &'a str,
    /// RFC 9728 protected resource metadata URL (challenge parameter and body field).
    pub resource_metadata: Option<Cow<'a, str>>,
    /// Scopes to name in the challenge when nothing more specific applies.
    pub scopes: &'a [String],
}

impl<'a> ErrorContext<'a> {
    /// An endpoint that accepts both API keys (header and query) and bearer tokens.
    pub fn both() -> Self {
        Self::new(true, true)
    }

    /// An endpoint that accepts only API keys: no challenge is ever sent.
    pub fn api_key_only() -> Self {
        Self::new(true, false)
    }

    /// An endpoint that accepts only bearer tokens.
    pub fn oauth_only() -> Self {
        Self::new(false, true)
    }

    /// An endpoint with the given mode flags.
    pub fn new(api_key: bool, oauth: bool) -> Self {
        Self {
            api_key,
            api_key_query: true,
            oauth,
            realm: "mcp",
            resource_metadata: None,
            scopes: &[],
        }
    }

    /// Sets the protected resource metadata URL.
    pub fn with_resource_metadata(mut self, url: impl Into<Cow<'a, str>>) -> Self {
        self.resource_metadata = Some(url.into());
        self
    }

    /// The `supported_methods` list of the body.
    fn supported_methods(&self) -> Vec<&'static str> {
        let mut methods = Vec::with_capacity(3);
        if self.oauth {
            methods.push(SUPPORTED_BEARER);
        }
        if self.api_key {
            methods.push(SUPPORTED_HEADER);
            if self.api_key_query {
                methods.push(SUPPORTED_QUERY);
            }
        }
        methods
    }
}

const SUPPORTED_BEARER: &str = "Authorization header (Bearer token)";
const SUPPORTED_HEADER: &str = "X-API-Key header";
const SUPPORTED_QUERY: &str = "query parameter (api_key or apikey)";

/// The contract's JSON error body: `error`, `error_description`, the fields that apply, and
/// `timestamp`. Every JSON error this crate sends is built here, so the contract has one
/// renderer; layers add their own fields with [`with_field`](Self::with_field).
#[derive(Serialize)]
pub(crate) struct ErrorBody<'a> {
    error: &'a str,
    error_description: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    supported_methods: Option<Vec<&'static str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_metadata: Option<&'a str>,
    timestamp: String,
    /// Fields a layer adds (an MCP `permission`, an OAuth `reason`); one named like a
    /// contract field replaces it.
    #[serde(skip)]
    extra: Vec<(&'static str, serde_json::Value)>,
}

impl<'a> ErrorBody<'a> {
    /// A body with the `error` code and description, stamped now.
    pub(crate) fn new(error: &'a str, description: impl Into<Cow<'a, str>>) -> Self {
        Self {
            error,
            error_description: description.into(),
            supported_methods: None,
            scope: None,
            retry_after: None,
            resource_metadata: None,
            timestamp: crate::time::format_rfc3339_millis(SystemTime::now()),
            extra: Vec::new(),
        }
    }

    /// Replaces the `error_description`.
    pub(crate) fn with_description(mut self, description: impl Into<Cow<'a, str>>) -> Self {
        self.error_description = description.into();
        self
    }

    /// Adds (or replaces) the field `name`.
    pub(crate) fn with_field(
        mut self,
        name: &'static str,
        value: impl Into<serde_json::Value>,
    ) -> Self {
        self.extra.push((name, value.into()));
        self
    }

    /// The body as a JSON value, for layers that embed it in another shape (the MCP layer
    /// puts it in a JSON-RPC error's `data`).
    pub(crate) fn to_value(&self) -> serde_json::Value {
        // Serializing a struct of strings cannot fail.
        let mut value = serde_json::to_value(self).unwrap_or_else(|_| serde_json::json!({}));
        if let serde_json::Value::Object(map) = &mut value {
            for (name, field) in &self.extra {
                map.insert((*name).to_owned(), field.clone());
            }
        }
        value
    }

    /// The serialized body.
    pub(crate) fn to_json(&self) -> Vec<u8> {
        let json = if self.extra.is_empty() {
            // The contract's field order, as serialized from the struct.
            serde_json::to_vec(self)
        } else {
            serde_json::to_vec(&self.to_value())
        };
        // Serializing strings cannot fail; fall back to a fixed body regardless.
        json.unwrap_or_else(|_| br#"{"error":"server_error"}"#.to_vec())
    }

    /// The response: `status`, this body, and the contract's headers.
    #[cfg_attr(not(feature = "oauth-client"), allow(dead_code))]
    pub(crate) fn into_response(self, status: StatusCode) -> Response<Full<Bytes>> {
        json_response(status, self.to_json())
    }
}

/// An error response around a serialized JSON body: `status`, `Content-Type:
/// application/json` and `Cache-Control: no-store`, as every error response of the crate.
pub(crate) fn json_response(status: StatusCode, json: Vec<u8>) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from(json)));
    *res.status_mut() = status;
    let headers = res.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

impl AuthError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::AuthenticationRequired
            | AuthError::InvalidCredentials(_)
            | AuthError::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            AuthError::AccessDenied(_)
            | AuthError::InsufficientScope { .. }
            | AuthError::InvalidOrigin(_) => StatusCode::FORBIDDEN,
            AuthError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            AuthError::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            AuthError::MalformedPath(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// The `error` code of the body (`authentication_required`, `invalid_token`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::AuthenticationRequired => "authentication_required",
            AuthError::InvalidCredentials(_) => "invalid_credentials",
            AuthError::InvalidToken(_) => "invalid_token",
            AuthError::AccessDenied(_) => "access_denied",
            AuthError::InsufficientScope { .. } => "insufficient_scope",
            AuthError::TooManyRequests { .. } => "too_many_requests",
            AuthError::TemporarilyUnavailable => "temporarily_unavailable",
            AuthError::MalformedPath(_) => "invalid_request",
            AuthError::InvalidOrigin(_) => "invalid_origin",
        }
    }

    /// The kind recorded in the response's [`AuthFailure`].
    pub fn failure_kind(&self) -> AuthFailureKind {
        match self {
            AuthError::AuthenticationRequired => AuthFailureKind::MissingCredentials,
            AuthError::InvalidCredentials(_) => AuthFailureKind::InvalidCredentials,
            AuthError::InvalidToken(_) => AuthFailureKind::InvalidToken,
            AuthError::AccessDenied(_) => AuthFailureKind::AccessDenied,
            AuthError::InsufficientScope { .. } => AuthFailureKind::InsufficientScope,
            AuthError::TooManyRequests { .. } => AuthFailureKind::RateLimited,
            AuthError::TemporarilyUnavailable => AuthFailureKind::Unavailable,
            AuthError::MalformedPath(_) => AuthFailureKind::MalformedRequest,
            AuthError::InvalidOrigin(_) => AuthFailureKind::InvalidOrigin,
        }
    }

    fn description(&self, ctx: &ErrorContext<'_>) -> Cow<'static, str> {
        match self {
            AuthError::AuthenticationRequired => Cow::Borrowed(match (ctx.oauth, ctx.api_key) {
                (true, true) => "Authentication required via OAuth bearer token or API key",
                (true, false) => "Authentication required via OAuth bearer token",
                (false, true) => "Authentication required via API key",
                (false, false) => "Authentication required",
            }),
            AuthError::InvalidCredentials(_) => {
                Cow::Borrowed("Authentication failed. Invalid credentials provided.")
            }
            AuthError::InvalidToken(reason) => Cow::Owned(reason.to_string()),
            AuthError::AccessDenied(message) => message.clone(),
            AuthError::InsufficientScope { .. } => {
                Cow::Borrowed("The credential lacks a permission or scope this endpoint requires")
            }
            AuthError::TooManyRequests { .. } => {
                Cow::Borrowed("Too many requests. Wait for the time given in Retry-After.")
            }
            AuthError::TemporarilyUnavailable => {
                Cow::Borrowed("Authentication is temporarily unavailable. Please retry shortly.")
            }
            AuthError::MalformedPath(reason) => Cow::Borrowed(reason.description()),
            AuthError::InvalidOrigin(OriginRejection::Origin) => {
                Cow::Borrowed("The request origin is not allowed")
            }
            AuthError::InvalidOrigin(OriginRejection::Host) => {
                Cow::Borrowed("The request host is not allowed")
            }
        }
    }

    /// Renders the response contract for this error on an endpoint described by `ctx`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_mcp_auth::{AuthError, ErrorContext};
    ///
    /// let res = AuthError::TooManyRequests { retry_after: Duration::from_millis(1500) }
    ///     .to_response(&ErrorContext::both());
    /// assert_eq!(res.status(), 429);
    /// assert_eq!(res.headers()["retry-after"], "2"); // whole seconds, rounded up
    /// assert_eq!(res.headers()["cache-control"], "no-store");
    /// ```
    pub fn to_response(&self, ctx: &ErrorContext<'_>) -> Response<Full<Bytes>> {
        self.to_response_for(ctx, None)
    }

    /// Like [`to_response`](Self::to_response), recording which credential `method` failed in
    /// the [`AuthFailure`] marker.
    pub fn to_response_for(
        &self,
        ctx: &ErrorContext<'_>,
        method: Option<AuthMethod>,
    ) -> Response<Full<Bytes>> {
        self.response_with_body(ctx, method, self.body(ctx).to_json())
    }

    /// The contract's JSON body for this error, for layers that embed it in another shape
    /// (the MCP layer puts it in a JSON-RPC error's `data`).
    pub(crate) fn body<'a>(&self, ctx: &'a ErrorContext<'_>) -> ErrorBody<'a> {
        // A malformed path names no endpoint, so no resource either.
        let resource_metadata = if ctx.oauth && !matches!(self, AuthError::MalformedPath(_)) {
            ctx.resource_metadata.as_deref()
        } else {
            None
        };
        ErrorBody {
            supported_methods: matches!(self, AuthError::AuthenticationRequired)
                .then(|| ctx.supported_methods()),
            scope: self.required_scope(),
            retry_after: self.retry_secs(),
            resource_metadata,
            ..ErrorBody::new(self.code(), self.description(ctx))
        }
    }

    /// The contract's status, headers and [`AuthFailure`] marker around `json`.
    pub(crate) fn response_with_body(
        &self,
        ctx: &ErrorContext<'_>,
        method: Option<AuthMethod>,
        json: Vec<u8>,
    ) -> Response<Full<Bytes>> {
        let mut res = json_response(self.status(), json);
        let headers = res.headers_mut();
        if let Some(secs) = self.retry_secs() {
            headers.insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(challenge) = self.challenge(ctx, self.required_scope().as_deref()) {
            // Values are escaped; a value that still is not a valid header (control bytes in
            // configuration) drops the challenge rather than failing the response.
            if let Ok(value) = HeaderValue::try_from(challenge) {
                headers.insert(WWW_AUTHENTICATE, value);
            }
        }
        res.extensions_mut().insert(AuthFailure {
            kind: self.failure_kind(),
            method,
        });
        res
    }

    fn retry_secs(&self) -> Option<u64> {
        match self {
            AuthError::TooManyRequests { retry_after } => Some(whole_seconds_up(*retry_after)),
            _ => None,
        }
    }

    fn required_scope(&self) -> Option<String> {
        match self {
            AuthError::InsufficientScope { required } => Some(required.join(" ")),
            _ => None,
        }
    }

    /// The `WWW-Authenticate` value, or `None` (api-key-only endpoints, 400, 403
    /// access_denied, 429, 503).
    fn challenge(&self, ctx: &ErrorContext<'_>, required_scope: Option<&str>) -> Option<String> {
        if !ctx.oauth {
            // A Bearer challenge is what sends MCP clients into an OAuth loop.
            return None;
        }
        let (error, description) = match self {
            AuthError::AuthenticationRequired | AuthError::InvalidCredentials(_) => (None, None),
            AuthError::InvalidToken(reason) => (Some("invalid_token"), Some(reason.to_string())),
            AuthError::InsufficientScope { .. } => (
                Some("insufficient_scope"),
                Some(self.description(ctx).into_owned()),
            ),
            _ => return None,
        };
        let mut out = String::with_capacity(160);
        out.push_str("Bearer ");
        push_param(&mut out, "realm", ctx.realm, true);
        if let Some(error) = error {
            push_param(&mut out, "error", error, false);
        }
        if let Some(description) = &description {
            push_param(&mut out, "error_description", description, false);
        }
        if let Some(url) = ctx.resource_metadata.as_deref() {
            push_param(&mut out, "resource_metadata", url, false);
        }
        let scope = match required_scope {
            Some(scope) => Some(Cow::Borrowed(scope)),
            None if !ctx.scopes.is_empty() => Some(Cow::Owned(ctx.scopes.join(" "))),
            None => None,
        };
        if let Some(scope) = scope {
            push_param(&mut out, "scope", &scope, false);
        }
        Some(out)
    }
}

/// Appends `name="value"` with RFC 7230 quoted-string escaping.
fn push_param(out: &mut String, name: &str, value: &str, first: bool) {
    if !first {
        out.push_str(", ");
    }
    let _ = write!(out, "{name}=\"");
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            // Control characters are not allowed in a header even when quoted.
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `Retry-After` seconds: rounded up, at least 1.
pub(crate) fn whole_seconds_up(d: Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(res: &Response<Full<Bytes>>) -> serde_json::Value {
        serde_json::from_slice(&crate::test_util::body_bytes(res.body().clone())).unwrap()
    }

    #[test]
    fn retry_after_rounds_up_to_at_least_one() {
        assert_eq!(whole_seconds_up(Duration::ZERO), 1);
        assert_eq!(whole_seconds_up(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds_up(Duration::from_secs(3)), 3);
        assert_eq!(whole_seconds_up(Duration::from_millis(3001)), 4);
    }

    #[test]
    fn challenge_values_are_escaped() {
        let mut s = String::new();
        push_param(&mut s, "realm", "a\"b\\c\r\n", true);
        assert_eq!(s, r#"realm="a\"b\\c  ""#);
    }

    #[test]
    fn missing_credentials_in_both_mode() {
        let ctx = ErrorContext::both().with_resource_metadata("https://h/.well-known/x");
        let res = AuthError::AuthenticationRequired.to_response(&ctx);
        let b = body(&res);
        assert_eq!(b["error"], "authentication_required");
        assert_eq!(
            b["error_description"],
            "Authentication required via OAuth bearer token or API key"
        );
        assert_eq!(
            b["supported_methods"],
            serde_json::json!([SUPPORTED_BEARER, SUPPORTED_HEADER, SUPPORTED_QUERY])
        );
        assert_eq!(b["resource_metadata"], "https://h/.well-known/x");
        assert_eq!(
            res.headers()[WWW_AUTHENTICATE],
            r#"Bearer realm="mcp", resource_metadata="https://h/.well-known/x""#
        );
    }

    #[test]
    fn invalid_token_challenge_has_error_and_description() {
        let ctx = ErrorContext::oauth_only();
        let res = AuthError::InvalidToken(TokenRejection::Expired).to_response(&ctx);
        assert_eq!(
            res.headers()[WWW_AUTHENTICATE],
            r#"Bearer realm="mcp", error="invalid_token", error_description="The access token has expired""#
        );
        assert!(body(&res).get("supported_methods").is_none());
    }

    #[test]
    fn insufficient_scope_names_the_required_scope() {
        let res = AuthError::InsufficientScope {
            required: vec!["tools:write".into(), "admin".into()],
        }
        .to_response(&ErrorContext::both());
        assert_eq!(res.status(), 403);
        let h = res.headers()[WWW_AUTHENTICATE].to_str().unwrap();
        assert!(h.contains(r#"error="insufficient_scope""#), "{h}");
        assert!(h.contains(r#"scope="tools:write admin""#), "{h}");
        assert_eq!(body(&res)["scope"], "tools:write admin");
    }

    #[test]
    fn no_challenge_without_oauth_or_for_403_429_503() {
        let key_only = ErrorContext::api_key_only();
        for err in [
            AuthError::AuthenticationRequired,
            AuthError::InvalidCredentials(CredentialRejection::Unknown),
            AuthError::InsufficientScope {
                required: vec!["x".into()],
            },
        ] {
            assert!(err
                .to_response(&key_only)
                .headers()
                .get(WWW_AUTHENTICATE)
                .is_none());
        }
        let both = ErrorContext::both();
        for err in [
            AuthError::AccessDenied("no".into()),
            AuthError::TooManyRequests {
                retry_after: Duration::from_secs(1),
            },
            AuthError::TemporarilyUnavailable,
        ] {
            let res = err.to_response(&both);
            assert!(res.headers().get(WWW_AUTHENTICATE).is_none(), "{err:?}");
            assert_eq!(res.headers()[CONTENT_TYPE], "application/json");
            assert_eq!(res.headers()[CACHE_CONTROL], "no-store");
        }
    }

    #[test]
    fn malformed_path_is_400_invalid_request_without_challenge() {
        let err = AuthError::MalformedPath(PathRejection::DotSegment);
        // Even on an OAuth endpoint with metadata: the path names no endpoint.
        let ctx = ErrorContext::both().with_resource_metadata("https://h/.well-known/x");
        let res = err.to_response(&ctx);
        assert_eq!(res.status(), 400);
        assert_eq!(res.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(res.headers()[CACHE_CONTROL], "no-store");
        assert!(res.headers().get(WWW_AUTHENTICATE).is_none());
        let failure = res.extensions().get::<AuthFailure>().unwrap();
        assert_eq!(failure.kind, AuthFailureKind::MalformedRequest);
        assert!(!failure.is_invalid_credential());
        let b = body(&res);
        assert_eq!(b["error"], "invalid_request");
        assert_eq!(
            b["error_description"],
            "Malformed request path: dot segments (. and ..), raw or encoded, are not allowed"
        );
        assert!(b.get("supported_methods").is_none());
        assert!(b.get("resource_metadata").is_none());
    }

    #[test]
    fn error_body_keeps_the_contract_order_and_added_fields_replace() {
        let ctx = ErrorContext::both();
        let err = AuthError::InsufficientScope {
            required: vec!["a".into()],
        };
        let json = String::from_utf8(err.body(&ctx).to_json()).unwrap();
        assert!(
            json.starts_with(r#"{"error":"insufficient_scope","error_description":"#),
            "{json}"
        );
        let scope = json.find(r#""scope":"a""#).unwrap();
        assert!(scope < json.find(r#""timestamp""#).unwrap(), "{json}");
        let value = err
            .body(&ctx)
            .with_field("scope", "b")
            .with_field("reason", "r")
            .to_value();
        assert_eq!(value["scope"], "b");
        assert_eq!(value["reason"], "r");
        assert_eq!(value["error"], "insufficient_scope");
    }

    #[test]
    fn timestamp_is_rfc3339_utc_millis() {
        let res = AuthError::TemporarilyUnavailable.to_response(&ErrorContext::both());
        let b = body(&res);
        let ts = b["timestamp"].as_str().unwrap();
        assert_eq!(ts.len(), 24, "{ts}");
        assert!(ts.ends_with('Z'));
        assert!(crate::time::parse_rfc3339(ts).is_some());
        assert_eq!(res.status(), 503);
        assert_eq!(b["error"], "temporarily_unavailable");
    }
}
