//! Reading credentials from a request: the one place that knows where they live.
//!
//! API keys come from the `X-API-Key` header, then (if enabled) the `api_key` / `apikey`
//! query parameters. Bearer tokens come only from `Authorization: Bearer` (scheme
//! case-insensitive), then, when a layer opts in, from a session cookie; never from the query
//! string. Every reader borrows from the request and
//! allocates only when a query value is percent-encoded.

use std::borrow::Cow;

use http::header::{HeaderMap, HeaderName, AUTHORIZATION, COOKIE};
use http::Uri;

/// Longest API key accepted before hashing; longer values are rejected as malformed.
pub(crate) const MAX_API_KEY_LEN: usize = 512;
/// Longest bearer token accepted; real access tokens are a few KiB at most.
pub(crate) const MAX_BEARER_LEN: usize = 16 * 1024;

/// The `X-API-Key` header name.
pub const API_KEY_HEADER: HeaderName = HeaderName::from_static("x-api-key");

/// What a request carries for one kind of credential.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Presented<'a> {
    /// Nothing of this kind was sent.
    Absent,
    /// A syntactically acceptable value.
    Value(Cow<'a, str>),
    /// Something was sent but it cannot be a credential (empty, too long, not visible ASCII,
    /// sent more than once). Counts as a wrong credential, never as a missing one.
    Malformed,
}

impl Presented<'_> {
    /// Whether anything was sent (a value or something malformed).
    pub(crate) fn is_present(&self) -> bool {
        !matches!(self, Presented::Absent)
    }
}

/// Reads the API key: header first, then the query string when `query` is true.
pub(crate) fn api_key<'a>(headers: &'a HeaderMap, uri: &'a Uri, query: bool) -> Presented<'a> {
    let mut values = headers.get_all(&API_KEY_HEADER).iter();
    if let Some(first) = values.next() {
        if values.next().is_some() {
            return Presented::Malformed;
        }
        return checked_key_bytes(first.as_bytes());
    }
    if query {
        if let Some(q) = uri.query() {
            return api_key_from_query(q);
        }
    }
    Presented::Absent
}

fn api_key_from_query(query: &str) -> Presented<'_> {
    // Cheap pre-check: most requests carry no key, skip the decoder entirely.
    if !query.contains("api_key=") && !query.contains("apikey=") {
        return Presented::Absent;
    }
    let mut found: Option<Cow<'_, str>> = None;
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if name == "api_key" || name == "apikey" {
            if found.is_some() {
                return Presented::Malformed;
            }
            found = Some(value);
        }
    }
    match found {
        Some(v) => checked_key(v),
        None => Presented::Absent,
    }
}

/// One pass over a header value: surrounding blanks trimmed, then visible ASCII only (which
/// also makes it valid UTF-8, so no second validation is needed).
fn checked_key_bytes(raw: &[u8]) -> Presented<'_> {
    let trimmed = raw.trim_ascii();
    // A fold instead of `all`: no early exit, so the check vectorizes.
    let graphic = trimmed
        .iter()
        .fold(true, |ok, &b| ok & b.is_ascii_graphic());
    if trimmed.is_empty() || trimmed.len() > MAX_API_KEY_LEN || !graphic {
        return Presented::Malformed;
    }
    match std::str::from_utf8(trimmed) {
        Ok(key) => Presented::Value(Cow::Borrowed(key)),
        Err(_) => Presented::Malformed,
    }
}

fn checked_key(v: Cow<'_, str>) -> Presented<'_> {
    let ok = !v.is_empty() && v.len() <= MAX_API_KEY_LEN && v.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Presented::Value(v)
    } else {
        Presented::Malformed
    }
}

/// Reads the bearer token from `Authorization`. Other schemes (`Basic`, ...) are absent.
pub(crate) fn bearer(headers: &HeaderMap) -> Presented<'_> {
    let mut found: Option<&str> = None;
    for value in headers.get_all(AUTHORIZATION) {
        let bytes = value.as_bytes();
        // Scheme is case-insensitive (RFC 7235); anything that is not Bearer is not ours.
        if bytes.len() < 6 || !bytes[..6].eq_ignore_ascii_case(b"bearer") {
            continue;
        }
        if bytes.len() > 6 && bytes[6] != b' ' {
            continue; // e.g. "BearerX": a different scheme
        }
        if found.is_some() {
            return Presented::Malformed;
        }
        let Ok(text) = value.to_str() else {
            return Presented::Malformed;
        };
        found = Some(text[6..].trim_matches(' '));
    }
    match found {
        None => Presented::Absent,
        Some(token) if is_b64token(token) && token.len() <= MAX_BEARER_LEN => {
            Presented::Value(Cow::Borrowed(token))
        }
        Some(_) => Presented::Malformed,
    }
}

