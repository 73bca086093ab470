//! [`AuthServer`] as a Tower service: routes by method and path, reads bounded form and JSON
//! bodies, and answers every failure with an OAuth error (never a 500).

use std::convert::Infallible;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt as _, Full, Limited};
use tower_service::Service;

use super::errors::{error_page, ServerError};
use super::metadata::json;
use super::{paths, AuthServer, Inner};
use crate::deferred::BoxFuture;
use crate::store::BoxError;

/// Decoded `application/x-www-form-urlencoded` (query or body) pairs.
pub(crate) type Form = Vec<(String, String)>;

/// Request bodies larger than this are refused (forms and registrations are small).
const MAX_BODY: usize = 64 * 1024;

/// A parameter sent at most once (RFC 6749 §3.1: repeated parameters are an error).
pub(crate) fn single<'a>(form: &'a Form, name: &str) -> Result<Option<&'a str>, ServerError> {
    let mut found = form.iter().filter(|(k, _)| k == name);
    let first = found.next().map(|(_, v)| v.as_str());
    if found.next().is_some() {
        return Err(ServerError::request("A parameter is repeated"));
    }
    Ok(first.filter(|v| !v.is_empty()))
}

fn parse(raw: &[u8]) -> Form {
    form_urlencoded::parse(raw).into_owned().collect()
}

async fn read<B>(body: B) -> Result<Bytes, ServerError>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
        .map_err(|_| ServerError::request("The request body is too large or unreadable"))
}

impl Inner {
    async fn route<B>(&self, request: Request<B>) -> Response<Full<Bytes>>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = request.into_parts();
        let path = parts.uri.path();
        let get = parts.method == Method::GET || parts.method == Method::HEAD;
        let post = parts.method == Method::POST;
        let query = parse(parts.uri.query().unwrap_or("").as_bytes());
        let answer =
            |r: Result<Response<Full<Bytes>>, ServerError>| r.unwrap_or_else(|e| e.to_response());
        match path {
            paths::AS_METADATA | paths::OIDC_METADATA if get => {
                json(StatusCode::OK, &self.server_metadata())
            }
            paths::JWKS if get => json(StatusCode::OK, &self.jwks()),
            p if get
                && crate::metadata::metadata_paths(&self.resource_path)
                    .iter()
                    .any(|m| m == p) =>
            {
                json(StatusCode::OK, &self.resource_metadata())
            }
            paths::AUTHORIZE if get => self.authorize(&query).await,
            p if get && p == self.oauth.callback_path() => self.callback(&parts).await,
            paths::CONSENT if post => match read(body).await {
                Ok(raw) => self.decide(&parts, &parse(&raw)).await,
                Err(e) => error_page(&e),
            },
            paths::REGISTER if post => match read(body).await {
                Ok(raw) => answer(self.register(&parts.headers, &raw).await),
                Err(e) => e.to_response(),
            },
            paths::TOKEN | paths::REVOKE if post => {
                let form = match read(body).await {
                    Ok(raw) => parse(&raw),
                    Err(e) => return e.to_response(),
                };
                if path == paths::TOKEN {
                    answer(self.token(&parts.headers, &form).await)
                } else {
                    answer(self.revoke(&parts.headers, &form).await)
                }
            }
            paths::AS_METADATA
            | paths::OIDC_METADATA
            | paths::JWKS
            | paths::AUTHORIZE
            | paths::CONSENT
            | paths::REGISTER
            | paths::TOKEN
            | paths::REVOKE => {
                let mut res = ServerError::request("Method not allowed").to_response();
                *res.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
                res
            }
            _ => {
                let mut res = ServerError::new("not_found", "No such endpoint").to_response();
                *res.status_mut() = StatusCode::NOT_FOUND;
                res
            }
        }
    }
}

impl<B> Service<Request<B>> for AuthServer
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let inner = std::sync::Arc::clone(&self.inner);
        Box::pin(async move { Ok(inner.route(request).await) })
    }
}
