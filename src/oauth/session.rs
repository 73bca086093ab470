//! Browser sessions after login: [`SessionConfig`] signs a short-lived HS256 JWT and puts it
//! in an `HttpOnly; Secure; SameSite=Lax` cookie that [`BearerLayer::session_cookie`]
//! accepts.
//!
//! [`BearerLayer::session_cookie`]: crate::bearer::BearerLayer::session_cookie

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::HeaderValue;
use serde_json::{json, Value};

use crate::bearer::{install_crypto_provider, JwtVerifier};

use super::{OAuthConfigError, UserInfo};

/// Default session cookie name. The `__Host-` prefix makes browsers accept the cookie only
/// with `Secure`, `Path=/` and no `Domain`, from the host itself: a sibling subdomain cannot
/// plant (toss) a cookie of this name, nor overwrite it.
pub const DEFAULT_SESSION_COOKIE: &str = "__Host-mcp_session";
/// Default session lifetime.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(3600);
/// Default `iss` of session tokens.
pub const DEFAULT_SESSION_ISSUER: &str = "tower-mcp-auth";

/// How sessions are signed and carried.
///
/// The session is a JWT signed with HS256 under `secret` (32+ bytes): `sub` is the
/// namespaced user id ([`UserInfo::user_id`]: `github:583231`, `google:…`,
/// `oidc:{issuer}:{sub}`, never a bare provider id that two providers could share),
/// `idp` the provider, `idp_sub` the provider's own id, `iss` / `aud` as configured, `exp` after
/// [`ttl`](Self::ttl) (default one hour), plus `name`, `email` (only a verified one) and `scope` when known. Use
/// [`verifier`](Self::verifier) in the `BearerLayer` (or [`McpAuth`](crate::McpAuth)) that
/// protects your MCP endpoint, with [`session_cookie`](crate::bearer::BearerLayer::session_cookie)
/// set to [`cookie_name`](Self::cookie_name).
///
/// The cookie is `__Host-mcp_session` (see [`DEFAULT_SESSION_COOKIE`]), with
/// `HttpOnly; Secure; SameSite=Lax; Path=/` and no `Domain`. `Secure` can be turned off only
/// when the redirect URI is `http://localhost` (or another loopback address), for local
/// development; [`OAuthClientBuilder::build`](super::OAuthClientBuilder::build) refuses it
/// otherwise. Without `Secure` a browser refuses `__Host-` and `__Secure-` cookies, so the
/// name then drops that prefix (`mcp_session`); [`cookie_name`](Self::cookie_name) always
/// gives the name in use.
///
/// ```
/// use tower_mcp_auth::oauth::{SessionConfig, UserInfo};
/// use tower_mcp_auth::{bearer::BearerLayer, TokenVerifier};
///
/// let session = SessionConfig::new(b"a-session-secret-of-at-least-32-bytes").unwrap()
///     .scopes(["tools/call"]);
/// let token = session.issue(&UserInfo::new("github", "583231")).unwrap();
///
/// let identity = session.verifier().verify_now(&token).unwrap();
/// assert_eq!(identity.user_id(), Some("github:583231"));
/// assert!(identity.has_permission("tools/call"));
///
/// let layer = BearerLayer::new(session.verifier()).session_cookie(session.cookie_name());
/// # let _ = layer;
/// ```
#[derive(Clone)]
#[must_use]
pub struct SessionConfig {
    secret: Vec<u8>,
    issuer: String,
    audience: Option<String>,
    ttl: Duration,
    cookie_name: String,
    secure: bool,
    scopes: Vec<String>,
}

impl SessionConfig {
    /// Sessions signed with `secret` (at least 32 bytes).
    ///
    /// # Errors
    ///
    /// [`OAuthConfigError::WeakSecret`] for a shorter secret.
    pub fn new(secret: impl AsRef<[u8]>) -> Result<Self, OAuthConfigError> {
        let secret = secret.as_ref();
        if secret.len() < 32 {
            return Err(OAuthConfigError::WeakSecret {
                what: "session secret",
                len: secret.len(),
            });
        }
        Ok(Self {
            secret: secret.to_vec(),
            issuer: DEFAULT_SESSION_ISSUER.to_owned(),
            audience: None,
            ttl: DEFAULT_SESSION_TTL,
            cookie_name: DEFAULT_SESSION_COOKIE.to_owned(),
            secure: true,
            scopes: Vec::new(),
        })
    }

