//! RFC 9728 OAuth 2.0 Protected Resource Metadata.
//!
//! MCP clients that receive a 401 with a Bearer challenge fetch the `resource_metadata` URL
//! it names, read `authorization_servers` from it and start OAuth there. The metadata lives
//! at the *path-inserted* well-known URL: for `https://host/mcp` it is
//! `https://host/.well-known/oauth-protected-resource/mcp`. Clients copy `resource` byte for
//! byte and compare it with the URL they connect to, so it is built in one canonical way:
//! no trailing slash added or dropped.

use std::convert::Infallible;
use std::fmt;
use std::future::{ready, Ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{HeaderValue, ACCESS_CONTROL_ALLOW_ORIGIN, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;
use tower_service::Service;

/// The well-known prefix of RFC 9728.
pub const WELL_KNOWN_PREFIX: &str = "/.well-known/oauth-protected-resource";

/// Validates an externally visible base URL and returns it without a trailing slash:
/// `https://mcp.example.com/` becomes `https://mcp.example.com`. A path prefix is kept
/// (`https://host/api`). `None` for anything that is not absolute http(s) without query or
/// fragment.
pub(crate) fn canonical_base_url(url: &str) -> Option<String> {
    let uri: http::Uri = url.parse().ok()?;
    let scheme = uri.scheme_str()?;
    if !matches!(scheme, "http" | "https") || uri.authority().is_none() || uri.query().is_some() {
        return None;
    }
    if url.contains('#') {
        return None;
    }
    Some(url.trim_end_matches('/').to_owned())
}

/// The path of the metadata document for a resource path: `/mcp` →
/// `/.well-known/oauth-protected-resource/mcp`; `/` → the prefix alone.
///
/// ```
/// use tower_mcp_auth::metadata::metadata_path;
/// assert_eq!(metadata_path("/mcp"), "/.well-known/oauth-protected-resource/mcp");
/// assert_eq!(metadata_path("/"), "/.well-known/oauth-protected-resource");
/// ```
pub fn metadata_path(resource_path: &str) -> String {
    let trimmed = if resource_path == "/" {
        ""
    } else {
        resource_path
    };
    format!("{WELL_KNOWN_PREFIX}{trimmed}")
}

/// Every path where clients look for the metadata of the resource at `resource_path`: the
/// path-inserted one ([`metadata_path`], RFC 9728 §3.1) and the root
/// [`WELL_KNOWN_PREFIX`], which MCP clients try when the path-inserted one is missing (MCP
/// authorization, 2025-11-25 and later). Mount the server's main resource at both; the root
/// can describe only one resource. An endpoint that accepts only API keys should serve no
/// metadata at all (404), so that clients never start OAuth against it.
///
/// ```
/// use tower_mcp_auth::metadata::metadata_paths;
/// assert_eq!(
///     metadata_paths("/mcp"),
///     ["/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"]
/// );
/// assert_eq!(metadata_paths("/"), ["/.well-known/oauth-protected-resource"]);
/// ```
pub fn metadata_paths(resource_path: &str) -> Vec<String> {
    let inserted = metadata_path(resource_path);
    if inserted == WELL_KNOWN_PREFIX {
        vec![inserted]
    } else {
        vec![inserted, WELL_KNOWN_PREFIX.to_owned()]
    }
}

/// The metadata URL for `resource_path` under `base` (origin with an optional path prefix).
/// The well-known segment goes between the origin and the path (RFC 9728 §3.1).
///
/// ```
/// use tower_mcp_auth::metadata::metadata_url;
/// assert_eq!(
///     metadata_url("https://h.example", "/mcp"),
///     "https://h.example/.well-known/oauth-protected-resource/mcp"
/// );
/// assert_eq!(
///     metadata_url("https://h.example/api", "/mcp"),
///     "https://h.example/.well-known/oauth-protected-resource/api/mcp"
/// );
/// ```
pub fn metadata_url(base: &str, resource_path: &str) -> String {
    let base = base.trim_end_matches('/');
    let (origin, prefix) = split_origin(base);
    let full_path = format!("{prefix}{resource_path}");
    format!("{origin}{}", metadata_path(&full_path))
}

/// The resource URL clients connect to: `base` + `resource_path`, exactly.
///
/// ```
/// use tower_mcp_auth::metadata::resource_url;
/// assert_eq!(resource_url("http://127.0.0.1:8080/", "/mcp"), "http://127.0.0.1:8080/mcp");
/// ```
pub fn resource_url(base: &str, resource_path: &str) -> String {
    format!("{}{resource_path}", base.trim_end_matches('/'))
}

fn split_origin(base: &str) -> (&str, &str) {
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    match base[after_scheme..].find('/') {
        Some(i) => base.split_at(after_scheme + i),
        None => (base, ""),
    }
}

/// An RFC 9728 protected resource metadata document.
///
/// ```
/// use tower_mcp_auth::metadata::ProtectedResourceMetadata;
///
/// let doc = ProtectedResourceMetadata::new("https://mcp.example.com/mcp")
///     .authorization_server("https://auth.example.com")
///     .scopes_supported(["tools:call"]);
/// let json = serde_json::to_value(&doc).unwrap();
/// assert_eq!(json["bearer_methods_supported"], serde_json::json!(["header"]));
/// ```
#[derive(Clone, Debug, Serialize)]
pub struct ProtectedResourceMetadata {
    resource: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    authorization_servers: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    scopes_supported: Vec<String>,
    bearer_methods_supported: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_name: Option<String>,
}

impl ProtectedResourceMetadata {
    /// Metadata for the resource at `resource` (the exact URL clients use).
    pub fn new(resource: impl Into<String>) -> Self {
        Self {
            resource: resource.into(),
            authorization_servers: Vec::new(),
            scopes_supported: Vec::new(),
            // Tokens are accepted only in the Authorization header, never in query or body.
            bearer_methods_supported: vec!["header"],
            resource_name: None,
        }
    }

    /// Adds an authorization server (issuer URL).
    #[must_use]
    pub fn authorization_server(mut self, issuer: impl Into<String>) -> Self {
        self.authorization_servers.push(issuer.into());
        self
    }

    /// Sets the supported scopes.
    #[must_use]
    pub fn scopes_supported<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes_supported = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Sets a human-readable name.
    #[must_use]
    pub fn resource_name(mut self, name: impl Into<String>) -> Self {
        self.resource_name = Some(name.into());
        self
    }

    /// The `resource` URL.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// A service answering `GET` (and `HEAD`, CORS preflight `OPTIONS`) with this document;
    /// other methods get 405 with `Allow`. Mount it at [`metadata_path`].
    pub fn into_service(self) -> MetadataService {
        let json = serde_json::to_vec(&self).unwrap_or_default();
        MetadataService {
            json: Bytes::from(json),
            doc: Arc::new(self),
        }
    }
}

/// Serves a [`ProtectedResourceMetadata`] document; see
/// [`ProtectedResourceMetadata::into_service`].
///
/// ```
/// use tower::ServiceExt;
/// use tower_mcp_auth::metadata::ProtectedResourceMetadata;
///
/// # tokio_test_block_on(async {
/// let svc = ProtectedResourceMetadata::new("http://127.0.0.1:8080/mcp").into_service();
/// let res = svc.oneshot(http::Request::new(())).await.unwrap();
/// assert_eq!(res.status(), 200);
/// assert_eq!(res.headers()["access-control-allow-origin"], "*");
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Clone)]
pub struct MetadataService {
    json: Bytes,
    doc: Arc<ProtectedResourceMetadata>,
}

