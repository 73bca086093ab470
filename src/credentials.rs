//! Reading credentials from a request: the one place that knows where they live.
//!
//! API keys come from the `X-API-Key` header, then (if enabled) the `api_key` / `apikey`
//! query parameters. Bearer tokens come only from `Authorization: Bearer` (scheme
//! case-insensitive), then, when configured, from a session cookie; never from the query
//! string. Which of these are read is one [`CredentialSources`] value shared by every layer.
//!
//! A request is parsed once into a [`Parsed`] record of *where* each credential sits (byte
//! spans into the header values, never a copy of a secret); inside an
//! [`McpAuth`](crate::McpAuth) stack the outermost layer that needs it stores the record in
//! the request extensions and the inner layers reuse it. Every reader borrows from the
//! request and allocates only when a query value is percent-encoded.

use std::borrow::Cow;
use std::sync::Arc;

use http::header::{HeaderMap, HeaderName, AUTHORIZATION, COOKIE};
use http::{Request, Uri};

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

/// Where credentials are read from: whether API keys may come from the query string, and the
/// session cookie that may carry a bearer token. Configure it once and hand the same value
/// to every layer ([`McpAuthBuilder::credential_sources`](crate::McpAuthBuilder::credential_sources)
/// does this for the whole stack), so the lockout counts exactly what the authenticators
/// read and the error bodies name exactly what is accepted.
///
/// ```
/// use tower_mcp_auth::{
///     api_key::ApiKeyLayer, policy::EndpointPolicyLayer, ApiKeyRegistry, CredentialSources,
///     EndpointPolicy,
/// };
///
/// let sources = CredentialSources::new().query_param(false);
/// assert!(!sources.query_param_enabled());
/// let keys = ApiKeyLayer::new(ApiKeyRegistry::builder().build()).credential_sources(sources.clone());
/// let policy = EndpointPolicyLayer::builder(EndpointPolicy::api_key_only())
///     .credential_sources(&sources)
///     .build()
///     .unwrap();
/// # let _ = (keys, policy);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct CredentialSources {
    query: bool,
    cookie: Option<Arc<str>>,
}

impl Default for CredentialSources {
    fn default() -> Self {
        Self::new()
    }
}

impl CredentialSources {
    /// The defaults: the `X-API-Key` header and the `api_key` / `apikey` query parameters,
    /// `Authorization: Bearer`, no session cookie.
    pub fn new() -> Self {
        Self {
            query: true,
            cookie: None,
        }
    }

    /// Whether API keys may come from the `api_key` / `apikey` query parameters (default
    /// `true`). Query strings end up in access logs; turn this off when clients can send
    /// headers.
    pub fn query_param(mut self, enabled: bool) -> Self {
        self.query = enabled;
        self
    }

    /// Also reads bearer tokens from the cookie `name` when no `Authorization: Bearer` is
    /// sent; see [`BearerLayer::session_cookie`](crate::bearer::BearerLayer::session_cookie).
    pub fn session_cookie(mut self, name: impl Into<String>) -> Self {
        self.cookie = Some(name.into().into());
        self
    }

    /// Whether the query parameters are read.
    pub fn query_param_enabled(&self) -> bool {
        self.query
    }

    /// The session cookie read for bearer tokens, if any.
    pub fn session_cookie_name(&self) -> Option<&str> {
        self.cookie.as_deref()
    }
}

/// How a layer gets the [`Parsed`] record of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Parse {
    /// A standalone layer: parse, keep nothing.
    Own,
    /// The outermost credential reader of an [`McpAuth`](crate::McpAuth) stack: parse and
    /// store the record for the layers inside (replacing any record of an outer stack).
    Share,
    /// Inside a stack: reuse the stored record (parse if there is none).
    Reuse,
}

/// Which credentials a layer reads: a standalone authenticator parses only its own kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Want {
    ApiKey,
    Bearer,
    All,
}

/// Bytes `start..end` of the `index`-th value of one header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    index: u32,
    start: u32,
    end: u32,
}

