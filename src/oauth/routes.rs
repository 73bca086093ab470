//! [`OAuthRoutes`]: the start and callback routes as one Tower service.

use std::convert::Infallible;
use std::fmt;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::ACCEPT;
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use tower_service::Service;

use crate::deferred::BoxFuture;

use super::client::{no_store_redirect, query_params, request_user};
use super::{OAuthClient, OAuthError, StartOptions};

/// The OAuth routes as a Tower service: `GET {start path}` (default
/// `/auth/oauth/{provider}/start`, optional `?redirect_to=` and `?upstream=`) answers `302`
/// to the provider; `GET {callback path}` (the redirect URI's path) completes the flow, sets
/// the session cookie and answers `302` to the target; `POST {logout path}` (default
/// `/auth/logout`) clears the session cookie and answers `303` to the default target. Errors
/// are JSON, or an HTML page when the client accepts `text/html`; never a redirect, never a
/// 500. Other paths get a JSON 404.
///
/// The service looks at the full request path, so mount it without stripping a prefix:
/// axum's `route_service` (not `nest_service`) or, with the crate's `axum` feature,
/// [`OAuthRoutes::into_router`]. Put your `BearerLayer` (with the session cookie) in front
/// of it when upstream flows are used: starting one needs a logged-in user. Each start stores
/// a small record for the state TTL; a [`RateLimitLayer`](crate::rate_limit::RateLimitLayer) keyed by client IP on the start
/// route bounds what one client can make it store.
///
/// ```
/// use axum::Router;
/// use tower_mcp_auth::oauth::OAuthClient;
///
/// fn mount(app: Router, oauth: &OAuthClient) -> Router {
///     app.route_service("/auth/oauth/{provider}/start", oauth.routes())
///         .route_service("/auth/oauth/callback", oauth.routes())
/// }
/// ```
#[derive(Clone)]
pub struct OAuthRoutes {
    client: OAuthClient,
}

impl OAuthRoutes {
    pub(crate) fn new(client: OAuthClient) -> Self {
        Self { client }
    }

    /// An axum `Router` with the start, callback and logout routes, to `merge` into an app.
    ///
    /// ```
    /// # async fn demo(oauth: tower_mcp_auth::oauth::OAuthClient) {
    /// let app: axum::Router = axum::Router::new().merge(oauth.routes().into_router());
    /// # let _ = app; }
    /// ```
    #[cfg(feature = "axum")]
    pub fn into_router(self) -> axum::Router {
        let start = self.client.start_path("{provider}");
        let callback = self.client.callback_path().to_owned();
        let logout = self.client.logout_path().to_owned();
        axum::Router::new()
            .route_service(&start, self.clone())
            .route_service(&callback, self.clone())
            .route_service(&logout, self)
    }

    /// Handles one request.
    pub async fn handle(&self, parts: Parts) -> Response<Full<Bytes>> {
        let client = &self.client;
        let html = wants_html(&parts);
        let home = client.default_target().to_owned();
        let path = parts.uri.path();
        let result = if path == client.callback_path() {
            if !is_get(&parts.method) {
                return method_not_allowed("GET");
            }
            match client.callback(&parts).await {
                Ok(outcome) => return client.success_response(&parts, &outcome),
                Err(e) => Err(e),
            }
        } else if path == client.logout_path() {
            if parts.method != Method::POST {
                return method_not_allowed("POST");
            }
            return logout(client);
        } else if let Some(provider) = client.start_route_provider(path) {
            if !is_get(&parts.method) {
                return method_not_allowed("GET");
            }
            start(client, provider, &parts)
                .await
                .map(super::AuthorizationRedirect::into_response)
        } else {
            Err(OAuthError::UnknownProvider)
        };
        result.unwrap_or_else(|e| e.to_response(html, &home))
    }
}

async fn start(
    client: &OAuthClient,
    provider: &str,
    parts: &Parts,
) -> Result<super::AuthorizationRedirect, OAuthError> {
    let query = parts.uri.query().unwrap_or("");
    let mut params = query_params(query, &["redirect_to", "upstream"])?.into_iter();
    let (redirect_to, upstream) = (params.next().flatten(), params.next().flatten());
    let mut options = StartOptions::default();
    if let Some(target) = redirect_to {
        options = options.redirect_to(target);
    }
    if let Some(upstream) = upstream {
        let user = request_user(parts).ok_or(OAuthError::LoginRequired)?;
        options = options.upstream(upstream).user(user);
    }
    client.start(provider, options).await
}

/// Only `GET`: a `HEAD` from a link prefetcher must not consume a callback's state.
fn is_get(method: &Method) -> bool {
    method == Method::GET
}

fn wants_html(parts: &Parts) -> bool {
    parts
        .headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/html"))
}

fn method_not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    let mut res = super::error::json_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request",
        &format!("Use {allow}"),
        None,
    );
    res.headers_mut()
        .insert(http::header::ALLOW, http::HeaderValue::from_static(allow));
    res
}

/// Clears the session cookie and sends the browser home. `POST` only: a `GET` would let any
/// page (or a link prefetcher) log the user out.
fn logout(client: &OAuthClient) -> Response<Full<Bytes>> {
    let mut res = no_store_redirect(StatusCode::SEE_OTHER, client.default_target());
    if let Some(session) = client.session() {
        res.headers_mut()
            .insert(http::header::SET_COOKIE, session.clear_cookie());
    }
    res
}

impl<B> Service<Request<B>> for OAuthRoutes {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The routes never read a body.
        let (parts, _body) = request.into_parts();
        let this = self.clone();
        Box::pin(async move { Ok(this.handle(parts).await) })
    }
}

impl fmt::Debug for OAuthRoutes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthRoutes")
            .field("client", &self.client)
            .finish()
    }
}