/// Reads a single-use value from the cookie `name` (RFC 6265 `Cookie` headers, every one of
/// them), for cookies a flow sets and checks once. A cookie sent twice, or a value that is not
/// a `b64token`, is malformed. Session cookies are read with [`cookies`].
#[cfg_attr(not(feature = "oauth-client"), allow(dead_code))]
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Presented<'a> {
    let mut found: Option<&'a [u8]> = None;
    for value in headers.get_all(COOKIE) {
        for pair in value.as_bytes().split(|&b| b == b';') {
            let Some(raw) = cookie_value(pair, name) else {
                continue;
            };
            if found.is_some() {
                return Presented::Malformed;
            }
            found = Some(raw);
        }
    }
    match found.map(std::str::from_utf8) {
        None => Presented::Absent,
        Some(Ok(token)) if is_b64token(token) && token.len() <= MAX_BEARER_LEN => {
            Presented::Value(Cow::Borrowed(token))
        }
        Some(_) => Presented::Malformed,
    }
}

/// Most session cookies of one name that are tried on one request (see [`cookies`]).
pub(crate) const MAX_SESSION_COOKIES: usize = 4;

/// The well-formed values of every cookie with one name, in the order the browser sent them
/// (at most [`MAX_SESSION_COOKIES`], duplicates once), and whether a malformed one was seen.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct SessionCookies<'a> {
    values: [&'a str; MAX_SESSION_COOKIES],
    len: usize,
    malformed: bool,
}

impl<'a> SessionCookies<'a> {
    /// The candidates to verify, first to last.
    pub(crate) fn candidates(&self) -> &[&'a str] {
        &self.values[..self.len]
    }

    /// Only cookies that cannot be a token were sent.
    pub(crate) fn only_malformed(&self) -> bool {
        self.len == 0 && self.malformed
    }
}

/// Reads bearer-token candidates from every cookie `name` (RFC 6265 `Cookie` headers, every
/// one of them), for session cookies.
///
/// A browser sends every cookie that matches the request, so a second cookie of the same name
/// can come from a sibling subdomain (cookie tossing, `Domain=.example.com`) or another path.
/// Treating that as malformed would let whoever planted it break the victim's session, so
/// every well-formed (`b64token`) value is a candidate, at most [`MAX_SESSION_COOKIES`] of
/// them (the first ones sent: browsers order the longer path and the older cookie first), and
/// the caller takes the first that verifies. Malformed values are skipped and only noted.
pub(crate) fn cookies<'a>(headers: &'a HeaderMap, name: &str) -> SessionCookies<'a> {
    let mut found = SessionCookies {
        values: [""; MAX_SESSION_COOKIES],
        len: 0,
        malformed: false,
    };
    for value in headers.get_all(COOKIE) {
        for pair in value.as_bytes().split(|&b| b == b';') {
            let Some(raw) = cookie_value(pair, name) else {
                continue;
            };
            match std::str::from_utf8(raw) {
                Ok(token) if is_b64token(token) && token.len() <= MAX_BEARER_LEN => {
                    if found.len < MAX_SESSION_COOKIES && !found.candidates().contains(&token) {
                        found.values[found.len] = token;
                        found.len += 1;
                    }
                }
                _ => found.malformed = true,
            }
        }
    }
    found
}

/// The value of one `name=value` cookie pair if it is named `name`, unquoted.
fn cookie_value<'a>(pair: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let pair = pair.trim_ascii();
    let eq = pair.iter().position(|&b| b == b'=')?;
    if pair[..eq].trim_ascii() != name.as_bytes() {
        return None;
    }
    let raw = pair[eq + 1..].trim_ascii();
    // RFC 6265 allows the value in double quotes.
    Some(match raw {
        [b'"', inner @ .., b'"'] => inner,
        other => other,
    })
}

