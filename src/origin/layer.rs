//! [`OriginLayer`] and its allowlists.

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use super::service::OriginService;

/// One allowed origin, normalized: lowercase scheme and host, effective port.
#[derive(Clone, Debug, PartialEq, Eq)]
struct AllowedOrigin {
    scheme: String,
    host: String,
    port: u16,
}

/// One allowed `Host`: lowercase host, and the port when the entry names one.
#[derive(Clone, Debug, PartialEq, Eq)]
struct AllowedHost {
    host: String,
    port: Option<u16>,
}

#[derive(Debug, Default)]
pub(crate) struct OriginConfig {
    /// `false` when built by [`McpAuth`](crate::McpAuth) without an origin layer.
    enabled: bool,
    origins: Vec<AllowedOrigin>,
    loopback: bool,
    /// `None`: `Host` is not checked.
    hosts: Option<Vec<AllowedHost>>,
}

const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

impl OriginConfig {
    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    /// Whether an `Origin` header value may reach the service. Allocation-free.
    pub(crate) fn origin_allowed(&self, value: &[u8]) -> bool {
        let Ok(value) = std::str::from_utf8(value) else {
            return false;
        };
        // `null` (opaque origins: sandboxed frames, file: pages) never matches.
        let Some((scheme, host, port)) = parse_origin(value) else {
            return false;
        };
        if self.loopback
            && (scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https"))
            && is_loopback(host)
        {
            return true;
        }
        let Some(port) = port.or_else(|| default_port(scheme)) else {
            return false;
        };
        self.origins.iter().any(|o| {
            o.port == port
                && o.scheme.eq_ignore_ascii_case(scheme)
                && o.host.eq_ignore_ascii_case(host)
        })
    }

    /// Whether the request's host (the `Host` header, else the URI authority of HTTP/2)
    /// may reach the service; `None` for the host means none was sent.
    pub(crate) fn host_allowed(&self, host: Option<&[u8]>) -> bool {
        let Some(hosts) = &self.hosts else {
            return true;
        };
        let Some((host, port)) = host
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(parse_host_port)
        else {
            return false;
        };
        hosts
            .iter()
            .any(|h| h.host.eq_ignore_ascii_case(host) && (h.port.is_none() || h.port == port))
    }
}

fn is_loopback(host: &str) -> bool {
    LOOPBACK_HOSTS.iter().any(|l| l.eq_ignore_ascii_case(host))
}

fn default_port(scheme: &str) -> Option<u16> {
    if scheme.eq_ignore_ascii_case("http") {
        Some(80)
    } else if scheme.eq_ignore_ascii_case("https") {
        Some(443)
    } else {
        None
    }
}

/// `scheme://host[:port]` (RFC 6454 serialization) into its parts; `None` for anything else
/// (`null`, a path, userinfo, an empty host, a bad port).
fn parse_origin(value: &str) -> Option<(&str, &str, Option<u16>)> {
    let (scheme, rest) = value.split_once("://")?;
    let valid_scheme = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !valid_scheme {
        return None;
    }
    let (host, port) = parse_host_port(rest)?;
    Some((scheme, host, port))
}

/// `host[:port]` or `[v6]:port`; `None` for an empty host, a bad port, or characters that
/// cannot be in an authority without userinfo (`/`, `@`, `?`, `#`, spaces).
fn parse_host_port(value: &str) -> Option<(&str, Option<u16>)> {
    if value.is_empty()
        || value
            .bytes()
            .any(|b| matches!(b, b'/' | b'@' | b'?' | b'#' | b'\\') || !b.is_ascii_graphic())
    {
        return None;
    }
    let (host, port) = if value.starts_with('[') {
        let end = value.find(']')?;
        let (host, rest) = value.split_at(end + 1);
        match rest {
            "" => (host, None),
            _ => (host, Some(rest.strip_prefix(':')?)),
        }
    } else {
        match value.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (value, None),
        }
    };
    if host.is_empty() || (!host.starts_with('[') && host.contains(':')) {
        return None;
    }
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse().ok()?),
        Some(_) => return None,
    };
    Some((host, port))
}

/// A configured origin or host that is not of the accepted form.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid allowed {kind} {value:?}: expected {expected}")]
pub struct InvalidOriginConfig {
    kind: &'static str,
    value: String,
    expected: &'static str,
}

