//! Which client a request comes from: the socket peer, or - only behind configured trusted
//! proxies - the address they forwarded.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use http::{Extensions, HeaderMap, HeaderName};
use ipnet::IpNet;

use super::store_key::StoreKey;

/// The peer address of the connection, for servers that are not axum.
///
/// axum's `ConnectInfo<SocketAddr>` (from `into_make_service_with_connect_info`) is read
/// automatically with the `axum` feature; hyper or tonic servers insert `ClientAddr` into each
/// request's extensions in their accept loop.
///
/// ```
/// use tower_mcp_auth::rate_limit::ClientAddr;
///
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(ClientAddr("203.0.113.7:51234".parse().unwrap()));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// Error from [`ClientIpResolver::trust_proxies`].
#[derive(Debug, thiserror::Error)]
#[error("invalid trusted proxy network {0:?}: expected an address or CIDR like 10.0.0.0/8")]
pub struct InvalidProxyNetwork(pub String);

/// Error from [`ForwardedHeader::from_name`]: not a valid HTTP header name.
#[derive(Debug, thiserror::Error)]
#[error("invalid client IP header {0:?}: expected a header name like X-Forwarded-For")]
pub struct InvalidForwardedHeader(pub String);

/// The one header a [`ClientIpResolver`] reads the client address from, when the peer is a
/// trusted proxy. Exactly one is read: there is never a fallback from one to another, because
/// a proxy appends only to the header it maintains and passes the others through untouched,
/// so any other header is whatever the client chose to send.
///
/// | proxy | header |
/// |---|---|
/// | nginx (`$proxy_add_x_forwarded_for`), AWS ALB, Envoy, HAProxy `option forwardfor`, Traefik | [`XForwardedFor`](Self::XForwardedFor) (default) |
/// | a proxy configured to append RFC 7239 `Forwarded` (and to ignore the client's) | [`Forwarded`](Self::Forwarded) |
/// | Cloudflare (`CF-Connecting-IP`), nginx `proxy_set_header X-Real-IP $remote_addr`, Akamai (`True-Client-IP`) | [`Single`](Self::Single), a header the proxy *overwrites* |
///
/// ```
/// use tower_mcp_auth::rate_limit::ForwardedHeader;
///
/// assert_eq!(ForwardedHeader::default(), ForwardedHeader::XForwardedFor);
/// assert_eq!(ForwardedHeader::from_name("Forwarded").unwrap(), ForwardedHeader::Forwarded);
/// assert_eq!(
///     ForwardedHeader::from_name("CF-Connecting-IP").unwrap(),
///     ForwardedHeader::Single(http::HeaderName::from_static("cf-connecting-ip")),
/// );
/// assert!(ForwardedHeader::from_name("not a header").is_err());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2`, appended to by each proxy (the default).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1`, its `for=` parameters.
    Forwarded,
    /// A header that the trusted proxy sets to the one address it saw, replacing anything the
    /// client sent (`CF-Connecting-IP`, `X-Real-IP`, `True-Client-IP`). Should it still come
    /// with several values, the last (the one nearest to this server) is used.
    Single(HeaderName),
}

impl ForwardedHeader {
    /// `X-Forwarded-For` and `Forwarded` (any case) select those formats; any other valid
    /// header name is a [`Single`](Self::Single)-address header. For configuration strings,
    /// such as an environment variable.
    ///
    /// # Errors
    ///
    /// When `name` is not a valid HTTP header name.
    pub fn from_name(name: &str) -> Result<Self, InvalidForwardedHeader> {
        let name = name.trim();
        if name.eq_ignore_ascii_case("x-forwarded-for") {
            return Ok(Self::XForwardedFor);
        }
        if name.eq_ignore_ascii_case("forwarded") {
            return Ok(Self::Forwarded);
        }
        HeaderName::from_bytes(name.as_bytes())
            .map(Self::Single)
            .map_err(|_| InvalidForwardedHeader(name.to_owned()))
    }

    /// The addresses it lists, in the order the proxies appended them.
    fn hops(&self, headers: &HeaderMap) -> Vec<IpAddr> {
        match self {
            Self::XForwardedFor => address_list(headers, "x-forwarded-for"),
            Self::Forwarded => forwarded_for(headers),
            Self::Single(name) => address_list(headers, name),
        }
    }
}

