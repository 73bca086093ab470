//! Canonical request paths: the decoded path the router dispatches on, or a refusal.
//!
//! Routers match the path and percent-decode their parameters: axum sends
//! `/users/alic%65/mcp` to the `/users/{id}/mcp` handler with `id = "alice"`. A policy that
//! matched the raw text would not see alice's endpoint there, so policies match the decoded
//! path, and every form whose meaning depends on who decodes it (and how often) is refused:
//!
//! - an encoded separator, `%2F` or `%5C` (one segment for the router, two once decoded);
//! - a dot segment, `.` or `..`, raw or encoded (`%2e%2e`), which clients, proxies and
//!   file-serving handlers resolve differently;
//! - an empty interior segment (`//`), which proxies often merge;
//! - an encoded percent sign `%25` (double encoding: decoded once more it is another path);
//! - a `%` not followed by two hex digits, or bytes that decode to invalid UTF-8;
//! - NUL, other control characters and a raw backslash.
//!
//! A plain path (no `%`) is checked in one pass and borrowed: decoding allocates only when
//! the path contains an escape.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use http::request::Parts;
use http::{Extensions, Request, Uri};

/// Why a request path was refused with 400 `invalid_request`
/// ([`AuthError::MalformedPath`](crate::AuthError::MalformedPath)).
///
/// ```
/// use tower_mcp_auth::{AuthError, ErrorContext, policy::PathRejection};
///
/// let res = AuthError::MalformedPath(PathRejection::EncodedSeparator)
///     .to_response(&ErrorContext::both());
/// assert_eq!(res.status(), 400);
/// assert!(res.headers().get("www-authenticate").is_none());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum PathRejection {
    /// `%2F` or `%5C`: an encoded slash or backslash.
    #[error("an encoded slash or backslash (%2F, %5C) is not allowed")]
    EncodedSeparator,
    /// A `.` or `..` segment, raw or percent-encoded.
    #[error("dot segments (. and ..), raw or encoded, are not allowed")]
    DotSegment,
    /// An empty segment before the last one (`//`).
    #[error("empty path segments (//) are not allowed")]
    EmptySegment,
    /// `%25`: a percent sign that would decode into another escape.
    #[error("an encoded percent sign (%25) is not allowed")]
    DoubleEncoding,
    /// A `%` not followed by two hexadecimal digits.
    #[error("a % must be followed by two hexadecimal digits")]
    InvalidEscape,
    /// The decoded bytes are not UTF-8.
    #[error("the decoded path is not valid UTF-8")]
    InvalidUtf8,
    /// NUL or another control character (raw or encoded), or a raw backslash.
    #[error("control characters and backslashes are not allowed")]
    ForbiddenCharacter,
}

impl PathRejection {
    /// The `error_description` of the 400 response.
    pub(crate) fn description(self) -> &'static str {
        match self {
            Self::EncodedSeparator => {
                "Malformed request path: an encoded slash or backslash (%2F, %5C) is not allowed"
            }
            Self::DotSegment => {
                "Malformed request path: dot segments (. and ..), raw or encoded, are not allowed"
            }
            Self::EmptySegment => {
                "Malformed request path: empty path segments (//) are not allowed"
            }
            Self::DoubleEncoding => {
                "Malformed request path: an encoded percent sign (%25) is not allowed"
            }
            Self::InvalidEscape => {
                "Malformed request path: a % must be followed by two hexadecimal digits"
            }
            Self::InvalidUtf8 => "Malformed request path: the decoded path is not valid UTF-8",
            Self::ForbiddenCharacter => {
                "Malformed request path: control characters and backslashes are not allowed"
            }
        }
    }
}

