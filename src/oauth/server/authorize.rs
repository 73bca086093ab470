//! `GET /oauth/authorize`: checks the client, redirect URI, PKCE, resource and scope, keeps
//! the request in the store, and sends the person to the upstream provider to log in.

use bytes::Bytes;
use http::header::SET_COOKIE;
use http::{HeaderValue, Response};
use http_body_util::Full;

use super::errors::{error_page, ServerError};
use super::records::{token, Pending};
use super::registration::redirect_matches;
use super::service::{single, Form};
use super::{Inner, LOGIN_TTL};
use crate::oauth::StartOptions;

/// The cookie carrying the pending request's id to the upstream callback.
pub(crate) const REQUEST_COOKIE: &str = "mcp_as_request";

/// `Set-Cookie` for this server's browser cookies: `HttpOnly`, `SameSite`, `Secure` on https.
pub(crate) fn cookie(
    inner: &Inner,
    name: &str,
    value: &str,
    path: &str,
    max_age: u64,
    same_site: &str,
) -> HeaderValue {
    let secure = if inner.issuer.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let text = format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite={same_site}{secure}"
    );
    HeaderValue::try_from(text).expect("cookie values are base64url")
}

/// What the redirect back to the client carries.
pub(crate) fn client_redirect(
    inner: &Inner,
    redirect_uri: &str,
    params: &[(&str, &str)],
) -> String {
    let mut out = redirect_uri.to_owned();
    let mut sep = if out.contains('?') { '&' } else { '?' };
    let all = params
        .iter()
        .copied()
        .chain([("iss", inner.issuer.as_str())]);
    for (k, v) in all {
        out.push(sep);
        sep = '&';
        out.push_str(
            &form_urlencoded::Serializer::new(String::new())
                .append_pair(k, v)
                .finish(),
        );
    }
    out
}

/// The requested scopes, within the configured ones (all of them when none is asked).
pub(crate) fn granted_scope(inner: &Inner, requested: Option<&str>) -> Result<String, ServerError> {
    let requested: Vec<&str> = requested.unwrap_or("").split_ascii_whitespace().collect();
    if requested.is_empty() {
        return Ok(inner.scopes.join(" "));
    }
    if requested
        .iter()
        .all(|s| inner.scopes.iter().any(|c| c == s))
    {
        Ok(requested.join(" "))
    } else {
        Err(ServerError::new(
            "invalid_scope",
            "A requested scope is not offered",
        ))
    }
}

/// RFC 8707: a `resource`, when sent, must be this server's resource.
pub(crate) fn check_resource(inner: &Inner, form: &Form) -> Result<(), ServerError> {
    match single(form, "resource")? {
        None => Ok(()),
        Some(r) if r.trim_end_matches('/') == inner.resource => Ok(()),
        Some(_) => Err(ServerError::new(
            "invalid_target",
            "The resource is not served here",
        )),
    }
}

impl Inner {
    pub(crate) async fn authorize(&self, form: &Form) -> Response<Full<Bytes>> {
        // Until the client and redirect URI are known good, errors are a page: redirecting
        // to an unchecked URI would make this server an open redirector.
        let checked = async {
            let client_id =
                single(form, "client_id")?.ok_or(ServerError::request("client_id is missing"))?;
            let client = self
                .client(client_id)
                .await?
                .ok_or(ServerError::client("Unknown client"))?;
            let redirect_uri = match single(form, "redirect_uri")? {
                Some(uri) if redirect_matches(&client.redirect_uris, uri) => uri.to_owned(),
                Some(_) => {
                    return Err(ServerError::request(
                        "The redirect_uri is not registered for this client",
                    ))
                }
                None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
                None => return Err(ServerError::request("redirect_uri is missing")),
            };
            Ok((client, redirect_uri))
        };
        let (client, redirect_uri) = match checked.await {
            Ok(ok) => ok,
            Err(e) => return error_page(&e),
        };
        let state = match single(form, "state") {
            Ok(s) => s.map(str::to_owned),
            Err(e) => return error_page(&e),
        };
        let to_client = |e: ServerError| {
            let mut params = vec![("error", e.code), ("error_description", e.description)];
            if let Some(s) = &state {
                params.push(("state", s.as_str()));
            }
            super::errors::redirect(
                http::StatusCode::FOUND,
                &client_redirect(self, &redirect_uri, &params),
            )
        };
        let pending = async {
            if single(form, "response_type")? != Some("code") {
                return Err(ServerError::new(
                    "unsupported_response_type",
                    "Only response_type=code is supported",
                ));
            }
            let challenge = single(form, "code_challenge")?.ok_or(ServerError::request(
                "code_challenge is missing (PKCE is required)",
            ))?;
            if single(form, "code_challenge_method")? != Some("S256") {
                return Err(ServerError::request("code_challenge_method must be S256"));
            }
            if challenge.len() != 43
                || !challenge
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(ServerError::request(
                    "code_challenge is not a base64url SHA-256",
                ));
            }
            check_resource(self, form)?;
            let scope = granted_scope(self, single(form, "scope")?)?;
            Ok(Pending {
                client_id: client.client_id.clone(),
                client_name: client.name.clone(),
                redirect_uri: redirect_uri.clone(),
                challenge: challenge.to_owned(),
                state: state.clone(),
                scope,
            })
        };
        let pending = match pending.await {
            Ok(p) => p,
            Err(e) if e.code == "temporarily_unavailable" => return error_page(&e),
            Err(e) => return to_client(e),
        };
        let id = token();
        let started = async {
            self.records
                .put("pending", &id, &pending, LOGIN_TTL)
                .await?;
            self.oauth
                .start(&self.provider, StartOptions::default())
                .await
                .map_err(|e| {
                    tracing::warn!(error = %e, "could not start the upstream login");
                    ServerError::new(
                        "temporarily_unavailable",
                        "The upstream login could not start",
                    )
                })
        };
        match started.await {
            Ok(redirect) => {
                let mut res = redirect.into_response();
                let path = self.oauth.callback_path().to_owned();
                res.headers_mut().append(
                    SET_COOKIE,
                    cookie(self, REQUEST_COOKIE, &id, &path, LOGIN_TTL.as_secs(), "Lax"),
                );
                res
            }
            Err(e) => error_page(&e),
        }
    }
}