/// Refuses requests from browser origins that may not reach this server (DNS-rebinding
/// protection, a MUST of the MCP streamable HTTP transport).
///
/// - `Origin` absent: passes (non-browser MCP clients send none).
/// - `Origin` present: must equal an allowed origin (`scheme://host[:port]`; scheme and host
///   compared case-insensitively, the default port of `http` / `https` the same as none), or
///   be a loopback origin when [`loopback`](OriginLayerBuilder::loopback) is on. Anything else,
///   `null` included, is refused with **403** `invalid_origin` (the crate's error contract,
///   `Cache-Control: no-store`, an [`AuthFailure`](crate::AuthFailure) marker).
/// - `Host`: checked only when [`allowed_hosts`](OriginLayerBuilder::allowed_hosts) is set;
///   a missing or unknown host is 403 `invalid_origin` too. (The spec asks for 403 on a bad
///   `Origin`; the same status for a bad `Host` keeps one answer for one attack.)
///
/// ```
/// use tower::{ServiceBuilder, ServiceExt};
/// use tower_mcp_auth::origin::OriginLayer;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let origins = OriginLayer::builder()
///     .loopback(true)
///     .allow_origin("https://app.example.com")
///     .build()
///     .unwrap();
/// let svc = ServiceBuilder::new().layer(origins).service_fn(|_req: http::Request<()>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
/// });
///
/// let evil = http::Request::post("/mcp").header("origin", "http://evil.example").body(()).unwrap();
/// let res = svc.clone().oneshot(evil).await.unwrap();
/// assert_eq!(res.status(), 403);
///
/// let app = http::Request::post("/mcp").header("origin", "https://APP.example.com:443").body(()).unwrap();
/// assert_eq!(svc.oneshot(app).await.unwrap().status(), 200);
/// # });
/// ```
#[derive(Clone)]
#[must_use]
pub struct OriginLayer {
    config: Arc<OriginConfig>,
}

impl OriginLayer {
    /// Allows browser pages on the loopback interface only: `http(s)://localhost`,
    /// `127.0.0.1` and `[::1]`, any port. The preset for a server bound to `127.0.0.1`.
    ///
    /// ```
    /// let layer = tower_mcp_auth::origin::OriginLayer::loopback();
    /// # let _ = layer;
    /// ```
    pub fn loopback() -> Self {
        Self {
            config: Arc::new(OriginConfig {
                enabled: true,
                loopback: true,
                ..OriginConfig::default()
            }),
        }
    }

    /// Starts an allowlist (empty: every request with an `Origin` is refused).
    pub fn builder() -> OriginLayerBuilder {
        OriginLayerBuilder::default()
    }

    /// A layer that checks nothing (used by [`McpAuth`](crate::McpAuth) when no origin
    /// layer is configured, so the composed service type stays the same).
    pub(crate) fn disabled() -> Self {
        Self {
            config: Arc::new(OriginConfig::default()),
        }
    }
}

impl<S> Layer<S> for OriginLayer {
    type Service = OriginService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        // A disabled layer hands its service no configuration: one reference count fewer
        // to bump on each of the per-request clones axum makes.
        let config = self.config.enabled().then(|| self.config.clone());
        OriginService::new(inner, config)
    }
}

impl fmt::Debug for OriginLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OriginLayer")
            .field("enabled", &self.config.enabled)
            .field("loopback", &self.config.loopback)
            .field("origins", &self.config.origins.len())
            .field("hosts", &self.config.hosts.as_ref().map(Vec::len))
            .finish()
    }
}

/// Configures an [`OriginLayer`]; see [`OriginLayer::builder`].
#[derive(Debug, Default)]
#[must_use]
pub struct OriginLayerBuilder {
    origins: Vec<String>,
    loopback: bool,
    hosts: Option<Vec<String>>,
}

impl OriginLayerBuilder {
    /// Allows the exact origin `scheme://host[:port]` (no path, no trailing slash).
    pub fn allow_origin(mut self, origin: impl Into<String>) -> Self {
        self.origins.push(origin.into());
        self
    }