impl Span {
    fn of(index: usize, value: &[u8], part: &[u8]) -> Self {
        // `part` is a sub-slice of `value`: its offset is a pointer difference.
        let start = part.as_ptr() as usize - value.as_ptr() as usize;
        Self {
            index: index as u32,
            start: start as u32,
            end: (start + part.len()) as u32,
        }
    }

    fn resolve<'a>(self, headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
        let value = headers.get_all(name).iter().nth(self.index as usize)?;
        let bytes = value
            .as_bytes()
            .get(self.start as usize..self.end as usize)?;
        std::str::from_utf8(bytes).ok()
    }
}

/// Where one credential was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum At {
    Absent,
    Malformed,
    Header(Span),
    /// In the query string (rare: re-read from the URI when needed, it may need decoding).
    Query,
}

/// Where a request's credentials are, parsed once (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Parsed {
    api_key: At,
    bearer: At,
    /// Read only when a session cookie is configured and no bearer header was sent.
    cookies: [Span; MAX_SESSION_COOKIES],
    cookies_len: u8,
    cookies_malformed: bool,
}

impl Parsed {
    /// Reads every credential `sources` allows from `headers` and `uri`.
    pub(crate) fn of(headers: &HeaderMap, uri: &Uri, sources: &CredentialSources) -> Self {
        Self::only(headers, uri, sources, Want::All)
    }

    /// Reads the credentials of kind `want` (the others are left absent).
    fn only(headers: &HeaderMap, uri: &Uri, sources: &CredentialSources, want: Want) -> Self {
        let api_key = match want {
            Want::Bearer => At::Absent,
            _ => api_key_at(headers, uri, sources.query),
        };
        let bearer = match want {
            Want::ApiKey => At::Absent,
            _ => bearer_at(headers),
        };
        let mut parsed = Self {
            api_key,
            bearer,
            cookies: [Span {
                index: 0,
                start: 0,
                end: 0,
            }; MAX_SESSION_COOKIES],
            cookies_len: 0,
            cookies_malformed: false,
        };
        if let (At::Absent, Some(name), false) = (
            parsed.bearer,
            sources.cookie.as_deref(),
            want == Want::ApiKey,
        ) {
            parsed.read_cookies(headers, name);
        }
        parsed
    }

    /// The record for `req` as `mode` says: parsed here (only what `want` names, unless it
    /// is to be shared), stored, or reused.
    pub(crate) fn get<B>(
        req: &mut Request<B>,
        sources: &CredentialSources,
        mode: Parse,
        want: Want,
    ) -> Self {
        match mode {
            Parse::Reuse => match req.extensions().get::<Parsed>() {
                Some(parsed) => *parsed,
                None => Self::of(req.headers(), req.uri(), sources),
            },
            Parse::Own => Self::only(req.headers(), req.uri(), sources, want),
            Parse::Share => {
                let parsed = Self::of(req.headers(), req.uri(), sources);
                req.extensions_mut().insert(parsed);
                parsed
            }
        }
    }

    /// Whether any credential was sent: an API key or bearer token (even malformed), or a
    /// well-formed session cookie (a garbage cookie planted by a sibling subdomain cannot be
    /// cleared by the user, so it must not count as an attempt).
    pub(crate) fn any_presented(&self) -> bool {
        self.api_key != At::Absent || self.bearer != At::Absent || self.cookies_len > 0
    }

    /// The API key.
    pub(crate) fn api_key<'a>(&self, headers: &'a HeaderMap, uri: &'a Uri) -> Presented<'a> {
        match self.api_key {
            At::Absent => Presented::Absent,
            At::Malformed => Presented::Malformed,
            At::Header(span) => span
                .resolve(headers, &API_KEY_HEADER)
                .map_or(Presented::Malformed, |k| Presented::Value(Cow::Borrowed(k))),
            At::Query => uri.query().map_or(Presented::Absent, api_key_from_query),
        }
    }