/// Decodes `raw` (a request URI's path, without query) into the canonical path policies
/// match, or says why it is refused.
///
/// Borrows `raw` when it has no `%` escape; allocates the decoded string otherwise. A path
/// that does not start with `/` (`*` of `OPTIONS *`, an authority-form target) is returned
/// unchanged: no pattern matches it.
///
/// For every other layer that matches paths (MCP rules, metadata routing): call this and
/// match on its output, so they agree with the policy layer and the router.
pub(crate) fn canonicalize(raw: &str) -> Result<Cow<'_, str>, PathRejection> {
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Ok(Cow::Borrowed(raw));
    }
    let mut escaped = false;
    let mut ascii = true;
    for &b in bytes {
        match b {
            b'%' => escaped = true,
            b'\\' => return Err(PathRejection::ForbiddenCharacter),
            b if b.is_ascii_control() => return Err(PathRejection::ForbiddenCharacter),
            b if !b.is_ascii() => ascii = false,
            _ => {}
        }
    }
    if !escaped {
        // Raw UTF-8 (http accepts it): C1 controls such as U+0085 are refused too.
        if !ascii && raw.chars().any(char::is_control) {
            return Err(PathRejection::ForbiddenCharacter);
        }
        check_segments(raw)?;
        return Ok(Cow::Borrowed(raw));
    }
    let decoded = String::from_utf8(decode(bytes)?).map_err(|_| PathRejection::InvalidUtf8)?;
    if decoded.chars().any(char::is_control) {
        return Err(PathRejection::ForbiddenCharacter);
    }
    check_segments(&decoded)?;
    Ok(Cow::Owned(decoded))
}

/// Percent-decodes, refusing escapes of `/`, `\` and `%` and malformed escapes.
fn decode(bytes: &[u8]) -> Result<Vec<u8>, PathRejection> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let (Some(hi), Some(lo)) = (
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) else {
            return Err(PathRejection::InvalidEscape);
        };
        match (hi << 4) | lo {
            b'/' | b'\\' => return Err(PathRejection::EncodedSeparator),
            b'%' => return Err(PathRejection::DoubleEncoding),
            byte => out.push(byte),
        }
        i += 3;
    }
    Ok(out)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// No `.` / `..` segment, no empty segment except a trailing one (`/mcp/`, `/`). `path`
/// starts with `/`. One pass over the bytes (runs on every request).
fn check_segments(path: &str) -> Result<(), PathRejection> {
    let bytes = path.as_bytes();
    // Start of the current segment (just after its `/`).
    let mut start = 1;
    for at in 1..=bytes.len() {
        if at < bytes.len() && bytes[at] != b'/' {
            continue;
        }
        match &bytes[start..at] {
            b"." | b".." => return Err(PathRejection::DotSegment),
            b"" if at < bytes.len() => return Err(PathRejection::EmptySegment),
            _ => {}
        }
        start = at + 1;
    }
    Ok(())
}

/// The decoded, canonical path of a request, as
/// [`EndpointPolicyLayer`](crate::policy::EndpointPolicyLayer) matches it.
///
/// The policy layer refuses non-canonical paths (`%2F`, dot segments, NUL, ...) with 400
/// `invalid_request` and decodes the rest. When decoding changed the path (it had `%`
/// escapes), the result is kept in the request extensions as a `CanonicalPath`, so later
/// readers do not decode again; a plain path is already canonical, and nothing is allocated
/// or inserted for it. Read it with [`CanonicalPath::of`] (or
/// [`of_request`](Self::of_request)) in a
/// [`resolver`](crate::policy::EndpointPolicyLayerBuilder::resolver) and in any layer or handler
/// inside the policy layer that authorizes by path: it is the canonical form of the path of
/// the URI it is given, so it stays right where the URI was rewritten since (axum's `nest`
/// strips the prefix).
///
/// ```
/// use std::convert::Infallible;
/// use http_body_util::BodyExt;
/// use tower::ServiceExt;
/// use tower_mcp_auth::{EndpointPolicy, policy::{CanonicalPath, EndpointPolicyLayer}};
///
/// let layer = EndpointPolicyLayer::builder(EndpointPolicy::open())
///     .resolver(|parts| {
///         // `/users/b%6Fb/mcp` arrives here as `/users/bob/mcp`.
///         let path = CanonicalPath::of(parts);
///         let user = path.strip_prefix("/users/")?.strip_suffix("/mcp")?;
///         (user == "bob").then(EndpointPolicy::api_key_only)
///     })
///     .build()
///     .unwrap();
/// let echo = tower::service_fn(|req: http::Request<()>| async move {
///     let path = CanonicalPath::of_request(&req).into_owned();
///     Ok::<_, Infallible>(http::Response::new(path))
/// });
/// let svc = tower::ServiceBuilder::new().layer(layer).service(echo);
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let get = |path: &str| http::Request::get(path).body(()).unwrap();
///
/// let res = svc.clone().oneshot(get("/users/alic%65/mcp")).await.unwrap();
/// let body = res.into_body().collect().await.unwrap().to_bytes();
/// assert_eq!(body, "/users/alice/mcp");
/// // bob's endpoint needs a key, however it is spelled.
/// let res = svc.clone().oneshot(get("/users/b%6Fb/mcp")).await.unwrap();
/// assert_eq!(res.status(), 401);
/// // An encoded slash is refused before any policy applies.
/// let res = svc.clone().oneshot(get("/users/a%2Fb/mcp")).await.unwrap();
/// assert_eq!(res.status(), 400);
/// # });
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct CanonicalPath {
    /// The raw path, then the decoded one, in one allocation.
    both: Arc<str>,
    split: usize,
}

