//! The HTTP client used to talk to identity providers: reqwest 0.13 behind `oauth2`'s
//! [`AsyncHttpClient`](oauth2::AsyncHttpClient) trait, with a timeout, a response size limit,
//! no redirects, and errors that never carry a response body (which can hold tokens).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use http::header::{ACCEPT, AUTHORIZATION, USER_AGENT};
use http::{HeaderValue, StatusCode};
use oauth2::{HttpRequest, HttpResponse};

/// Largest response body read from a provider (discovery, JWKS, token, user info).
pub(crate) const MAX_RESPONSE: usize = 1024 * 1024;

const AGENT: &str = concat!("tower-mcp-auth/", env!("CARGO_PKG_VERSION"));

/// Why a request to the provider failed. Never contains a URL query, a header or a body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HttpError {
    #[error("the identity provider did not answer in time")]
    Timeout,
    #[error("the identity provider could not be reached")]
    Connect,
    #[error("the identity provider's response is larger than 1 MiB")]
    TooLarge,
    #[error("the identity provider answered HTTP {0}")]
    Status(u16),
    #[error("the identity provider's response is not valid JSON")]
    Json,
    #[error("request to the identity provider failed")]
    Other,
}

impl HttpError {
    fn from_reqwest(e: &reqwest::Error) -> Self {
        if e.is_timeout() {
            HttpError::Timeout
        } else if e.is_connect() {
            HttpError::Connect
        } else {
            HttpError::Other
        }
    }
}

/// A cheap-to-clone client (reqwest's `Client` is an `Arc` inside).
#[derive(Clone)]
pub(crate) struct HttpClient {
    inner: reqwest::Client,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient").finish_non_exhaustive()
    }
}

impl HttpClient {
    pub(crate) fn new(timeout: Duration) -> Result<Self, HttpError> {
        let inner = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // A redirect from a token endpoint would re-send the client secret elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(AGENT)
            .build()
            .map_err(|_| HttpError::Other)?;
        Ok(Self { inner })
    }

    /// Sends `request` and reads at most [`MAX_RESPONSE`] bytes of the answer.
    pub(crate) async fn execute(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let (parts, body) = request.into_parts();
        let url = parts.uri.to_string();
        let mut builder = self
            .inner
            .request(parts.method, url)
            .headers(parts.headers)
            .body(body);
        if parts.version == http::Version::HTTP_11 {
            builder = builder.version(parts.version);
        }
        let mut response = builder
            .send()
            .await
            .map_err(|e| HttpError::from_reqwest(&e))?;
        if response
            .content_length()
            .is_some_and(|n| n > MAX_RESPONSE as u64)
        {
            return Err(HttpError::TooLarge);
        }
        let mut out = http::Response::builder().status(response.status());
        for (name, value) in response.headers() {
            out = out.header(name, value);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| HttpError::from_reqwest(&e))?
        {
            if body.len() + chunk.len() > MAX_RESPONSE {
                return Err(HttpError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        let mut response = out.body(body).map_err(|_| HttpError::Other)?;
        github_error_as_400(&mut response);
        Ok(response)
    }

    /// `GET url` with JSON `Accept` (and a bearer token), parsed as `T` from a 200 answer.
    pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        bearer: Option<&str>,
    ) -> Result<T, HttpError> {
        let mut request = http::Request::get(url)
            .header(ACCEPT, HeaderValue::from_static("application/json"))
            .header(USER_AGENT, HeaderValue::from_static(AGENT));
        if let Some(token) = bearer {
            let value =
                HeaderValue::try_from(format!("Bearer {token}")).map_err(|_| HttpError::Other)?;
            request = request.header(AUTHORIZATION, value);
        }
        let request = request.body(Vec::new()).map_err(|_| HttpError::Other)?;
        let response = self.execute(request).await?;
        if response.status() != StatusCode::OK {
            return Err(HttpError::Status(response.status().as_u16()));
        }
        serde_json::from_slice(response.body()).map_err(|_| HttpError::Json)
    }
}

/// GitHub's token endpoint answers errors (`bad_verification_code`, `incorrect_client_credentials`,
/// ...) with HTTP 200. `oauth2` would then fail to parse a token and report a parse error
/// holding the body; turning such an answer into a 400 makes it a proper error response.
fn github_error_as_400(response: &mut HttpResponse) {
    if response.status() != StatusCode::OK || response.body().first() != Some(&b'{') {
        return;
    }
    #[derive(serde::Deserialize)]
    struct Probe {
        error: Option<serde::de::IgnoredAny>,
        access_token: Option<serde::de::IgnoredAny>,
    }
    if let Ok(Probe {
        error: Some(_),
        access_token: None,
    }) = serde_json::from_slice::<Probe>(response.body())
    {
        *response.status_mut() = StatusCode::BAD_REQUEST;
    }
}

impl<'c> oauth2::AsyncHttpClient<'c> for HttpClient {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + Sync + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.execute(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_200_errors_become_400() {
        let mut r = http::Response::new(br#"{"error":"bad_verification_code"}"#.to_vec());
        github_error_as_400(&mut r);
        assert_eq!(r.status(), 400);
        let mut ok = http::Response::new(br#"{"access_token":"x","token_type":"bearer"}"#.to_vec());
        github_error_as_400(&mut ok);
        assert_eq!(ok.status(), 200);
        let mut junk = http::Response::new(b"{not json".to_vec());
        github_error_as_400(&mut junk);
        assert_eq!(junk.status(), 200);
    }
}