    /// The bearer token from `Authorization`.
    pub(crate) fn bearer<'a>(&self, headers: &'a HeaderMap) -> Presented<'a> {
        match self.bearer {
            At::Absent | At::Query => Presented::Absent,
            At::Malformed => Presented::Malformed,
            At::Header(span) => span
                .resolve(headers, &AUTHORIZATION)
                .map_or(Presented::Malformed, |t| Presented::Value(Cow::Borrowed(t))),
        }
    }

    /// The session-cookie candidates (empty unless a cookie is configured and no bearer
    /// header was sent).
    pub(crate) fn cookies<'a>(&self, headers: &'a HeaderMap) -> SessionCookies<'a> {
        let mut found = SessionCookies {
            values: [""; MAX_SESSION_COOKIES],
            len: 0,
            malformed: self.cookies_malformed,
        };
        for span in &self.cookies[..usize::from(self.cookies_len)] {
            if let Some(token) = span.resolve(headers, &COOKIE) {
                found.values[found.len] = token;
                found.len += 1;
            }
        }
        found
    }

    fn read_cookies(&mut self, headers: &HeaderMap, name: &str) {
        for (index, value) in headers.get_all(COOKIE).iter().enumerate() {
            let bytes = value.as_bytes();
            for pair in bytes.split(|&b| b == b';') {
                let Some(raw) = cookie_value(pair, name) else {
                    continue;
                };
                match std::str::from_utf8(raw) {
                    Ok(token) if is_b64token(token) && token.len() <= MAX_BEARER_LEN => {
                        let len = usize::from(self.cookies_len);
                        let seen = self.cookies[..len]
                            .iter()
                            .any(|s| s.resolve(headers, &COOKIE) == Some(token));
                        if len < MAX_SESSION_COOKIES && !seen {
                            self.cookies[len] = Span::of(index, bytes, raw);
                            self.cookies_len += 1;
                        }
                    }
                    _ => self.cookies_malformed = true,
                }
            }
        }
    }
}

/// Reads the API key: header first, then the query string when `query` is true.
pub(crate) fn api_key<'a>(headers: &'a HeaderMap, uri: &'a Uri, query: bool) -> Presented<'a> {
    api_key_found(headers, uri, query).0
}

/// The API key and, when it came from the header, that header's bytes (for its [`Span`]).
fn api_key_found<'a>(
    headers: &'a HeaderMap,
    uri: &'a Uri,
    query: bool,
) -> (Presented<'a>, Option<&'a [u8]>) {
    let mut values = headers.get_all(&API_KEY_HEADER).iter();
    if let Some(first) = values.next() {
        if values.next().is_some() {
            return (Presented::Malformed, None);
        }
        let raw = first.as_bytes();
        let key = checked_key_bytes(raw).and_then(|k| std::str::from_utf8(k).ok());
        return match key {
            Some(key) => (Presented::Value(Cow::Borrowed(key)), Some(raw)),
            None => (Presented::Malformed, None),
        };
    }
    match uri.query() {
        Some(q) if query => (api_key_from_query(q), None),
        _ => (Presented::Absent, None),
    }
}

fn api_key_at(headers: &HeaderMap, uri: &Uri, query: bool) -> At {
    match api_key_found(headers, uri, query) {
        (Presented::Absent, _) => At::Absent,
        (Presented::Malformed, _) => At::Malformed,
        (Presented::Value(key), Some(raw)) => At::Header(Span::of(0, raw, key.as_bytes())),
        (Presented::Value(_), None) => At::Query,
    }
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
fn checked_key_bytes(raw: &[u8]) -> Option<&[u8]> {
    let trimmed = raw.trim_ascii();
    // A fold instead of `all`: no early exit, so the check vectorizes.
    let graphic = trimmed
        .iter()
        .fold(true, |ok, &b| ok & b.is_ascii_graphic());
    (!trimmed.is_empty() && trimmed.len() <= MAX_API_KEY_LEN && graphic).then_some(trimmed)
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
// The bearer layer reads `bearer_raw` itself (a cache hit comes before the syntax check);
// the authorization server's registration endpoint, token exchange and the fuzz targets
// read this.
#[cfg_attr(
    not(any(feature = "oauth-server", feature = "token-exchange", fuzzing, test)),
    allow(dead_code)
)]
pub(crate) fn bearer(headers: &HeaderMap) -> Presented<'_> {
    match bearer_raw(headers) {
        Ok(Some(raw)) => checked_bearer(raw),
        Ok(None) => Presented::Absent,
        Err(()) => Presented::Malformed,
    }
}