/// Resolves the client IP of a request and groups it into a rate-limit bucket.
///
/// - The peer address comes from [`ClientAddr`] or (feature `axum`) `ConnectInfo<SocketAddr>`.
/// - Only when that peer is inside a trusted proxy network is the one configured
///   [`ForwardedHeader`] read (`X-Forwarded-For` by default; RFC 7239 `Forwarded`, or a
///   single-address header such as `CF-Connecting-IP`, by choice), walked from the right,
///   skipping trusted proxies: the first untrusted hop is the client. No other header is
///   ever consulted, so a client behind the proxy cannot pick its address by sending the
///   header the proxy does not maintain. Headers from untrusted peers are ignored, so a
///   client cannot spoof its way out of a lockout.
/// - IPv6 clients are grouped by prefix (default /64): one end site, one bucket.
///
/// ```
/// use tower_mcp_auth::{rate_limit::{ClientAddr, ClientIpResolver}};
///
/// let resolver = ClientIpResolver::new().trust_proxies(["10.0.0.0/8"]).unwrap();
/// let mut req = http::Request::builder()
///     .header("x-forwarded-for", "198.51.100.9, 10.0.0.5")
///     .body(())
///     .unwrap();
/// req.extensions_mut().insert(ClientAddr("10.0.0.1:443".parse().unwrap()));
/// assert_eq!(resolver.resolve(req.headers(), req.extensions()), Some("198.51.100.9".parse().unwrap()));
/// ```
#[derive(Clone)]
pub struct ClientIpResolver {
    trusted: Vec<IpNet>,
    header: ForwardedHeader,
    ipv6_prefix: u8,
}

impl Default for ClientIpResolver {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientIpResolver {
    /// Trusts no proxy; IPv6 grouped by /64.
    pub fn new() -> Self {
        Self {
            trusted: Vec::new(),
            header: ForwardedHeader::XForwardedFor,
            ipv6_prefix: 64,
        }
    }

    /// Trusts these proxy networks (addresses or CIDRs) to report the client address.
    ///
    /// # Errors
    ///
    /// When an entry is neither an IP address nor a CIDR network.
    pub fn trust_proxies<I, S>(mut self, networks: I) -> Result<Self, InvalidProxyNetwork>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for n in networks {
            let n = n.as_ref().trim();
            let net = n
                .parse::<IpNet>()
                .or_else(|_| n.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| InvalidProxyNetwork(n.to_owned()))?;
            self.trusted.push(net);
        }
        Ok(self)
    }

    /// Reads the client address from this header of trusted proxies (default
    /// [`ForwardedHeader::XForwardedFor`]), and from no other.
    ///
    /// ```
    /// use tower_mcp_auth::{rate_limit::{ClientAddr, ClientIpResolver, ForwardedHeader}};
    ///
    /// let resolver = ClientIpResolver::new()
    ///     .trust_proxies(["10.0.0.0/8"])
    ///     .unwrap()
    ///     .forwarded_header(ForwardedHeader::Forwarded);
    /// let mut req = http::Request::builder()
    ///     .header("forwarded", "for=198.51.100.9")
    ///     .header("x-forwarded-for", "203.0.113.1")
    ///     .body(())
    ///     .unwrap();
    /// req.extensions_mut().insert(ClientAddr("10.0.0.1:443".parse().unwrap()));
    /// assert_eq!(resolver.resolve(req.headers(), req.extensions()), Some("198.51.100.9".parse().unwrap()));
    /// ```
    pub fn forwarded_header(mut self, header: ForwardedHeader) -> Self {
        self.header = header;
        self
    }

