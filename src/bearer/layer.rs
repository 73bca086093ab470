//! [`BearerLayer`].

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use crate::credentials::{CredentialSources, Parse};

use super::service::BearerService;
use super::verifier::TokenVerifier;

/// Identifies callers by OAuth bearer token (`Authorization: Bearer`, scheme
/// case-insensitive; never from the query string), and, opt-in, by a session cookie
/// ([`session_cookie`](Self::session_cookie)).
///
/// Verifies the token with a [`TokenVerifier`] and inserts a
/// [`BearerOutcome`](crate::bearer::BearerOutcome) into the request extensions. Like every
/// authenticator it never rejects a request itself; [`EndpointPolicyLayer`](crate::policy::EndpointPolicyLayer)
/// decides.
///
/// ```
/// use tower::ServiceBuilder;
/// use tower_mcp_auth::{bearer::BearerLayer, EndpointPolicy, policy::EndpointPolicyLayer, JwtVerifier};
///
/// let verifier = JwtVerifier::hs256(b"an-hs256-secret-that-is-32-bytes+").build().unwrap();
/// let svc = ServiceBuilder::new()
///     .layer(BearerLayer::new(verifier))
///     .layer(EndpointPolicyLayer::new(EndpointPolicy::oauth_only()))
///     .service_fn(|_req: http::Request<String>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
///     });
/// # let _ = svc;
/// ```
#[derive(Clone)]
#[must_use]
pub struct BearerLayer {
    /// `None` when built by [`McpAuth`](crate::McpAuth) without a verifier: pass through.
    verifier: Option<Arc<dyn TokenVerifier>>,
    /// Where tokens are read from (the session cookie, if any).
    sources: CredentialSources,
    parse: Parse,
}

impl BearerLayer {
    /// Verifies tokens with `verifier`.
    pub fn new(verifier: impl TokenVerifier) -> Self {
        Self::from_shared(Arc::new(verifier))
    }

    /// Uses a verifier shared with other parts of the application.
    pub fn from_shared(verifier: Arc<dyn TokenVerifier>) -> Self {
        Self {
            verifier: Some(verifier),
            sources: CredentialSources::new(),
            parse: Parse::Own,
        }
    }

    /// Also reads the token from the cookie `name` when the request has no
    /// `Authorization: Bearer` header (the header always wins). This is how a browser user
    /// logged in by the OAuth routes (`oauth-client` feature) reaches the same stack: the
    /// session cookie holds a JWT that the layer's verifier checks like any bearer token.
    ///
    /// Several cookies of that name (one may have been planted by a sibling subdomain:
    /// cookie tossing) are each tried, up to four, and the first that verifies wins; values
    /// that are not tokens are skipped. Only when no well-formed one is left is the request a
    /// malformed token (401 `invalid_token`), which the failed-auth lockout does not count.
    /// Prefer a `__Host-` name (the default of the OAuth session): browsers refuse to let any
    /// other host set it. Tokens are never read from the query string. A name that is not an
    /// RFC 6265 cookie name never matches.
    ///
    /// Cookies are sent by browsers on cross-site requests too: keep the session cookie
    /// `SameSite=Lax` (or `Strict`) so a cross-site `POST` carries no session.
    ///
    /// ```
    /// use tower_mcp_auth::{bearer::BearerLayer, JwtVerifier};
    ///
    /// let verifier = JwtVerifier::hs256(b"an-hs256-secret-that-is-32-bytes+").build().unwrap();
    /// let layer = BearerLayer::new(verifier).session_cookie("__Host-mcp_session");
    /// # let _ = layer;
    /// ```
    pub fn session_cookie(mut self, name: impl Into<String>) -> Self {
        self.sources = self.sources.session_cookie(name);
        self
    }

    /// Where tokens are read from: the session cookie of `sources` (the query string never
    /// carries tokens). Give every layer the same value.
    ///
    /// ```
    /// use tower_mcp_auth::{bearer::BearerLayer, CredentialSources, JwtVerifier};
    ///
    /// let sources = CredentialSources::new().session_cookie("__Host-mcp_session");
    /// let verifier = JwtVerifier::hs256(b"an-hs256-secret-that-is-32-bytes+").build().unwrap();
    /// let layer = BearerLayer::new(verifier).credential_sources(sources);
    /// # let _ = layer;
    /// ```
    pub fn credential_sources(mut self, sources: CredentialSources) -> Self {
        self.sources = sources;
        self
    }
}

impl BearerLayer {
    /// Inside an [`McpAuth`](crate::McpAuth) stack: the shared sources and how this layer
    /// gets the request's parsed credentials.
    pub(crate) fn stacked(mut self, sources: CredentialSources, parse: Parse) -> Self {
        self.sources = sources;
        self.parse = parse;
        self
    }

    pub(crate) fn disabled() -> Self {
        Self {
            verifier: None,
            sources: CredentialSources::new(),
            parse: Parse::Own,
        }
    }
}

impl<S> Layer<S> for BearerLayer {
    type Service = BearerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerService::new(
            inner,
            self.verifier.clone(),
            self.sources.clone(),
            self.parse,
        )
    }
}

impl fmt::Debug for BearerLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerLayer")
            .field("session_cookie", &self.sources.session_cookie_name())
            .finish_non_exhaustive()
    }
}
