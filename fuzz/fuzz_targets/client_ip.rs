//! `src/rate_limit/client_ip.rs`: the client IP from the peer and `Forwarded` /
//! `X-Forwarded-For` of trusted proxies, and its rate-limit bucket.
//!
//! Input lines: `t:` trusted networks (comma-separated), `p:` the peer socket address,
//! `x:` an `X-Forwarded-For` value, `f:` a `Forwarded` value (both repeatable), `h:`
//! `forwarded` to configure `Forwarded` as the header (default `X-Forwarded-For`), `b:` the
//! IPv6 bucket prefix length.
//!
//! Invariants beyond "no panic":
//! - the client IP is the peer, or one of the addresses written in the forwarding headers
//!   (only the configured one once `CLIENT_IP_ONE_HEADER` is on);
//! - a peer that is not a trusted proxy is always the client, whatever the headers say;
//! - buckets: IPv4 (and IPv4-mapped) addresses are their own bucket; an IPv6 bucket is the
//!   address masked to the prefix, and bucketing the bucket's address gives the same bucket.
#![no_main]

mod common;

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use tower_mcp_auth::__fuzz::{self as f, ClientIpHeader};

/// Every address an RFC 7239 / XFF reader could take from these header values (a superset).
fn written_addresses<'a>(values: impl Iterator<Item = &'a HeaderValue>) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for v in values {
        let Ok(text) = v.to_str() else { continue };
        for token in text.split([',', ';', '=', '"', ' ', '\t']) {
            if let Ok(ip) = token.parse::<IpAddr>() {
                out.push(ip);
            } else if let Ok(sa) = token.parse::<SocketAddr>() {
                out.push(sa.ip());
            } else if let Some(ip) = token
                .strip_prefix('[')
                .and_then(|r| r.split(']').next())
                .and_then(|v| v.parse().ok())
            {
                out.push(ip);
            }
        }
    }
    out
}

fn contains(nets: &[(IpAddr, u8)], ip: IpAddr) -> bool {
    nets.iter().any(|&(net, len)| match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len.min(32)))
            };
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len.min(128)))
            };
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    })
}

fuzz_target!(|data: &[u8]| {
    let mut trusted: Vec<String> = Vec::new();
    let mut peer: SocketAddr = "10.0.0.1:443".parse().unwrap();
    let mut header = ClientIpHeader::XForwardedFor;
    let mut prefix = 64u8;
    let mut headers = HeaderMap::new();
    for (tag, value) in common::tagged_lines(data) {
        let text = String::from_utf8_lossy(value);
        match tag {
            "t" => trusted.extend(text.split(',').map(|s| s.trim().to_owned())),
            "p" => {
                if let Ok(p) = text.trim().parse() {
                    peer = p;
                }
            }
            "h" => {
                if text.trim().eq_ignore_ascii_case("forwarded") {
                    header = ClientIpHeader::Forwarded;
                }
            }
            "b" => prefix = text.trim().parse().unwrap_or(64),
            "x" | "f" => {
                let name = if tag == "x" {
                    "x-forwarded-for"
                } else {
                    "forwarded"
                };
                if let Ok(v) = HeaderValue::from_bytes(value) {
                    headers.append(HeaderName::from_static(name), v);
                }
            }
            _ => {}
        }
    }
    // The networks as the resolver understands them (address or CIDR), for the oracle.
    let nets: Option<Vec<(IpAddr, u8)>> = trusted
        .iter()
        .map(|n| {
            let n = n.trim();
            match n.split_once('/') {
                Some((a, l)) => {
                    let a: IpAddr = a.parse().ok()?;
                    let l: u8 = l.parse().ok()?;
                    (l <= if a.is_ipv4() { 32 } else { 128 }).then_some((a, l))
                }
                None => n
                    .parse::<IpAddr>()
                    .ok()
                    .map(|a| (a, if a.is_ipv4() { 32 } else { 128 })),
            }
        })
        .collect();

    let Some(result) = f::client_ip(&trusted, header, &headers, peer) else {
        return; // a network the resolver refuses at build time
    };
    let ip = result.expect("a peer address was given");
    // `ipnet` reads some forms std does not (`10.00.0.0/8`): then only the checks below that
    // need no network list run.
    if nets.is_some_and(|nets| !contains(&nets, peer.ip())) {
        assert_eq!(ip, peer.ip(), "an untrusted peer spoofed its address");
    }
    if ip != peer.ip() {
        let written = if f::CLIENT_IP_ONE_HEADER {
            let name = match header {
                ClientIpHeader::XForwardedFor => "x-forwarded-for",
                ClientIpHeader::Forwarded => "forwarded",
            };
            written_addresses(headers.get_all(name).iter())
        } else {
            written_addresses(headers.values())
        };
        assert!(
            written.contains(&ip),
            "{ip} is neither the peer nor in the headers"
        );
    }

    // Buckets.
    let bucket = f::client_ip_bucket(ip, prefix);
    let as_v4 = match ip {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(v6) => v6.to_ipv4_mapped(),
    };
    match as_v4 {
        Some(v4) => assert_eq!(bucket, v4.to_string()),
        None => {
            let IpAddr::V6(v6) = ip else { unreachable!() };
            let bits = prefix.min(128);
            if bits >= 128 {
                assert_eq!(bucket, v6.to_string());
            } else {
                let (addr, len) = bucket.split_once('/').expect("an IPv6 bucket has a prefix");
                assert_eq!(len, bits.to_string());
                let addr: Ipv6Addr = addr.parse().expect("the bucket address parses");
                let mask = if bits == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(bits))
                };
                assert_eq!(u128::from(addr), u128::from(v6) & mask);
                if addr.to_ipv4_mapped().is_none() {
                    assert_eq!(f::client_ip_bucket(IpAddr::V6(addr), prefix), bucket);
                }
            }
        }
    }
});