    /// Session lifetime (default one hour; at least one second).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl.max(Duration::from_secs(1));
        self
    }

    /// `iss` of session tokens (default `tower-mcp-auth`).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = issuer.into();
        self
    }

    /// `aud` of session tokens (for example your MCP endpoint's URL); checked by
    /// [`verifier`](Self::verifier). Unset by default.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Cookie name (default `__Host-mcp_session`; without `Secure`, the name without its
    /// `__Host-` / `__Secure-` prefix). Must be an RFC 6265 token. Give this to
    /// [`BearerLayer::session_cookie`](crate::bearer::BearerLayer::session_cookie).
    pub fn cookie_name(&self) -> &str {
        if self.secure {
            return &self.cookie_name;
        }
        let name = self.cookie_name.as_str();
        name.strip_prefix("__Host-")
            .or_else(|| name.strip_prefix("__Secure-"))
            .filter(|rest| !rest.is_empty())
            .unwrap_or(name)
    }

    /// Renames the cookie.
    pub fn with_cookie_name(mut self, name: impl Into<String>) -> Self {
        self.cookie_name = name.into();
        self
    }

    /// Scopes (permissions) every session grants, as the `scope` claim.
    pub fn scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> Self {
        self.scopes = super::owned_strings(scopes);
        self
    }

    /// Drops the cookie's `Secure` attribute. Only for a `http://localhost` redirect URI
    /// (development); the client builder refuses it for any other.
    pub fn insecure_cookie_for_localhost(mut self) -> Self {
        self.secure = false;
        self
    }

    pub(crate) fn is_secure(&self) -> bool {
        self.secure
    }

    pub(crate) fn cookie_name_is_valid(&self) -> bool {
        is_cookie_token(self.cookie_name())
    }

    /// The verifier for session tokens: HS256 under the secret, `iss` (and `aud` when set).
    pub fn verifier(&self) -> JwtVerifier {
        let mut builder = JwtVerifier::hs256(&self.secret).issuer(self.issuer.clone());
        if let Some(aud) = &self.audience {
            builder = builder.audience(aud.clone());
        }
        // The secret was checked to be 32+ bytes and HS256 matches an HMAC key: this
        // configuration always builds.
        builder.build().expect("a checked HS256 configuration")
    }

    /// Signs a session token for `user`.
    ///
    /// # Errors
    ///
    /// Only if the JWT library fails to sign, which it does not for HMAC keys.
    pub fn issue(&self, user: &UserInfo) -> Result<String, jsonwebtoken::errors::Error> {
        install_crypto_provider();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let mut claims = json!({
            "sub": user.user_id,
            "idp": user.provider,
            "idp_sub": user.subject,
            "iss": self.issuer,
            "iat": now,
            "exp": now + self.ttl.as_secs(),
            "jti": URL_SAFE_NO_PAD.encode(super::random_bytes::<16>()),
        });
        let map = claims.as_object_mut().expect("a JSON object literal");
        if let Some(aud) = &self.audience {
            map.insert("aud".into(), Value::String(aud.clone()));
        }
        if let Some(name) = &user.name {
            map.insert("name".into(), Value::String(name.clone()));
        }
        if let Some(email) = &user.email {
            map.insert("email".into(), Value::String(email.clone()));
        }
        if !self.scopes.is_empty() {
            map.insert("scope".into(), Value::String(self.scopes.join(" ")));
        }
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(&self.secret),
        )
    }

    /// The `Set-Cookie` value carrying `token`.
    pub fn set_cookie(&self, token: &str) -> HeaderValue {
        cookie_header(
            self.cookie_name(),
            token,
            self.ttl.as_secs().max(1),
            self.secure,
        )
    }

    /// A `Set-Cookie` value that removes the session cookie (logout).
    pub fn clear_cookie(&self) -> HeaderValue {
        cookie_header(self.cookie_name(), "", 0, self.secure)
    }
}

/// `name=value; Max-Age=..; Path=/; HttpOnly; [Secure;] SameSite=Lax`.
pub(crate) fn cookie_header(name: &str, value: &str, max_age: u64, secure: bool) -> HeaderValue {
    cookie_header_at(name, value, max_age, secure, "/")
}

/// [`cookie_header`] with another `Path`.
pub(crate) fn cookie_header_at(
    name: &str,
    value: &str,
    max_age: u64,
    secure: bool,
    path: &str,
) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let path = if path.starts_with('/') && !path.contains(';') {
        path
    } else {
        "/"
    };
    let text =
        format!("{name}={value}; Max-Age={max_age}; Path={path}; HttpOnly{secure}; SameSite=Lax");
    // Names are checked at build time and values are base64url: always a valid header.
    HeaderValue::try_from(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// RFC 6265 cookie-name (an RFC 7230 token).
pub(crate) fn is_cookie_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionConfig")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("ttl", &self.ttl)
            .field("cookie_name", &self.cookie_name)
            .field("secure", &self.secure)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_attributes() {
        let s = SessionConfig::new([7u8; 32]).unwrap();
        let c = s.set_cookie("abc");
        // `__Host-`: Secure, Path=/, no Domain.
        assert_eq!(
            c,
            "__Host-mcp_session=abc; Max-Age=3600; Path=/; HttpOnly; Secure; SameSite=Lax"
        );
        assert!(!c.to_str().unwrap().to_ascii_lowercase().contains("domain"));
        let dev = s.clone().insecure_cookie_for_localhost();
        assert_eq!(dev.cookie_name(), "mcp_session");
        assert_eq!(
            dev.set_cookie("abc"),
            "mcp_session=abc; Max-Age=3600; Path=/; HttpOnly; SameSite=Lax"
        );
        let custom = s
            .clone()
            .with_cookie_name("__Secure-sid")
            .insecure_cookie_for_localhost();
        assert_eq!(custom.cookie_name(), "sid");
        assert_eq!(s.clone().with_cookie_name("sid").cookie_name(), "sid");
        assert!(s.clear_cookie().to_str().unwrap().contains("Max-Age=0"));
    }

    #[test]
    fn debug_hides_the_secret_and_names_are_checked() {
        let s = SessionConfig::new(b"super-secret-super-secret-super-secret").unwrap();
        assert!(!format!("{s:?}").contains("super-secret"));
        assert!(SessionConfig::new(b"short").is_err());
        assert!(is_cookie_token("mcp_session"));
        assert!(!is_cookie_token("a b"));
        assert!(!is_cookie_token("a=b"));
        assert!(!is_cookie_token(""));
    }
}