    /// Groups IPv6 clients by this prefix length (default 64; 128 = per address).
    pub fn ipv6_prefix(mut self, bits: u8) -> Self {
        self.ipv6_prefix = bits.min(128);
        self
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|n| n.contains(&ip))
    }

    /// The client IP, or `None` when the server provided no peer address.
    pub fn resolve(&self, headers: &HeaderMap, extensions: &Extensions) -> Option<IpAddr> {
        let peer = peer_addr(extensions)?.ip();
        if self.trusted.is_empty() || !self.is_trusted(peer) {
            return Some(peer);
        }
        // Hops as appended by each proxy, left to right; walk from the right.
        let hops = self.header.hops(headers);
        for hop in hops.iter().rev() {
            if !self.is_trusted(*hop) {
                return Some(*hop);
            }
        }
        // Every hop is a trusted proxy (or a header was unparsable): the leftmost known hop.
        Some(hops.first().copied().unwrap_or(peer))
    }

    /// The bucket name for an IP: the address itself for IPv4, the masked prefix for IPv6
    /// (`2001:db8:1:2::/64`). IPv4-mapped IPv6 addresses count as IPv4.
    pub fn bucket(&self, ip: IpAddr) -> String {
        self.store_key("", ip).as_str().to_owned()
    }

    /// `prefix` followed by the [`bucket`](Self::bucket) of `ip`, built on the stack (this
    /// runs on every limited request).
    pub(crate) fn store_key(&self, prefix: &str, ip: IpAddr) -> StoreKey {
        use fmt::Write as _;
        let mut key = StoreKey::concat(&[prefix]);
        // Writing into a StoreKey cannot fail.
        let _ = match ip {
            IpAddr::V4(v4) => {
                push_ipv4(&mut key, v4);
                Ok(())
            }
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => {
                    push_ipv4(&mut key, v4);
                    Ok(())
                }
                None if self.ipv6_prefix >= 128 => write!(key, "{v6}"),
                None => {
                    let bits = u128::from(v6);
                    let mask = if self.ipv6_prefix == 0 {
                        0
                    } else {
                        u128::MAX << (128 - u32::from(self.ipv6_prefix))
                    };
                    write!(key, "{}/{}", Ipv6Addr::from(bits & mask), self.ipv6_prefix)
                }
            },
        };
        key
    }
}

/// Dotted-quad IPv4, as `Display` writes it, without the formatting machinery.
fn push_ipv4(key: &mut StoreKey, ip: std::net::Ipv4Addr) {
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            key.push_str(".");
        }
        key.push_decimal(u64::from(octet));
    }
}

impl fmt::Debug for ClientIpResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIpResolver")
            .field("trusted", &self.trusted)
            .field("header", &self.header)
            .field("ipv6_prefix", &self.ipv6_prefix)
            .finish()
    }
}

fn peer_addr(extensions: &Extensions) -> Option<SocketAddr> {
    if let Some(ClientAddr(addr)) = extensions.get::<ClientAddr>() {
        return Some(*addr);
    }
    #[cfg(feature = "axum")]
    if let Some(info) = extensions.get::<axum::extract::ConnectInfo<SocketAddr>>() {
        return Some(info.0);
    }
    None
}

/// `Forwarded: for=...` values (RFC 7239), every header in order.
fn forwarded_for(headers: &HeaderMap) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for value in headers.get_all(http::header::FORWARDED) {
        let Ok(value) = value.to_str() else { continue };
        for element in value.split(',') {
            for pair in element.split(';') {
                let Some((name, raw)) = pair.trim().split_once('=') else {
                    continue;
                };
                if name.trim().eq_ignore_ascii_case("for") {
                    if let Some(ip) = parse_node(raw.trim().trim_matches('"')) {
                        out.push(ip);
                    }
                }
            }
        }
    }
    out
}

/// Comma-separated addresses, every header `name` in order (`X-Forwarded-For`, or a
/// single-address header).
fn address_list<K: http::header::AsHeaderName>(headers: &HeaderMap, name: K) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for value in headers.get_all(name) {
        let Ok(value) = value.to_str() else { continue };
        out.extend(value.split(',').filter_map(|v| parse_node(v.trim())));
    }
    out
}

