//! HTTP plumbing shared by the JWKS and introspection verifiers: URL checks, the default
//! client, and size-bounded JSON bodies.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

#[cfg(any(feature = "introspection", feature = "token-exchange"))]
use base64::{engine::general_purpose::STANDARD, Engine as _};
#[cfg(any(feature = "introspection", feature = "token-exchange"))]
use reqwest::{header::HeaderValue, RequestBuilder};
use reqwest::{Client, Response, Url};

/// Largest discovery document, JWK set or introspection answer read (1 MiB). A hostile or
/// broken server cannot make us buffer more.
pub(crate) const MAX_BODY_BYTES: usize = 1 << 20;

/// Why a URL was refused at build time.
#[derive(Debug)]
pub(crate) enum UrlError {
    /// Not an absolute `http(s)` URL.
    Invalid(String),
    /// `http` to a host that is not loopback, without opting in.
    Insecure(String),
}

/// Parses `raw` and requires `https`, except for loopback hosts (local development, tests)
/// or when `allow_http` is set (an identity provider on a private network).
pub(crate) fn parse_url(raw: &str, allow_http: bool) -> Result<Url, UrlError> {
    let url = Url::parse(raw).map_err(|e| UrlError::Invalid(format!("{raw}: {e}")))?;
    if !url.has_host() || !matches!(url.scheme(), "http" | "https") {
        return Err(UrlError::Invalid(format!("{raw}: not an http(s) URL")));
    }
    if url.scheme() == "http" && !allow_http && !is_loopback(&url) {
        return Err(UrlError::Insecure(raw.to_owned()));
    }
    Ok(url)
}

fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    // IPv6 hosts come bracketed ("[::1]").
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The client used when the application does not bring its own: rustls with the platform's
/// roots, a timeout, and at most three redirects, never from `https` to `http` (or none at
/// all, for POSTs that carry a token).
pub(crate) fn default_client(timeout: Duration, follow_redirects: bool) -> Result<Client, String> {
    let redirect = if follow_redirects {
        reqwest::redirect::Policy::custom(|attempt| {
            // Never from https down to http: the keys would travel unprotected.
            let downgrade = attempt.url().scheme() == "http"
                && attempt.previous().iter().any(|u| u.scheme() == "https");
            if downgrade || attempt.previous().len() > 3 {
                attempt.stop()
            } else {
                attempt.follow()
            }
        })
    } else {
        reqwest::redirect::Policy::none()
    };
    Client::builder()
        .connect_timeout(timeout)
        .timeout(timeout)
        .redirect(redirect)
        .user_agent(concat!("tower-mcp-auth/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| e.to_string())
}

/// A failed HTTP exchange with an identity provider. Messages are for logs and never
/// contain a token or a client secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FetchError {
    /// No answer within the fetch timeout.
    Timeout,
    /// Connection or protocol failure.
    Transport(String),
    /// A status other than 200.
    Status(u16),
    /// More than [`MAX_BODY_BYTES`].
    TooLarge,
    /// The body is not the JSON we expect.
    Json(String),
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Timeout => f.write_str("timed out"),
            FetchError::Transport(e) => write!(f, "request failed: {e}"),
            FetchError::Status(s) => write!(f, "answered HTTP {s}"),
            FetchError::TooLarge => write!(f, "answer larger than {MAX_BODY_BYTES} bytes"),
            FetchError::Json(e) => write!(f, "answer is not valid JSON: {e}"),
        }
    }
}

impl From<reqwest::Error> for FetchError {
    fn from(e: reqwest::Error) -> Self {
        if e.is_timeout() {
            FetchError::Timeout
        } else {
            // The URL is configuration, not a secret, but keep messages short; the caller
            // says which URL it was fetching.
            FetchError::Transport(e.without_url().to_string())
        }
    }
}

/// How a client authenticates to an authorization server's endpoint (RFC 6749 section
/// 2.3.1): the introspection endpoint, the token endpoint of a token exchange.
///
/// ```
/// assert_eq!(tower_mcp_auth::bearer::ClientAuth::default(), tower_mcp_auth::bearer::ClientAuth::SecretBasic);
/// ```
#[cfg(any(feature = "introspection", feature = "token-exchange"))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ClientAuth {
    /// `Authorization: Basic` with the form-encoded client id and secret (the default, and the
    /// method every server must support).
    #[default]
    SecretBasic,
    /// `client_id` and `client_secret` in the form body.
    SecretPost,
}

/// A client id and secret, ready to send the [`ClientAuth`] way. The secret never shows in
/// `Debug`.
#[cfg(any(feature = "introspection", feature = "token-exchange"))]
#[derive(Clone)]
pub(crate) struct ClientCredentials {
    /// Precomputed `Authorization` value (marked sensitive) for `SecretBasic`.
    basic: Option<HeaderValue>,
    /// `client_id` / `client_secret` for `SecretPost`.
    post: Option<(String, String)>,
}

#[cfg(any(feature = "introspection", feature = "token-exchange"))]
impl ClientCredentials {
    /// `None` when the id or secret cannot be put in a header.
    pub(crate) fn new(auth: ClientAuth, id: String, secret: String) -> Option<Self> {
        Some(match auth {
            ClientAuth::SecretBasic => {
                // RFC 6749 section 2.3.1: both parts are form-encoded before base64.
                let encode =
                    |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                let pair = format!("{}:{}", encode(&id), encode(&secret));
                let mut value =
                    HeaderValue::try_from(format!("Basic {}", STANDARD.encode(pair))).ok()?;
                value.set_sensitive(true);
                Self {
                    basic: Some(value),
                    post: None,
                }
            }
            ClientAuth::SecretPost => Self {
                basic: None,
                post: Some((id, secret)),
            },
        })
    }