impl fmt::Debug for MetadataService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetadataService")
            .field("resource", &self.doc.resource)
            .finish()
    }
}

impl<B> Service<Request<B>> for MetadataService {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let mut res = match *req.method() {
            Method::GET => Response::new(Full::new(self.json.clone())),
            Method::HEAD => Response::new(Full::new(Bytes::new())),
            Method::OPTIONS => {
                let mut res = Response::new(Full::new(Bytes::new()));
                *res.status_mut() = StatusCode::NO_CONTENT;
                res.headers_mut().insert(
                    "access-control-allow-methods",
                    HeaderValue::from_static("GET, HEAD, OPTIONS"),
                );
                res.headers_mut().insert(
                    "access-control-allow-headers",
                    HeaderValue::from_static("*"),
                );
                res
            }
            _ => {
                let mut res = Response::new(Full::new(Bytes::new()));
                *res.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
                res
            }
        };
        let ok = res.status() == StatusCode::OK;
        let headers = res.headers_mut();
        headers.insert(ALLOW, HeaderValue::from_static("GET, HEAD, OPTIONS"));
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        if ok {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("max-age=300"));
        }
        ready(Ok(res))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_base() {
        assert_eq!(
            canonical_base_url("https://h.example/").as_deref(),
            Some("https://h.example")
        );
        assert_eq!(
            canonical_base_url("http://127.0.0.1:8080").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        for bad in [
            "ftp://h",
            "/relative",
            "https://h/?q=1",
            "h.example",
            "https://h/#x",
        ] {
            assert_eq!(canonical_base_url(bad), None, "{bad}");
        }
    }

    #[test]
    fn root_resource() {
        assert_eq!(
            metadata_url("https://h", "/"),
            "https://h/.well-known/oauth-protected-resource"
        );
    }
}