/// `192.0.2.1`, `192.0.2.1:443`, `[2001:db8::1]`, `[2001:db8::1]:443` or a bare IPv6.
fn parse_node(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    s.strip_prefix('[')
        .and_then(|r| r.split(']').next())
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(peer: &str, headers: &[(&str, &str)]) -> (HeaderMap, Extensions) {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let mut e = Extensions::new();
        e.insert(ClientAddr(peer.parse().unwrap()));
        (h, e)
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn untrusted_peers_cannot_spoof() {
        let r = ClientIpResolver::new()
            .trust_proxies(["10.0.0.0/8"])
            .unwrap();
        let (h, e) = req("203.0.113.5:1000", &[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(r.resolve(&h, &e), ip("203.0.113.5"));
        let r = ClientIpResolver::new();
        let (h, e) = req("10.0.0.1:1000", &[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(r.resolve(&h, &e), ip("10.0.0.1"));
    }

    #[test]
    fn walks_from_the_right_past_trusted_hops() {
        let r = ClientIpResolver::new()
            .trust_proxies(["10.0.0.0/8", "192.168.1.1"])
            .unwrap();
        // A client that prepends a fake address is still identified by the real hop.
        let (h, e) = req(
            "10.0.0.1:1000",
            &[
                ("x-forwarded-for", "6.6.6.6, 198.51.100.7"),
                ("x-forwarded-for", "192.168.1.1"),
            ],
        );
        assert_eq!(r.resolve(&h, &e), ip("198.51.100.7"));
        let r = r.forwarded_header(ForwardedHeader::Forwarded);
        let (h, e) = req(
            "10.0.0.1:1000",
            &[(
                "forwarded",
                r#"for=198.51.100.8;proto=https, for="[2001:db8::1]:443""#,
            )],
        );
        assert_eq!(r.resolve(&h, &e), ip("2001:db8::1"));
        let (h, e) = req("10.0.0.1:1000", &[]);
        assert_eq!(r.resolve(&h, &e), ip("10.0.0.1"));
    }

    #[test]
    fn reads_only_the_configured_header() {
        let trusted = || {
            ClientIpResolver::new()
                .trust_proxies(["10.0.0.0/8"])
                .unwrap()
        };
        // What a client behind nginx / ALB sends: its own Forwarded, passed through untouched,
        // and the X-Forwarded-For the proxy appended to.
        let (h, e) = req(
            "10.0.0.1:1000",
            &[
                ("forwarded", "for=6.6.6.6"),
                ("x-forwarded-for", "198.51.100.7"),
                ("x-real-ip", "6.6.6.7"),
            ],
        );
        assert_eq!(trusted().resolve(&h, &e), ip("198.51.100.7"));
        let fwd = trusted().forwarded_header(ForwardedHeader::Forwarded);
        assert_eq!(fwd.resolve(&h, &e), ip("6.6.6.6"));
        let real = trusted().forwarded_header(ForwardedHeader::from_name("X-Real-IP").unwrap());
        assert_eq!(real.resolve(&h, &e), ip("6.6.6.7"));
        // The configured header is absent: the peer, never another header.
        let (h, e) = req("10.0.0.1:1000", &[("forwarded", "for=6.6.6.6")]);
        assert_eq!(trusted().resolve(&h, &e), ip("10.0.0.1"));
        let (h, e) = req("10.0.0.1:1000", &[("x-forwarded-for", "6.6.6.6")]);
        assert_eq!(fwd.resolve(&h, &e), ip("10.0.0.1"));
        assert_eq!(real.resolve(&h, &e), ip("10.0.0.1"));
        // A single-address header sent twice: the one nearest to us.
        let (h, e) = req(
            "10.0.0.1:1000",
            &[("x-real-ip", "6.6.6.6"), ("x-real-ip", "198.51.100.3")],
        );
        assert_eq!(real.resolve(&h, &e), ip("198.51.100.3"));
    }

    #[test]
    fn header_names() {
        assert_eq!(
            ForwardedHeader::from_name(" X-FORWARDED-FOR ").unwrap(),
            ForwardedHeader::XForwardedFor
        );
        assert_eq!(
            ForwardedHeader::from_name("forwarded").unwrap(),
            ForwardedHeader::Forwarded
        );
        assert!(ForwardedHeader::from_name("").is_err());
        assert!(ForwardedHeader::from_name("a:b").is_err());
    }

    #[test]
    fn ipv6_grouping() {
        let r = ClientIpResolver::new();
        assert_eq!(
            r.bucket("2001:db8:1:2:3:4:5:6".parse().unwrap()),
            "2001:db8:1:2::/64"
        );
        assert_eq!(r.bucket("::ffff:192.0.2.1".parse().unwrap()), "192.0.2.1");
        assert_eq!(
            r.clone()
                .ipv6_prefix(48)
                .bucket("2001:db8:1:2::9".parse().unwrap()),
            "2001:db8:1::/48"
        );
        assert_eq!(
            r.ipv6_prefix(128).bucket("2001:db8::9".parse().unwrap()),
            "2001:db8::9"
        );
    }

    #[test]
    fn no_peer_no_ip_and_bad_networks() {
        let r = ClientIpResolver::new();
        assert_eq!(r.resolve(&HeaderMap::new(), &Extensions::new()), None);
        assert!(ClientIpResolver::new().trust_proxies(["nope"]).is_err());
    }
}