    /// Which way they are sent.
    pub(crate) fn auth(&self) -> ClientAuth {
        if self.basic.is_some() {
            ClientAuth::SecretBasic
        } else {
            ClientAuth::SecretPost
        }
    }

    /// Adds the `Authorization` header (`SecretBasic`).
    fn authorize(&self, request: RequestBuilder) -> RequestBuilder {
        match &self.basic {
            Some(basic) => request.header(reqwest::header::AUTHORIZATION, basic.clone()),
            None => request,
        }
    }

    /// A form POST of `body` to `url`, authenticated with these credentials (the header for
    /// `SecretBasic`; for `SecretPost` the body must have been made with
    /// [`append_to`](Self::append_to)).
    pub(crate) fn post_form(
        &self,
        client: &Client,
        url: &Url,
        timeout: Duration,
        body: String,
    ) -> RequestBuilder {
        let request = client
            .post(url.clone())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(timeout)
            .body(body);
        self.authorize(request)
    }

    /// Adds `client_id` and `client_secret` to the form (`SecretPost`).
    pub(crate) fn append_to(&self, form: &mut form_urlencoded::Serializer<'_, String>) {
        if let Some((id, secret)) = &self.post {
            form.append_pair("client_id", id);
            form.append_pair("client_secret", secret);
        }
    }
}

#[cfg(any(feature = "introspection", feature = "token-exchange"))]
impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("auth", &self.auth())
            .finish_non_exhaustive()
    }
}

/// Reads a 200 answer's body as JSON of type `T`, at most [`MAX_BODY_BYTES`].
#[cfg(any(feature = "jwks", feature = "introspection"))]
pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
    response: Response,
) -> Result<T, FetchError> {
    let status = response.status();
    if status != reqwest::StatusCode::OK {
        return Err(FetchError::Status(status.as_u16()));
    }
    read_body(response).await
}

/// Reads an answer's body as JSON of type `T` whatever its status (error answers of an
/// authorization server carry RFC 6749 error JSON), at most [`MAX_BODY_BYTES`].
pub(crate) async fn read_body<T: serde::de::DeserializeOwned>(
    mut response: Response,
) -> Result<T, FetchError> {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_BODY_BYTES as u64)
    {
        return Err(FetchError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(FetchError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| FetchError::Json(e.to_string()))
}

/// GETs `url` as JSON with a per-request `timeout`.
#[cfg(feature = "jwks")]
pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
    client: &Client,
    url: &Url,
    timeout: Duration,
) -> Result<T, FetchError> {
    get_json_with_max_age(client, url, timeout)
        .await
        .map(|(value, _)| value)
}

/// [`get_json`], also returning how long the server says the answer stays fresh
/// (`Cache-Control: max-age`; `no-cache` / `no-store` count as zero).
#[cfg(feature = "jwks")]
pub(crate) async fn get_json_with_max_age<T: serde::de::DeserializeOwned>(
    client: &Client,
    url: &Url,
    timeout: Duration,
) -> Result<(T, Option<Duration>), FetchError> {
    let response = client
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .timeout(timeout)
        .send()
        .await?;
    let max_age = max_age(response.headers());
    Ok((read_json(response).await?, max_age))
}

/// Freshness from `Cache-Control` (RFC 9111 §5.2.2): `no-store` and `no-cache` mean none,
/// else `max-age` (`s-maxage` is for shared caches, not for us). Unparsable values are
/// ignored.
#[cfg(feature = "jwks")]
fn max_age(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let mut found = None;
    for value in headers.get_all(reqwest::header::CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',').map(str::trim) {
            let (name, arg) = directive.split_once('=').unwrap_or((directive, ""));
            if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
                return Some(Duration::ZERO);
            }
            if name.eq_ignore_ascii_case("max-age") {
                if let Ok(secs) = arg.trim_matches('"').parse::<u64>() {
                    found = Some(Duration::from_secs(secs));
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "jwks")]
    #[test]
    fn cache_control_freshness() {
        use reqwest::header::{HeaderMap, HeaderValue, CACHE_CONTROL};
        let of = |values: &[&str]| {
            let mut headers = HeaderMap::new();
            for v in values {
                headers.append(CACHE_CONTROL, HeaderValue::from_str(v).unwrap());
            }
            max_age(&headers)
        };
        assert_eq!(of(&[]), None);
        assert_eq!(
            of(&["public, max-age=3600"]),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            of(&["public", "MAX-AGE=\"60\""]),
            Some(Duration::from_secs(60))
        );
        assert_eq!(of(&["max-age=600, no-cache"]), Some(Duration::ZERO));
        assert_eq!(of(&["no-store"]), Some(Duration::ZERO));
        assert_eq!(of(&["max-age=soon", "s-maxage=10"]), None);
    }

    #[test]
    fn https_required_except_loopback_or_opt_in() {
        assert!(parse_url("https://idp.example.com/x", false).is_ok());
        assert!(parse_url("http://127.0.0.1:8080/x", false).is_ok());
        assert!(parse_url("http://[::1]:8080/x", false).is_ok());
        assert!(parse_url("http://localhost/x", false).is_ok());
        assert!(matches!(
            parse_url("http://idp.internal/x", false),
            Err(UrlError::Insecure(_))
        ));
        assert!(parse_url("http://idp.internal/x", true).is_ok());
        for bad in ["", "idp.example.com", "ftp://idp/x", "file:///etc/passwd"] {
            assert!(
                matches!(parse_url(bad, true), Err(UrlError::Invalid(_))),
                "{bad}"
            );
        }
    }
}
