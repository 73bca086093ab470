//! HTTP plumbing shared by the JWKS and introspection verifiers: URL checks, the default
//! client, and size-bounded JSON bodies.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

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

/// Reads a 200 answer's body as JSON of type `T`, at most [`MAX_BODY_BYTES`].
pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
    mut response: Response,
) -> Result<T, FetchError> {
    let status = response.status();
    if status != reqwest::StatusCode::OK {
        return Err(FetchError::Status(status.as_u16()));
    }
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