/// RFC 6750 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v).unwrap(),
            );
        }
        h
    }

    fn uri(s: &str) -> Uri {
        s.parse().unwrap()
    }

    #[test]
    fn header_wins_over_query() {
        let h = headers(&[("x-api-key", b"from-header")]);
        let u = uri("/mcp?api_key=from-query");
        assert_eq!(
            api_key(&h, &u, true),
            Presented::Value("from-header".into())
        );
    }

    #[test]
    fn query_names_and_switch() {
        let h = HeaderMap::new();
        assert_eq!(
            api_key(&h, &uri("/mcp?x=1&apikey=k%2B1"), true),
            Presented::Value("k+1".into())
        );
        assert_eq!(
            api_key(&h, &uri("/mcp?api_key=k"), false),
            Presented::Absent
        );
        assert_eq!(
            api_key(&h, &uri("/mcp?api_key=a&apikey=b"), true),
            Presented::Malformed
        );
        assert_eq!(
            api_key(&h, &uri("/mcp?api_key="), true),
            Presented::Malformed
        );
        assert_eq!(
            api_key(&h, &uri("/mcp?my_api_key_x=1"), true),
            Presented::Absent
        );
    }

    #[test]
    fn bad_header_values_are_malformed_not_absent() {
        let u = uri("/");
        for h in [
            headers(&[("x-api-key", b"")]),
            headers(&[("x-api-key", b"a"), ("x-api-key", b"b")]),
            headers(&[("x-api-key", b"caf\xc3\xa9")]),
            headers(&[("x-api-key", "k".repeat(MAX_API_KEY_LEN + 1).as_bytes())]),
        ] {
            assert_eq!(api_key(&h, &u, true), Presented::Malformed, "{h:?}");
        }
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        for v in [
            &b"Bearer abc.def"[..],
            b"bearer abc.def",
            b"BEARER  abc.def",
        ] {
            assert_eq!(
                bearer(&headers(&[("authorization", v)])),
                Presented::Value("abc.def".into())
            );
        }
    }

    #[test]
    fn other_schemes_are_absent_and_junk_is_malformed() {
        assert_eq!(
            bearer(&headers(&[("authorization", b"Basic dXNlcjpwYXNz")])),
            Presented::Absent
        );
        assert_eq!(
            bearer(&headers(&[("authorization", b"Bearerx")])),
            Presented::Absent
        );
        for v in [
            &b"Bearer "[..],
            b"Bearer",
            b"Bearer a b",
            b"Bearer \xff\xfe",
            b"Bearer ===",
        ] {
            assert_eq!(
                bearer(&headers(&[("authorization", v)])),
                Presented::Malformed,
                "{v:?}"
            );
        }
        assert_eq!(
            bearer(&headers(&[
                ("authorization", b"Bearer a"),
                ("authorization", b"Bearer b")
            ])),
            Presented::Malformed
        );
        let huge = format!("Bearer {}", "a".repeat(MAX_BEARER_LEN + 1));
        assert_eq!(
            bearer(&headers(&[("authorization", huge.as_bytes())])),
            Presented::Malformed
        );
    }

    #[test]
    fn session_cookie_is_read_by_name_only() {
        let h = headers(&[("cookie", b"theme=dark; mcp_session=abc.def-_; other=1")]);
        assert_eq!(
            cookie(&h, "mcp_session"),
            Presented::Value("abc.def-_".into())
        );
        assert_eq!(cookie(&h, "mcp"), Presented::Absent);
        assert_eq!(cookie(&HeaderMap::new(), "mcp_session"), Presented::Absent);
        let quoted = headers(&[("cookie", b"mcp_session=\"abc\"")]);
        assert_eq!(
            cookie(&quoted, "mcp_session"),
            Presented::Value("abc".into())
        );
        // Several Cookie headers (HTTP/2) are all read.
        let split = headers(&[("cookie", b"a=1"), ("cookie", b"mcp_session=t")]);
        assert_eq!(cookie(&split, "mcp_session"), Presented::Value("t".into()));
    }

    #[test]
    fn bad_session_cookies_are_malformed() {
        let huge = format!("mcp_session={}", "a".repeat(MAX_BEARER_LEN + 1));
        for v in [
            &b"mcp_session="[..],
            b"mcp_session=a b",
            b"mcp_session=\xff",
            b"mcp_session=a; mcp_session=b",
            huge.as_bytes(),
        ] {
            assert_eq!(
                cookie(&headers(&[("cookie", v)]), "mcp_session"),
                Presented::Malformed,
                "{v:?}"
            );
        }
        // Junk without `=` or with other names is ignored.
        let h = headers(&[("cookie", b";;junk; =x; mcp_session=ok")]);
        assert_eq!(cookie(&h, "mcp_session"), Presented::Value("ok".into()));
    }

    #[test]
    fn session_cookies_keep_every_well_formed_candidate() {
        let read = |v: &[u8]| {
            let h = headers(&[("cookie", v)]);
            let c = cookies(&h, "s");
            (
                c.candidates()
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>(),
                c.only_malformed(),
            )
        };
        assert_eq!(
            read(b"s=forged; x=1; s=\"good\""),
            (vec!["forged".into(), "good".into()], false)
        );
        assert_eq!(read(b"s=a b; s=%%; s=ok"), (vec!["ok".into()], false));
        assert_eq!(read(b"s=a b; s="), (vec![], true));
        assert_eq!(read(b"other=1"), (vec![], false));
        // Duplicates once, and never more than the bound.
        assert_eq!(read(b"s=a; s=a; s=b").0, ["a", "b"]);
        assert_eq!(
            read(b"s=1; s=2; s=3; s=4; s=5; s=6").0.len(),
            MAX_SESSION_COOKIES
        );
        let h = headers(&[("cookie", b"s=1"), ("cookie", b"s=2")]);
        assert_eq!(cookies(&h, "s").candidates(), ["1", "2"]);
    }
}
