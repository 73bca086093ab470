//! RFC 6749 §5.2 error answers of the token, registration and revocation endpoints, and the
//! HTML error page of the authorization endpoint (which must never redirect to a client it
//! cannot trust).

use bytes::Bytes;
use http::header::{CACHE_CONTROL, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;

use crate::oauth::error::{escape_html as escape, html_page, json_response};
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
