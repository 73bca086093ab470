//! RFC 6749 §5.2 error answers of the token, registration and revocation endpoints, and the
//! HTML error page of the authorization endpoint (which must never redirect to a client it
//! cannot trust).

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;

use crate::oauth::error::json_response;
use crate::store::StoreError;

/// An OAuth error of this server: an RFC 6749 `error` code and a description.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {description}")]
pub struct ServerError {
    /// The RFC 6749 / 7591 / 8707 error code.
    pub code: &'static str,
    /// What was wrong, for people (never holds a secret).
    pub description: &'static str,
}

impl ServerError {
    pub(crate) const fn new(code: &'static str, description: &'static str) -> Self {
        Self { code, description }
    }

    pub(crate) const fn request(description: &'static str) -> Self {
        Self::new("invalid_request", description)
    }

    pub(crate) const fn grant(description: &'static str) -> Self {
        Self::new("invalid_grant", description)
    }

    pub(crate) const fn client(description: &'static str) -> Self {
        Self::new("invalid_client", description)
    }

    /// The status: `invalid_client` is 401 (RFC 6749 §5.2), a store outage 503, the rest 400.
    pub fn status(&self) -> StatusCode {
        match self.code {
            "invalid_client" => StatusCode::UNAUTHORIZED,
            "temporarily_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The JSON answer (`no-store`; `WWW-Authenticate` on `invalid_client`).
    pub fn to_response(&self) -> Response<Full<Bytes>> {
        let mut res = json_response(self.status(), self.code, self.description, None);
        if self.code == "invalid_client" {
            res.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"oauth\""),
            );
        }
        res
    }
}

impl From<StoreError> for ServerError {
    fn from(e: StoreError) -> Self {
        tracing::warn!(error = %e, "authorization server store failure");
        Self::new(
            "temporarily_unavailable",
            "The authorization server's store is unavailable",
        )
    }
}

/// A small HTML page (`no-store`, no scripts, no framing).
pub(crate) fn html_page(status: StatusCode, title: &str, body_html: &str) -> Response<Full<Bytes>> {
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title></head>\n<body>\n<h1>{}</h1>\n{body_html}\n</body></html>\n",
        escape(title),
        escape(title)
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

/// The authorization endpoint's error page: 400, never a redirect.
pub(crate) fn error_page(error: &ServerError) -> Response<Full<Bytes>> {
    let status = if error.status() == StatusCode::SERVICE_UNAVAILABLE {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::BAD_REQUEST
    };
    html_page(
        status,
        "Authorization failed",
        &format!(
            "<p><code>{}</code>: {}</p>",
            escape(error.code),
            escape(error.description)
        ),
    )
}

/// A redirect (`no-store`: it carries codes or errors bound to a flow).
pub(crate) fn redirect(status: StatusCode, location: &str) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::new()));
    *res.status_mut() = status;
    match HeaderValue::try_from(location) {
        Ok(v) => {
            res.headers_mut().insert(http::header::LOCATION, v);
        }
        // Never happens with URIs this server validated; a page beats a 500.
        Err(_) => return error_page(&ServerError::request("The redirect URI is not valid")),
    }
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Text for HTML element content and double-quoted attributes.
pub(crate) fn escape(s: &str) -> String {
    s.chars()
        .fold(String::with_capacity(s.len()), |mut out, c| {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '"' => out.push_str("&quot;"),
                '\'' => out.push_str("&#39;"),
                c => out.push(c),
            }
            out
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_rfc_6749() {
        assert_eq!(ServerError::client("x").status(), 401);
        assert_eq!(ServerError::grant("x").status(), 400);
        let page = error_page(&ServerError::request("<script>"));
        assert_eq!(page.status(), 400);
        assert!(page.headers().get("location").is_none());
        assert_eq!(escape("<a href=\"x\">"), "&lt;a href=&quot;x&quot;&gt;");
    }
}