/// The bearer token's bytes, not yet checked to be a `b64token` (see [`checked_bearer`]):
/// one `Authorization: Bearer` header, blanks around the token trimmed, at most
/// [`MAX_BEARER_LEN`] bytes. `Err` when malformed (two Bearer headers, too long).
///
/// For a verifier cache that is asked before the syntax check
/// ([`TokenVerifier::cached`](crate::TokenVerifier::cached)).
pub(crate) fn bearer_raw(headers: &HeaderMap) -> Result<Option<&[u8]>, ()> {
    bearer_value(headers).map(|found| found.map(|(_, _, raw)| raw))
}

/// [`bearer_raw`]'s bytes as a token: [`Presented::Malformed`] unless a `b64token`.
pub(crate) fn checked_bearer(raw: &[u8]) -> Presented<'_> {
    // `b64token` bytes are ASCII, so checking them is also the UTF-8 check.
    match is_b64token_bytes(raw)
        .then(|| std::str::from_utf8(raw).ok())
        .flatten()
    {
        Some(token) => Presented::Value(Cow::Borrowed(token)),
        None => Presented::Malformed,
    }
}

fn bearer_at(headers: &HeaderMap) -> At {
    match bearer_value(headers) {
        Ok(Some((index, value, raw))) => match checked_bearer(raw) {
            Presented::Value(_) => At::Header(Span::of(index, value, raw)),
            _ => At::Malformed,
        },
        Ok(None) => At::Absent,
        Err(()) => At::Malformed,
    }
}

/// The index and bytes of the one Bearer `Authorization` value, with the token's bytes in
/// it (unchecked); `Err` when there are two, or the token is too long.
#[allow(clippy::type_complexity)]
fn bearer_value(headers: &HeaderMap) -> Result<Option<(usize, &[u8], &[u8])>, ()> {
    let mut found = None;
    for (index, value) in headers.get_all(AUTHORIZATION).iter().enumerate() {
        let bytes = value.as_bytes();
        if !is_bearer_scheme(bytes) {
            continue;
        }
        if found.is_some() {
            return Err(());
        }
        let token = trim_spaces(&bytes[6..]);
        if token.len() > MAX_BEARER_LEN {
            return Err(());
        }
        found = Some((index, bytes, token));
    }
    Ok(found)
}

/// Whether an `Authorization` value is of the Bearer scheme. The scheme is case-insensitive
/// (RFC 7235); anything else (`Basic`, `BearerX`) is not ours.
fn is_bearer_scheme(value: &[u8]) -> bool {
    value.len() >= 6
        && value[..6].eq_ignore_ascii_case(b"bearer")
        && (value.len() == 6 || value[6] == b' ')
}

/// Whether any credential was sent, as [`Parsed::any_presented`] of a full parse says, but
/// without checking what was found: presence is all the failed-auth lockout needs (a
/// malformed key or token counts as an attempt too), so the key and token are not
/// validated here a second time. A configured session cookie still needs the full parse:
/// only a well-formed one counts.
pub(crate) fn any_presented(headers: &HeaderMap, uri: &Uri, sources: &CredentialSources) -> bool {
    if sources.cookie.is_some() {
        return Parsed::of(headers, uri, sources).any_presented();
    }
    headers.contains_key(&API_KEY_HEADER)
        || (sources.query
            && uri
                .query()
                .is_some_and(|q| api_key_from_query(q) != Presented::Absent))
        || headers
            .get_all(AUTHORIZATION)
            .iter()
            .any(|v| is_bearer_scheme(v.as_bytes()))
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
#[cfg(test)]
pub(crate) fn cookies<'a>(headers: &'a HeaderMap, name: &str) -> SessionCookies<'a> {
    let uri = Uri::from_static("/");
    Parsed::of(
        headers,
        &uri,
        &CredentialSources::new().session_cookie(name),
    )
    .cookies(headers)
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
pub(crate) fn is_b64token(s: &str) -> bool {
    is_b64token_bytes(s.as_bytes())
}