    /// Allows each of `origins`; see [`allow_origin`](Self::allow_origin).
    pub fn allow_origins<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.origins.extend(origins.into_iter().map(Into::into));
        self
    }

    /// Also allows `http(s)://localhost`, `127.0.0.1` and `[::1]` on any port.
    pub fn loopback(mut self, enabled: bool) -> Self {
        self.loopback = enabled;
        self
    }

    /// Checks `Host` (or the HTTP/2 authority) too: `host` allows that host on any port,
    /// `host:port` only on that port; IPv6 in brackets (`[::1]`).
    ///
    /// ```
    /// use tower_mcp_auth::origin::OriginLayer;
    /// let layer = OriginLayer::builder()
    ///     .loopback(true)
    ///     .allowed_hosts(["localhost", "127.0.0.1", "[::1]", "mcp.example.com:8443"])
    ///     .build()
    ///     .unwrap();
    /// # let _ = layer;
    /// ```
    pub fn allowed_hosts<I, S>(mut self, hosts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.hosts
            .get_or_insert_with(Vec::new)
            .extend(hosts.into_iter().map(Into::into));
        self
    }

    /// Validates and normalizes the allowlists.
    ///
    /// # Errors
    ///
    /// An origin that is not `scheme://host[:port]` (an `http`/`https` origin may omit the
    /// port; other schemes must name it), or a host that is not `host[:port]`.
    pub fn build(self) -> Result<OriginLayer, InvalidOriginConfig> {
        let origins = self
            .origins
            .iter()
            .map(|o| {
                let invalid = || InvalidOriginConfig {
                    kind: "origin",
                    value: o.clone(),
                    expected: "scheme://host[:port]",
                };
                let (scheme, host, port) = parse_origin(o).ok_or_else(invalid)?;
                let port = port.or_else(|| default_port(scheme)).ok_or_else(invalid)?;
                Ok(AllowedOrigin {
                    scheme: scheme.to_ascii_lowercase(),
                    host: host.to_ascii_lowercase(),
                    port,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let hosts = self
            .hosts
            .map(|hosts| {
                hosts
                    .iter()
                    .map(|h| {
                        let (host, port) =
                            parse_host_port(h).ok_or_else(|| InvalidOriginConfig {
                                kind: "host",
                                value: h.clone(),
                                expected: "host[:port]",
                            })?;
                        Ok(AllowedHost {
                            host: host.to_ascii_lowercase(),
                            port,
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        Ok(OriginLayer {
            config: Arc::new(OriginConfig {
                enabled: true,
                origins,
                loopback: self.loopback,
                hosts,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(b: OriginLayerBuilder) -> Arc<OriginConfig> {
        b.build().unwrap().config
    }

    #[test]
    fn origins_compare_normalized() {
        let c = config(
            OriginLayer::builder()
                .allow_origin("https://App.Example.com")
                .allow_origin("http://localhost:3000"),
        );
        for ok in [
            "https://app.example.com",
            "HTTPS://APP.EXAMPLE.COM:443",
            "http://localhost:3000",
        ] {
            assert!(c.origin_allowed(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "https://app.example.com:8443",
            "http://app.example.com",
            "https://app.example.com/",
            "https://app.example.com.evil",
            "http://localhost:3001",
            "http://localhost",
            "null",
            "",
            "https://user@app.example.com",
            "https://app.example.com:99999",
            "https://app.example.com:",
        ] {
            assert!(!c.origin_allowed(bad.as_bytes()), "{bad}");
        }
        assert!(!c.origin_allowed(b"https://app.example.com\xff"));
    }

    #[test]
    fn loopback_preset_any_port_http_and_https_only() {
        let c = OriginLayer::loopback().config;
        for ok in [
            "http://localhost",
            "http://LOCALHOST:5173",
            "https://127.0.0.1:8443",
            "http://[::1]:6274",
        ] {
            assert!(c.origin_allowed(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "http://localhost.evil.com",
            "http://127.0.0.2",
            "ws://localhost:80",
            "http://evil.example.com",
            "http://[::1]x",
        ] {
            assert!(!c.origin_allowed(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn hosts_with_and_without_port() {
        let c = config(OriginLayer::builder().allowed_hosts([
            "localhost",
            "[::1]",
            "mcp.example.com:8443",
        ]));
        for ok in [
            "localhost",
            "LocalHost:8080",
            "[::1]:1",
            "mcp.example.com:8443",
        ] {
            assert!(c.host_allowed(Some(ok.as_bytes())), "{ok}");
        }
        for bad in [
            "mcp.example.com",
            "mcp.example.com:443",
            "evil.example.com",
            "localhost:x",
            "",
        ] {
            assert!(!c.host_allowed(Some(bad.as_bytes())), "{bad}");
        }
        assert!(!c.host_allowed(None));
        assert!(
            OriginLayer::loopback().config.host_allowed(None),
            "unchecked without a list"
        );
    }

    #[test]
    fn bad_configuration_is_an_error() {
        for bad in [
            "app.example.com",
            "https://app.example.com/",
            "foo://h",
            "https://",
        ] {
            assert!(
                OriginLayer::builder().allow_origin(bad).build().is_err(),
                "{bad}"
            );
        }
        assert!(OriginLayer::builder()
            .allowed_hosts(["h/x"])
            .build()
            .is_err());
        assert!(OriginLayer::builder()
            .allow_origin("foo://h:1")
            .build()
            .is_ok());
    }
}
