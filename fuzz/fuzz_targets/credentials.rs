//! `src/credentials.rs`: `X-API-Key`, `api_key` / `apikey` query, `Authorization: Bearer`
//! and the session cookie.
//!
//! Input lines: `k:` an `X-API-Key` value, `a:` an `Authorization` value, `c:` a `Cookie`
//! value (each repeatable), `q:` the query string, `n:` the cookie name (default
//! `mcp_session`), `o:` present = query parameters off.
//!
//! Invariants beyond "no panic":
//! - a `Value` is within the length limit and of the allowed alphabet (visible ASCII for keys,
//!   RFC 6750 b64token for tokens);
//! - a credential sent twice is `Malformed`, never one of the two values;
//! - the header value (trimmed) is what is returned, and the header wins over the query;
//! - the query result agrees with an independent `form_urlencoded` reading;
//! - accepted values round-trip: put alone into a fresh request, they read back the same.
#![no_main]

mod common;

use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use libfuzzer_sys::fuzz_target;
use tower_mcp_auth::__fuzz::{self as f, Presented};

fn is_b64token(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

fn one(name: &'static str, value: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.append(
        HeaderName::from_static(name),
        HeaderValue::from_str(value).unwrap(),
    );
    h
}

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    let (mut keys, mut auths, mut cookies) = (Vec::new(), Vec::new(), Vec::new());
    let mut query: Option<&[u8]> = None;
    let mut cookie_name = "mcp_session".to_owned();
    let mut query_on = true;
    for (tag, value) in common::tagged_lines(data) {
        let name = match tag {
            "k" => "x-api-key",
            "a" => "authorization",
            "c" => "cookie",
            "q" => {
                query = Some(value);
                continue;
            }
            "n" => {
                cookie_name = String::from_utf8_lossy(value).into_owned();
                continue;
            }
            "o" => {
                query_on = false;
                continue;
            }
            _ => continue,
        };
        let Ok(v) = HeaderValue::from_bytes(value) else {
            continue;
        };
        match name {
            "x-api-key" => keys.push(v.clone()),
            "authorization" => auths.push(v.clone()),
            _ => cookies.push(v.clone()),
        }
        headers.append(HeaderName::from_static(name), v);
    }
    let uri: Uri = query
        .and_then(|q| std::str::from_utf8(q).ok())
        .and_then(|q| format!("/mcp?{q}").parse().ok())
        .unwrap_or_else(|| Uri::from_static("/mcp"));

    // --- API key -------------------------------------------------------------------------
    let key = f::api_key(&headers, &uri, query_on);
    if let Presented::Value(v) = &key {
        assert!(!v.is_empty() && v.len() <= f::MAX_API_KEY_LEN, "{v:?}");
        assert!(v.bytes().all(|b| b.is_ascii_graphic()), "{v:?}");
        assert_eq!(
            f::api_key(&one("x-api-key", v), &Uri::from_static("/"), false),
            key,
            "round trip"
        );
    }
    match keys.len() {
        0 => {
            let expected = match (query_on, uri.query()) {
                (true, Some(q)) if q.contains("api_key=") || q.contains("apikey=") => {
                    let found: Vec<String> = form_urlencoded::parse(q.as_bytes())
                        .filter(|(k, _)| k == "api_key" || k == "apikey")
                        .map(|(_, v)| v.into_owned())
                        .collect();
                    match found.as_slice() {
                        [] => Presented::Absent,
                        [v] if !v.is_empty()
                            && v.len() <= f::MAX_API_KEY_LEN
                            && v.bytes().all(|b| b.is_ascii_graphic()) =>
                        {
                            Presented::Value(v.clone())
                        }
                        _ => Presented::Malformed,
                    }
                }
                _ => Presented::Absent,
            };
            assert_eq!(key, expected, "query {:?}", uri.query());
        }
        1 => {
            // The header wins; the query is never consulted.
            assert_eq!(key, f::api_key(&headers, &uri, false));
            let trimmed = keys[0].as_bytes().trim_ascii();
            if let Presented::Value(v) = &key {
                assert_eq!(v.as_bytes(), trimmed);
            } else {
                assert_eq!(key, Presented::Malformed);
            }
        }
        _ => assert_eq!(key, Presented::Malformed, "a key sent twice"),
    }

    // --- Bearer ----------------------------------------------------------------------------
    let token = f::bearer(&headers);
    let ours: Vec<&HeaderValue> = auths
        .iter()
        .filter(|v| {
            let b = v.as_bytes();
            b.len() >= 6 && b[..6].eq_ignore_ascii_case(b"bearer") && (b.len() == 6 || b[6] == b' ')
        })
        .collect();
    match (ours.as_slice(), &token) {
        ([], t) => assert_eq!(*t, Presented::Absent),
        ([only], Presented::Value(v)) => {
            assert!(is_b64token(v) && v.len() <= f::MAX_BEARER_LEN, "{v:?}");
            let text = only.to_str().expect("a token came from a non-text header");
            assert_eq!(text[6..].trim_matches(' '), v);
            assert_eq!(
                f::bearer(&one("authorization", &format!("Bearer {v}"))),
                token
            );
        }
        ([only], t) => {
            assert_eq!(*t, Presented::Malformed);
            if let Ok(text) = only.to_str() {
                let rest = text[6..].trim_matches(' ');
                assert!(
                    !is_b64token(rest) || rest.len() > f::MAX_BEARER_LEN,
                    "{rest:?}"
                );
            }
        }
        (_, t) => assert_eq!(*t, Presented::Malformed, "two bearer headers"),
    }

    // --- Session cookie ----------------------------------------------------------------------
    let cookie = f::cookie(&headers, &cookie_name);
    let mut values: Vec<&[u8]> = Vec::new();
    for c in &cookies {
        for pair in c.as_bytes().split(|&b| b == b';') {
            let pair = pair.trim_ascii();
            if let Some(eq) = pair.iter().position(|&b| b == b'=') {
                if pair[..eq].trim_ascii() == cookie_name.as_bytes() {
                    let raw = pair[eq + 1..].trim_ascii();
                    let raw = match raw {
                        [b'"', inner @ .., b'"'] => inner,
                        other => other,
                    };
                    values.push(raw);
                }
            }
        }
    }
    match (values.as_slice(), &cookie) {
        ([], c) => assert_eq!(*c, Presented::Absent),
        ([raw], Presented::Value(v)) => {
            assert_eq!(v.as_bytes(), *raw);
            assert!(is_b64token(v) && v.len() <= f::MAX_BEARER_LEN, "{v:?}");
            let plain = !cookie_name.is_empty()
                && !cookie_name.contains(['=', ';'])
                && cookie_name.trim_ascii() == cookie_name;
            if plain && HeaderValue::from_str(&cookie_name).is_ok() {
                let again = one("cookie", &format!("{cookie_name}={v}"));
                assert_eq!(f::cookie(&again, &cookie_name), cookie);
            }
        }
        ([raw], c) => {
            assert_eq!(*c, Presented::Malformed);
            let ok = std::str::from_utf8(raw)
                .is_ok_and(|t| is_b64token(t) && t.len() <= f::MAX_BEARER_LEN);
            assert!(!ok, "a valid cookie value {raw:?} was refused");
        }
        (_, c) => assert_eq!(*c, Presented::Malformed, "cookie sent twice"),
    }
});
