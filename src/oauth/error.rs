//! [`OAuthError`] (what the start and callback routes can answer) and [`OAuthConfigError`].

use std::borrow::Cow;

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use http::{Response, StatusCode};
use http_body_util::Full;

use crate::error::ErrorBody;
use crate::store::StoreError;

use super::StateError;

/// A failed login or authorization step, shown to the user as a clear JSON body or, for a
/// browser (`Accept: text/html`), a small HTML page with a link to start again. Never a 500
/// and never a redirect, so a failure cannot loop.
///
/// | variant | status | `error` |
/// |---|---|---|
/// | [`State`](Self::State) | 400 / 403 | `invalid_state` (and a `reason`) |
/// | [`InvalidRequest`](Self::InvalidRequest), [`RedirectNotAllowed`](Self::RedirectNotAllowed) | 400 | `invalid_request` |
/// | [`UnknownProvider`](Self::UnknownProvider) | 404 | `not_found` |
/// | [`LoginRequired`](Self::LoginRequired) | 401 | `authentication_required` |
/// | [`ProviderDenied`](Self::ProviderDenied) | 403 | `access_denied` |
/// | [`AccessDenied`](Self::AccessDenied) | 403 | `access_denied` |
/// | [`InvalidGrant`](Self::InvalidGrant) | 400 | `invalid_grant` |
/// | [`InvalidIdToken`](Self::InvalidIdToken) | 502 | `invalid_id_token` |
/// | [`Provider`](Self::Provider) | 502 | `provider_error` |
/// | [`ProviderTimeout`](Self::ProviderTimeout) | 504 | `provider_timeout` |
/// | [`Store`](Self::Store) | 503 | `temporarily_unavailable` |
///
/// ```
/// use tower_mcp_auth::oauth::{OAuthError, StateError};
///
/// let err = OAuthError::from(StateError::Expired);
/// assert_eq!(err.status(), 400);
/// assert_eq!(err.code(), "invalid_state");
/// let page = err.to_response(true, "/");
/// assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OAuthError {
    /// The callback's `state` was refused.
    #[error(transparent)]
    State(#[from] StateError),
    /// A parameter is missing, repeated or too large.
    #[error("{0}")]
    InvalidRequest(&'static str),
    /// The post-login redirect target is not one of the configured targets.
    #[error("The redirect target is not allowed: only configured targets can be used after login")]
    RedirectNotAllowed,
    /// No provider or upstream with this name.
    #[error("Unknown OAuth provider or upstream")]
    UnknownProvider,
    /// Connecting an upstream needs a logged-in user.
    #[error("Sign in first: connecting an upstream needs a logged-in user")]
    LoginRequired,
    /// The provider sent the user back with an error (`access_denied`, `consent_required`...).
    #[error("The sign-in was cancelled or refused at the identity provider ({code})")]
    ProviderDenied {
        /// The provider's `error` code (sanitized).
        code: String,
    },
    /// The provider vouched for the user, but the [`LoginPolicy`](super::LoginPolicy) does
    /// not allow this account. The description names no account, address or id.
    #[error("This account is not allowed to sign in to this service. Sign in with another account, or ask the administrator for access.")]
    AccessDenied,
    /// The token endpoint refused the code (`invalid_grant`).
    #[error("The identity provider rejected the authorization code (invalid_grant): it expired, was already used, or the PKCE verifier did not match. Start the sign-in again.")]
    InvalidGrant,
    /// The `id_token` failed a check (which one is named).
    #[error("The identity provider's id_token is not valid ({0})")]
    InvalidIdToken(&'static str),
    /// The provider failed in another way (the message never holds a token or a body).
    #[error("The identity provider failed: {0}")]
    Provider(Cow<'static, str>),
    /// The provider did not answer in time.
    #[error("The identity provider did not answer in time")]
    ProviderTimeout,
    /// The state store failed.
    #[error("The state store is unavailable")]
    Store(#[source] StoreError),
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        OAuthError::Store(e)
    }
}

impl OAuthError {
    /// The HTTP status: always 4xx, 502, 503 or 504.
    pub fn status(&self) -> StatusCode {
        match self {
            OAuthError::State(e) => e.status(),
            OAuthError::InvalidRequest(_) | OAuthError::RedirectNotAllowed => {
                StatusCode::BAD_REQUEST
            }
            OAuthError::UnknownProvider => StatusCode::NOT_FOUND,
            OAuthError::LoginRequired => StatusCode::UNAUTHORIZED,
            OAuthError::ProviderDenied { .. } | OAuthError::AccessDenied => StatusCode::FORBIDDEN,
            OAuthError::InvalidGrant => StatusCode::BAD_REQUEST,
            OAuthError::InvalidIdToken(_) | OAuthError::Provider(_) => StatusCode::BAD_GATEWAY,
            OAuthError::ProviderTimeout => StatusCode::GATEWAY_TIMEOUT,
            OAuthError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The `error` code of the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::State(_) => "invalid_state",
            OAuthError::InvalidRequest(_) | OAuthError::RedirectNotAllowed => "invalid_request",
            OAuthError::UnknownProvider => "not_found",
            OAuthError::LoginRequired => "authentication_required",
            OAuthError::ProviderDenied { .. } | OAuthError::AccessDenied => "access_denied",
            OAuthError::InvalidGrant => "invalid_grant",
            OAuthError::InvalidIdToken(_) => "invalid_id_token",
            OAuthError::Provider(_) => "provider_error",
            OAuthError::ProviderTimeout => "provider_timeout",
            OAuthError::Store(_) => "temporarily_unavailable",
        }
    }

    /// Renders the error: an HTML page with a "start again" link to `retry` when `html`,
    /// JSON otherwise. `Cache-Control: no-store` either way.
    pub fn to_response(&self, html: bool, retry: &str) -> Response<Full<Bytes>> {
        let reason = match self {
            OAuthError::State(e) => Some(e.reason()),
            _ => None,
        };
        let description = self.to_string();
        if html {
            html_response(self.status(), &description, retry)
        } else {
            json_response(self.status(), self.code(), &description, reason)
        }
    }
}

/// A JSON error body in the crate's contract (`error`, `error_description`, `timestamp`, and
/// the state error's `reason` when there is one), rendered by the core builder
/// ([`ErrorBody`]); the OAuth routes answer their JSON errors with it.
pub(crate) fn json_response(
    status: StatusCode,
    code: &str,
    description: &str,
    reason: Option<&str>,
) -> Response<Full<Bytes>> {
    let body = ErrorBody::new(code, description);
    match reason {
        Some(reason) => body.with_field("reason", reason),
        None => body,
    }
    .into_response(status)
}

fn html_response(status: StatusCode, description: &str, retry: &str) -> Response<Full<Bytes>> {
    html_page(
        status,
        "Sign-in failed",
        &format!(
            "<p>{}</p>\n<p><a href=\"{}\">Start again</a></p>",
            escape_html(description),
            escape_html(retry)
        ),
    )
}

/// The one small HTML page of the OAuth side (login errors, the authorization server's error
/// and consent pages): `no-store`, no scripts, forms only to this origin, no framing.
/// `body_html` must already be escaped.
pub(crate) fn html_page(status: StatusCode, title: &str, body_html: &str) -> Response<Full<Bytes>> {
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title></head>\n<body>\n<h1>{}</h1>\n{body_html}\n</body></html>\n",
        escape_html(title),
        escape_html(title)
    );
    let mut res = Response::new(Full::new(Bytes::from(page)));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'none'; form-action 'self'; frame-ancestors 'none'"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    res
}

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A configuration error found when building an [`OAuthClient`](super::OAuthClient).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OAuthConfigError {
    /// A secret is shorter than 32 bytes.
    #[error("the {what} must be at least 32 bytes (got {len})")]
    WeakSecret {
        /// Which secret.
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// No state secret was configured.
    #[error("a state secret is required (STATE_SECRET): every instance must use the same one")]
    MissingStateSecret,
    /// The redirect URI is not usable.
    #[error("invalid redirect URI: {0}")]
    RedirectUri(&'static str),
    /// A key is malformed.
    #[error("{0}")]
    InvalidKey(&'static str),
    /// The session cookie cannot be made non-`Secure` for this redirect URI, or its name is
    /// not a cookie name.
    #[error("{0}")]
    Session(&'static str),
    /// No provider was configured.
    #[error("at least one provider is required")]
    NoProviders,
    /// Two providers have the same name.
    #[error("two providers are named {0:?}")]
    DuplicateProvider(String),
    /// An upstream names a provider that is not configured, or upstreams are configured
    /// without an encryption key.
    #[error("upstream {upstream:?}: {reason}")]
    Upstream {
        /// The upstream id.
        upstream: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A post-login redirect target is not a local path or an absolute http(s) URL.
    #[error(
        "invalid redirect target {0:?}: use a path starting with `/` or an absolute https URL"
    )]
    RedirectTarget(String),
    /// The start path template is invalid.
    #[error("invalid start path: {0}")]
    StartPath(&'static str),
    /// The logout path is invalid.
    #[error("invalid logout path: {0}")]
    LogoutPath(&'static str),
    /// A provider could not be set up (discovery, JWKS, endpoints).
    #[error("provider {provider:?}: {reason}")]
    Provider {
        /// The provider's name.
        provider: String,
        /// What went wrong.
        reason: Cow<'static, str>,
    },
    /// The session is issued without a login policy: choose who may log in with
    /// [`login_policy`](super::OAuthClientBuilder::login_policy) (or, knowingly,
    /// [`allow_any_account`](super::OAuthClientBuilder::allow_any_account)).
    #[error("sessions are issued but no login policy says who may log in: set login_policy(LoginPolicy::new().allow_…) or allow_any_account()")]
    NoLoginPolicy,
    /// A login policy entry is invalid.
    #[error("invalid login policy: {0}")]
    LoginPolicy(&'static str),
    /// The HTTP client could not be built.
    #[error("the HTTP client could not be built")]
    Http,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped_and_never_redirects() {
        let res = html_response(StatusCode::FORBIDDEN, "<script>x</script>", "/a\"b");
        let body = crate::test_util::body_bytes(res.into_body());
        let text = String::from_utf8_lossy(&body);
        assert!(!text.contains("<script>"), "{text}");
        assert!(text.contains("&lt;script&gt;"));
        assert!(text.contains("href=\"/a&quot;b\""));
        assert!(!text.contains("http-equiv"));
    }

    #[test]
    fn statuses_are_never_500() {
        for e in [
            OAuthError::State(StateError::InvalidSignature),
            OAuthError::InvalidRequest("x"),
            OAuthError::UnknownProvider,
            OAuthError::ProviderDenied {
                code: "access_denied".into(),
            },
            OAuthError::InvalidGrant,
            OAuthError::AccessDenied,
            OAuthError::InvalidIdToken("nonce"),
            OAuthError::Provider("down".into()),
            OAuthError::ProviderTimeout,
            OAuthError::Store(StoreError::Timeout { backend: "redis" }),
        ] {
            assert_ne!(e.status(), StatusCode::INTERNAL_SERVER_ERROR, "{e:?}");
            let res = e.to_response(false, "/");
            assert_eq!(res.headers()[CACHE_CONTROL], "no-store");
            assert!(res.headers().get(http::header::LOCATION).is_none());
        }
    }
}
