//! The upstream callback and the consent page. The upstream client id is shared by every MCP
//! client, so the person must see and approve which client gets access (the MCP security
//! best practices' confused-deputy defence); consent is remembered per (user, client).

use bytes::Bytes;
use http::header::{ORIGIN, SET_COOKIE};
use http::request::Parts;
use http::{Response, StatusCode};
use http_body_util::Full;
use subtle::ConstantTimeEq as _;

use super::authorize::{client_redirect, cookie, REQUEST_COOKIE};
use super::errors::{error_page, redirect, ServerError};
use super::records::{hash, token, Code, Pending, Ticket};
use super::service::{single, Form};
use super::{paths, Inner, CODE_TTL, LOGIN_TTL};
use crate::credentials::{cookie as read_cookie, Presented};
use crate::oauth::error::{escape_html as escape, html_page};
use crate::oauth::CallbackOutcome;

/// The anti-CSRF cookie; the same value is a hidden field of the consent form.
const CSRF_COOKIE: &str = "mcp_as_csrf";

impl Inner {
    /// `GET {callback}`: the upstream login completes; then the consent page (or, when this
    /// person already approved this client, straight back to the client with a code).
    pub(crate) async fn callback(&self, parts: &Parts) -> Response<Full<Bytes>> {
        let user = match self.oauth.callback(parts).await {
            Ok(CallbackOutcome::Login { user, .. }) => user,
            Ok(_) => return error_page(&ServerError::request("Not a login flow")),
            Err(e) => return e.to_response(true, &self.issuer),
        };
        let Presented::Value(id) = read_cookie(&parts.headers, REQUEST_COOKIE) else {
            return error_page(&ServerError::request(
                "No authorization request in this browser: start again from the MCP client",
            ));
        };
        let pending: Pending = match self.records.take("pending", &id).await {
            Ok(Some(p)) => p,
            Ok(None) => {
                return error_page(&ServerError::request(
                    "The authorization request expired: start again from the MCP client",
                ))
            }
            Err(e) => return error_page(&e),
        };
        let clear = cookie(
            self,
            REQUEST_COOKIE,
            "",
            self.oauth.callback_path(),
            0,
            "Lax",
        );
        let allowed = self
            .hook
            .as_ref()
            .is_none_or(|hook| hook(&user, &pending.client_id));
        let mut res = if !allowed {
            tracing::warn!(user_id = %user.user_id, client_id = %pending.client_id, "authorization refused by the hook");
            deny(self, &pending, StatusCode::FOUND)
        } else {
            match self.remembered(&user.user_id, &pending).await {
                Ok(true) => {
                    self.approve(&pending, &user.user_id, StatusCode::FOUND)
                        .await
                }
                Ok(false) => self.consent_page(pending, user.user_id).await,
                Err(e) => error_page(&e),
            }
        };
        res.headers_mut().append(SET_COOKIE, clear);
        res
    }

    async fn remembered(&self, sub: &str, pending: &Pending) -> Result<bool, ServerError> {
        let granted: Option<String> = self
            .records
            .get("consent", &consent_key(sub, &pending.client_id))
            .await?;
        Ok(granted.is_some_and(|g| {
            let have: Vec<&str> = g.split_ascii_whitespace().collect();
            pending
                .scope
                .split_ascii_whitespace()
                .all(|s| have.contains(&s))
        }))
    }

    async fn consent_page(&self, request: Pending, sub: String) -> Response<Full<Bytes>> {
        let (ticket_id, csrf) = (token(), token());
        let name = request
            .client_name
            .clone()
            .unwrap_or_else(|| request.client_id.clone());
        let host = oauth2::url::Url::parse(&request.redirect_uri)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        let scope = request.scope.clone();
        let ticket = Ticket {
            request,
            sub,
            csrf_hash: hash(&csrf),
        };
        if let Err(e) = self
            .records
            .put("ticket", &ticket_id, &ticket, LOGIN_TTL)
            .await
        {
            return error_page(&e);
        }
        let body = format!(
            "<p><strong>{name}</strong> (redirecting to <code>{host}</code>) asks to use this MCP server as you.</p>\n\
             <p>Scopes: <code>{scope}</code></p>\n\
             <form method=\"post\" action=\"{action}\">\n\
             <input type=\"hidden\" name=\"ticket\" value=\"{ticket_id}\">\n\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\n\
             <button name=\"decision\" value=\"approve\">Allow</button>\n\
             <button name=\"decision\" value=\"deny\">Deny</button>\n\
             </form>",
            name = escape(&name),
            host = escape(&host),
            scope = escape(&scope),
            action = paths::CONSENT,
        );
        let mut res = html_page(StatusCode::OK, "Allow access?", &body);
        res.headers_mut().append(
            SET_COOKIE,
            cookie(
                self,
                CSRF_COOKIE,
                &csrf,
                paths::CONSENT,
                LOGIN_TTL.as_secs(),
                "Strict",
            ),
        );
        res
    }