impl CanonicalPath {
    /// The canonical path of this request's URI: the decoded path the policy layer recorded
    /// for it, else the URI's path decoded here (borrowed when it has no `%`).
    ///
    /// Inside the policy layer every path is canonical. Elsewhere a path it would refuse
    /// (`%2F`, `..`, ...) is returned as it is.
    pub fn of(parts: &Parts) -> Cow<'_, str> {
        Self::lookup(&parts.uri, &parts.extensions)
    }

    /// [`of`](Self::of) for a whole request.
    pub fn of_request<B>(req: &Request<B>) -> Cow<'_, str> {
        Self::lookup(req.uri(), req.extensions())
    }

    /// The decoded path.
    pub fn as_str(&self) -> &str {
        &self.both[self.split..]
    }

    /// The raw path it was decoded from.
    fn raw(&self) -> &str {
        &self.both[..self.split]
    }

    fn new(raw: &str, decoded: &str) -> Self {
        let mut both = String::with_capacity(raw.len() + decoded.len());
        both.push_str(raw);
        both.push_str(decoded);
        Self {
            both: Arc::from(both),
            split: raw.len(),
        }
    }

    fn lookup<'a>(uri: &'a Uri, extensions: &'a Extensions) -> Cow<'a, str> {
        let raw = uri.path();
        match extensions.get::<CanonicalPath>() {
            Some(path) if path.raw() == raw => Cow::Borrowed(path.as_str()),
            _ => canonicalize(raw).unwrap_or(Cow::Borrowed(raw)),
        }
    }
}

impl fmt::Debug for CanonicalPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CanonicalPath({:?})", self.as_str())
    }
}

/// Canonicalizes the request's path and records the result: inserts the decoded path when
/// it differs from the URI's, removes a stale one otherwise, so that [`recorded`] holds.
/// Returns whether a decoded path was inserted (when not, the URI's path is canonical).
pub(crate) fn record<B>(req: &mut Request<B>) -> Result<bool, PathRejection> {
    let decoded = match canonicalize(req.uri().path())? {
        Cow::Borrowed(_) => None,
        Cow::Owned(decoded) => Some(CanonicalPath::new(req.uri().path(), &decoded)),
    };
    let inserted = decoded.is_some();
    match decoded {
        Some(path) => {
            req.extensions_mut().insert(path);
        }
        None => {
            req.extensions_mut().remove::<CanonicalPath>();
        }
    }
    Ok(inserted)
}