/// [`is_b64token`] on bytes. Branch-free per byte and folded without an early exit, so it
/// vectorizes: a bearer token is a few hundred bytes read on every request.
fn is_b64token_bytes(s: &[u8]) -> bool {
    let padding = s.iter().rev().take_while(|&&b| b == b'=').count();
    let body = &s[..s.len() - padding];
    !body.is_empty() && body.iter().fold(true, |ok, &b| ok & is_b64token_byte(b))
}

/// `ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/"`, with comparisons only.
#[inline(always)]
fn is_b64token_byte(b: u8) -> bool {
    let letter = (b | 0x20).wrapping_sub(b'a') < 26;
    // 0x2B..=0x39 is `+ , - . / 0-9`: all of them but `,` (one range instead of two).
    let digit_or_symbol = (b.wrapping_sub(b'+') < 15) & (b != b',');
    letter | digit_or_symbol | (b == b'_') | (b == b'~')
}

/// `bytes` without leading and trailing spaces (the separator after `Bearer`).
fn trim_spaces(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != b' ').unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|&b| b != b' ')
        .map_or(start, |i| i + 1);
    &bytes[start..end.max(start)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn b64token_bytes_are_exactly_the_rfc_6750_set() {
        for b in 0..=255u8 {
            let rfc = b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
            assert_eq!(is_b64token_byte(b), rfc, "byte {b:#04x}");
        }
        assert!(is_b64token("a.b-c_d~e+f/g=="));
        assert!(!is_b64token("==") && !is_b64token("") && !is_b64token("a=b"));
        assert_eq!(trim_spaces(b"  ab c  "), b"ab c");
        assert_eq!(trim_spaces(b"   "), b"");
    }

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
    fn presence_alone_agrees_with_the_full_parse() {
        type Headers<'a> = &'a [(&'a str, &'a [u8])];
        let requests: &[(Headers, &str)] = &[
            (&[], "/mcp"),
            (&[("x-api-key", b"k")], "/mcp"),
            (&[("x-api-key", b" ")], "/mcp"),
            (&[("x-api-key", b"a"), ("x-api-key", b"b")], "/mcp"),
            (&[("x-api-key", b"k\xff")], "/mcp"),
            (&[], "/mcp?api_key=k"),
            (&[], "/mcp?apikey="),
            (&[], "/mcp?api_key=a&api_key=b"),
            (&[], "/mcp?other=1"),
            (&[("authorization", b"Bearer t")], "/mcp"),
            (&[("authorization", b"bearer")], "/mcp"),
            (&[("authorization", b"BEARER bad token")], "/mcp"),
            (&[("authorization", b"BearerX t")], "/mcp"),
            (&[("authorization", b"Basic dTpw")], "/mcp"),
            (
                &[
                    ("authorization", b"Basic dTpw"),
                    ("authorization", b"Bearer t"),
                ],
                "/mcp",
            ),
            (&[("cookie", b"session=tok")], "/mcp"),
            (&[("cookie", b"session=bad value; other=1")], "/mcp"),
            (&[("cookie", b"other=1")], "/mcp"),
        ];
        let sources = [
            CredentialSources::new(),
            CredentialSources::new().query_param(false),
            CredentialSources::new().session_cookie("session"),
        ];
        for (pairs, path) in requests {
            let (headers, uri) = (headers(pairs), uri(path));
            for sources in &sources {
                assert_eq!(
                    any_presented(&headers, &uri, sources),
                    Parsed::of(&headers, &uri, sources).any_presented(),
                    "{pairs:?} {path} {sources:?}"
                );
            }
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