    /// `POST /oauth/consent`: the person's decision.
    pub(crate) async fn decide(&self, parts: &Parts, form: &Form) -> Response<Full<Bytes>> {
        if let Some(origin) = parts.headers.get(ORIGIN) {
            // A cross-site form post: refuse even before looking at the fields.
            if origin.as_bytes() != origin_of(&self.issuer).as_bytes() {
                return error_page(&ServerError::request("Cross-site consent submission"));
            }
        }
        let fields = (|| {
            Ok::<_, ServerError>((
                single(form, "ticket")?,
                single(form, "csrf")?,
                single(form, "decision")?,
            ))
        })();
        let (Some(ticket_id), Some(csrf), decision) = (match fields {
            Ok(f) => f,
            Err(e) => return error_page(&e),
        }) else {
            return error_page(&ServerError::request("The consent form is incomplete"));
        };
        let cookie_ok = matches!(read_cookie(&parts.headers, CSRF_COOKIE), Presented::Value(c) if bool::from(c.as_bytes().ct_eq(csrf.as_bytes())));
        if !cookie_ok {
            return error_page(&ServerError::request(
                "The consent form does not belong to this browser",
            ));
        }
        // Check before taking, so a forged post cannot burn someone's ticket.
        let ticket = match self.records.get::<Ticket>("ticket", ticket_id).await {
            Ok(Some(t)) if bool::from(t.csrf_hash.as_bytes().ct_eq(hash(csrf).as_bytes())) => t,
            Ok(_) => {
                return error_page(&ServerError::request(
                    "The consent form expired or was already used",
                ))
            }
            Err(e) => return error_page(&e),
        };
        match self.records.take::<Ticket>("ticket", ticket_id).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                return error_page(&ServerError::request("The consent form was already used"))
            }
            Err(e) => return error_page(&e),
        }
        let mut res = match decision {
            Some("approve") => {
                let key = consent_key(&ticket.sub, &ticket.request.client_id);
                if let Err(e) = self
                    .records
                    .put("consent", &key, &ticket.request.scope, self.refresh_ttl)
                    .await
                {
                    return error_page(&e);
                }
                self.approve(&ticket.request, &ticket.sub, StatusCode::SEE_OTHER)
                    .await
            }
            _ => deny(self, &ticket.request, StatusCode::SEE_OTHER),
        };
        res.headers_mut().append(
            SET_COOKIE,
            cookie(self, CSRF_COOKIE, "", paths::CONSENT, 0, "Strict"),
        );
        res
    }

    /// A single-use code bound to the request, sent to the client's redirect URI.
    async fn approve(
        &self,
        request: &Pending,
        sub: &str,
        status: StatusCode,
    ) -> Response<Full<Bytes>> {
        let code = token();
        let record = Code {
            client_id: request.client_id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            challenge: request.challenge.clone(),
            scope: request.scope.clone(),
            sub: sub.to_owned(),
        };
        match self
            .records
            .insert("code", &hash(&code), &record, CODE_TTL)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                return error_page(&ServerError::new(
                    "temporarily_unavailable",
                    "Code collision, retry",
                ))
            }
            Err(e) => return error_page(&e),
        }
        let mut params = vec![("code", code.as_str())];
        if let Some(s) = &request.state {
            params.push(("state", s.as_str()));
        }
        redirect(
            status,
            &client_redirect(self, &request.redirect_uri, &params),
        )
    }
}

fn deny(inner: &Inner, request: &Pending, status: StatusCode) -> Response<Full<Bytes>> {
    let mut params = vec![("error", "access_denied")];
    if let Some(s) = &request.state {
        params.push(("state", s.as_str()));
    }
    redirect(
        status,
        &client_redirect(inner, &request.redirect_uri, &params),
    )
}

/// One store key per (user, client), without either in clear.
pub(crate) fn consent_key(sub: &str, client_id: &str) -> String {
    hash(&format!("{sub}\0{client_id}"))
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> String {
    oauth2::url::Url::parse(url)
        .map_or_else(|_| String::new(), |u| u.origin().ascii_serialization())
}