/// After [`record`] succeeded on a request: the canonical path, without decoding again.
pub(crate) fn recorded<'a>(uri: &'a Uri, extensions: &'a Extensions) -> &'a str {
    match extensions.get::<CanonicalPath>() {
        Some(path) => path.as_str(),
        None => uri.path(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> String {
        canonicalize(raw)
            .unwrap_or_else(|e| panic!("{raw}: {e}"))
            .into_owned()
    }

    fn err(raw: &str) -> PathRejection {
        match canonicalize(raw) {
            Ok(p) => panic!("{raw} accepted as {p}"),
            Err(e) => e,
        }
    }

    #[test]
    fn plain_paths_are_borrowed() {
        for raw in [
            "/",
            "/mcp",
            "/mcp/",
            "/users/alice/mcp",
            "/a.b/.c/..d/c..",
            "/café",
            "*",
        ] {
            assert!(
                matches!(canonicalize(raw), Ok(Cow::Borrowed(p)) if p == raw),
                "{raw}"
            );
        }
    }

    #[test]
    fn escapes_are_decoded() {
        assert_eq!(ok("/users/alic%65/mcp"), "/users/alice/mcp");
        assert_eq!(ok("/users/%61%6C%69%63%65/mcp"), "/users/alice/mcp");
        assert_eq!(ok("/caf%C3%A9"), "/café");
        assert_eq!(ok("/a%20b"), "/a b");
        assert_eq!(ok("/a%3Fb%23c"), "/a?b#c");
        assert_eq!(ok("/%2e%2e%2e"), "/...");
        assert_eq!(ok("/m%63p/"), "/mcp/");
    }

    #[test]
    fn non_canonical_forms_are_refused() {
        use PathRejection::*;
        let cases = [
            ("/a%2Fb", EncodedSeparator),
            ("/a%2fb", EncodedSeparator),
            ("/a%5Cb", EncodedSeparator),
            ("/a%5cb", EncodedSeparator),
            ("/a\\b", ForbiddenCharacter),
            ("/a/./b", DotSegment),
            ("/a/../b", DotSegment),
            ("/a/.", DotSegment),
            ("/..", DotSegment),
            ("/a/%2e/b", DotSegment),
            ("/a/%2E%2E/b", DotSegment),
            ("/a/.%2e", DotSegment),
            ("/a/%2e.", DotSegment),
            ("//a", EmptySegment),
            ("/a//b", EmptySegment),
            ("/a%2565", DoubleEncoding),
            ("/a%25", DoubleEncoding),
            ("/a%", InvalidEscape),
            ("/a%6", InvalidEscape),
            ("/a%zz", InvalidEscape),
            ("/a%%41", InvalidEscape),
            ("/a%ff", InvalidUtf8),
            ("/a%C3", InvalidUtf8),
            ("/a%C0%AF", InvalidUtf8),
            ("/a%00", ForbiddenCharacter),
            ("/a%0a", ForbiddenCharacter),
            ("/a%0D", ForbiddenCharacter),
            ("/a%7F", ForbiddenCharacter),
            ("/a%C2%85", ForbiddenCharacter),
            ("/a\u{85}", ForbiddenCharacter),
            ("/a\0", ForbiddenCharacter),
            ("/a\t", ForbiddenCharacter),
        ];
        for (raw, why) in cases {
            assert_eq!(err(raw), why, "{raw}");
        }
    }

    #[test]
    fn record_inserts_only_decoded_paths_and_drops_stale_ones() {
        let get = |path: &str| http::Request::get(path).body(()).unwrap();
        let mut req = get("/users/alic%65/mcp");
        assert!(record(&mut req).unwrap());
        assert_eq!(recorded(req.uri(), req.extensions()), "/users/alice/mcp");
        assert!(matches!(
            CanonicalPath::of_request(&req),
            Cow::Borrowed("/users/alice/mcp")
        ));

        let mut plain = get("/mcp");
        assert!(!record(&mut plain).unwrap());
        assert!(plain.extensions().get::<CanonicalPath>().is_none());
        assert_eq!(recorded(plain.uri(), plain.extensions()), "/mcp");
        assert!(matches!(
            CanonicalPath::of_request(&plain),
            Cow::Borrowed("/mcp")
        ));
        // A decoded path left by an outer layer for another URI does not survive.
        *plain.extensions_mut() = req.extensions().clone();
        assert!(!record(&mut plain).unwrap());
        assert_eq!(recorded(plain.uri(), plain.extensions()), "/mcp");
        assert!(plain.extensions().get::<CanonicalPath>().is_none());

        let mut bad = get("/a%2Fb");
        assert_eq!(record(&mut bad), Err(PathRejection::EncodedSeparator));
    }

    #[test]
    fn of_follows_a_rewritten_uri() {
        // As behind `nest("/api", ..)`: the URI loses its prefix after the policy layer.
        let mut req = http::Request::get("/api/users/alic%65/mcp")
            .body(())
            .unwrap();
        record(&mut req).unwrap();
        let (mut parts, ()) = req.into_parts();
        assert_eq!(CanonicalPath::of(&parts), "/api/users/alice/mcp");
        parts.uri = "/users/alic%65/mcp".parse().unwrap();
        assert_eq!(CanonicalPath::of(&parts), "/users/alice/mcp");
        parts.uri = "/users/bob/mcp".parse().unwrap();
        assert_eq!(CanonicalPath::of(&parts), "/users/bob/mcp");
        // Outside the policy layer a refused path is returned as it is.
        parts.uri = "/a%2Fb".parse().unwrap();
        assert_eq!(CanonicalPath::of(&parts), "/a%2Fb");
    }

    /// A small deterministic generator (xorshift64*), so the property tests need no crate.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Random raw paths built from the pieces that matter: separators, dots, escapes
    /// (valid, invalid, encoded separators and dots, multi-byte UTF-8), plain characters.
    fn random_path(rng: &mut Rng) -> String {
        const PIECES: &[&str] = &[
            "/",
            "/",
            "/",
            "a",
            "b",
            "z",
            "0",
            ".",
            ".",
            "-",
            "~",
            "é",
            "%",
            "2",
            "e",
            "F",
            "%41",
            "%61",
            "%2e",
            "%2E",
            "%2F",
            "%5C",
            "%25",
            "%20",
            "%3F",
            "%C3%A9",
            "%E2%82%AC",
            "%ff",
            "%C3",
            "%00",
            "%7f",
            "%g1",
            "%4",
            "\\",
        ];
        let mut path = String::from("/");
        for _ in 0..rng.below(12) {
            path.push_str(PIECES[rng.below(PIECES.len())]);
        }
        path
    }

    /// Percent-encodes each byte except `/`: non-ASCII bytes always, the others with
    /// probability `p` out of 4 (4 = every byte).
    fn encode(path: &str, rng: &mut Rng, p: usize) -> String {
        let mut out = String::with_capacity(path.len() * 3);
        for b in path.bytes() {
            if b == b'/' || (b.is_ascii() && rng.below(4) >= p) {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }

    fn assert_canonical_invariants(raw: &str, canonical: &str) {
        assert!(canonical.starts_with('/'), "{raw} -> {canonical}");
        assert!(!canonical.contains(['%', '\\']), "{raw} -> {canonical}");
        assert!(
            !canonical.chars().any(char::is_control),
            "{raw} -> {canonical:?}"
        );
        let segments: Vec<&str> = canonical[1..].split('/').collect();
        for (i, s) in segments.iter().enumerate() {
            assert!(*s != "." && *s != "..", "{raw} -> {canonical}");
            assert!(
                !s.is_empty() || i == segments.len() - 1,
                "{raw} -> {canonical}"
            );
        }
    }

    #[test]
    fn property_decoding_is_idempotent_and_reencoding_is_equivalent() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let (mut accepted, mut decoded) = (0, 0);
        for _ in 0..20_000 {
            let raw = random_path(&mut rng);
            let Ok(canonical) = canonicalize(&raw) else {
                continue;
            };
            accepted += 1;
            if raw.contains('%') {
                decoded += 1;
            } else {
                assert!(matches!(canonical, Cow::Borrowed(_)), "{raw}");
            }
            assert_canonical_invariants(&raw, &canonical);
            // Idempotent: the output is its own canonical form, borrowed (nothing to decode).
            assert!(
                matches!(canonicalize(&canonical), Ok(Cow::Borrowed(p)) if p == canonical),
                "{raw} -> {canonical}"
            );
            // Any spelling of the same path (some or all bytes escaped) is equivalent.
            for p in [1, 2, 4] {
                let spelled = encode(&canonical, &mut rng, p);
                assert_eq!(
                    canonicalize(&spelled).as_deref(),
                    Ok(&*canonical),
                    "{raw} -> {canonical} respelled {spelled}"
                );
            }
        }
        // The generator must exercise both branches, or the property proves nothing.
        assert!(accepted > 2_000 && decoded > 500, "{accepted} {decoded}");
    }

    #[test]
    fn property_refusals_survive_respelling_of_other_bytes() {
        // Escaping an unreserved letter never turns a refused path into an accepted one.
        let mut rng = Rng(0xD1B5_4A32_D192_ED03);
        let mut refused = 0;
        for _ in 0..20_000 {
            let raw = random_path(&mut rng);
            if canonicalize(&raw).is_ok() {
                continue;
            }
            refused += 1;
            let respelled = raw.replacen('a', "%61", 1).replacen('z', "%7A", 1);
            assert!(canonicalize(&respelled).is_err(), "{raw} vs {respelled}");
        }
        assert!(refused > 2_000, "{refused}");
    }
}
