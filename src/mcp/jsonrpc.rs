//! Reading just enough of a JSON-RPC body to authorize it, and writing JSON-RPC error envelopes.
//!
//! Only `method`, `id` and the `name` / `uri` of `params` are extracted; everything else
//! (tool arguments, which can be large) is validated by serde_json but never materialized.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// JSON-RPC `error.code` of a request refused because the credential lacks a permission
/// (HTTP 403 `insufficient_scope`). From the implementation-defined server error range; MCP
/// itself does not use it.
///
/// ```
/// use tower_mcp_auth::mcp::INSUFFICIENT_SCOPE_CODE;
/// # let reply = serde_json::json!({"error": {"code": -32003}});
/// if reply["error"]["code"] == INSUFFICIENT_SCOPE_CODE {
///     // ask the user for a credential with more permissions
/// }
/// ```
pub const INSUFFICIENT_SCOPE_CODE: i64 = -32003;
/// JSON-RPC `error.code` of a request refused by a per-tool quota (HTTP 429
/// `too_many_requests`, see [`ToolQuotas`](crate::rate_limit::ToolQuotas)). From the
/// implementation-defined server error range; MCP itself does not use it.
///
/// ```
/// use tower_mcp_auth::mcp::TOO_MANY_REQUESTS_CODE;
/// # let reply = serde_json::json!({"error": {"code": -32029, "data": {"retry_after": 6}}});
/// if reply["error"]["code"] == TOO_MANY_REQUESTS_CODE {
///     let wait = reply["error"]["data"]["retry_after"].as_u64();
///     # let _ = wait;
/// }
/// ```
pub const TOO_MANY_REQUESTS_CODE: i64 = -32029;
/// JSON-RPC "Parse error" (HTTP 400): the body is not JSON.
///
/// ```
/// assert_eq!(tower_mcp_auth::mcp::PARSE_ERROR_CODE, -32700);
/// ```
pub const PARSE_ERROR_CODE: i64 = -32700;
/// JSON-RPC "Invalid Request": JSON but not a JSON-RPC message (HTTP 400), or a body over the
/// size limit (HTTP 413).
///
/// ```
/// assert_eq!(tower_mcp_auth::mcp::INVALID_REQUEST_CODE, -32600);
/// ```
pub const INVALID_REQUEST_CODE: i64 = -32600;
/// JSON-RPC "Internal error": a `tools/list` response that could not be filtered (HTTP 500,
/// or an error event in an event stream) rather than passed on unfiltered.
///
/// ```
/// assert_eq!(tower_mcp_auth::mcp::INTERNAL_ERROR_CODE, -32603);
/// ```
pub const INTERNAL_ERROR_CODE: i64 = -32603;

/// JSON-RPC `error.code` of a request whose `Mcp-Method` / `Mcp-Name` headers (MCP
/// 2026-07-28) are malformed or disagree with its body (HTTP 400).
///
/// ```
/// assert_eq!(tower_mcp_auth::mcp::HEADER_MISMATCH_CODE, -32020);
/// ```
pub const HEADER_MISMATCH_CODE: i64 = -32020;

/// One message of a request body, as far as authorization cares.
#[derive(Debug, PartialEq)]
pub(crate) struct Call<'a> {
    /// `None` for responses (the client answering a server request).
    pub(crate) method: Option<Cow<'a, str>>,
    /// `None` for notifications; `Some(Value::Null)` for an explicit `"id": null`.
    pub(crate) id: Option<Value>,
    /// `params.name` or `params.uri`, for the methods that address one named object.
    pub(crate) target: Option<Cow<'a, str>>,
}

impl Call<'_> {
    /// `(method, id, target)` of a request. A request expects a response: it has both a
    /// method and an id. Notifications and responses are never checked (there is nobody to
    /// send an error to).
    #[cfg(test)]
    pub(crate) fn as_request(&self) -> Option<(&str, &Value, Option<&str>)> {
        match (self.method.as_deref(), &self.id) {
            (Some(method), Some(id)) => Some((method, id, self.target.as_deref())),
            _ => None,
        }
    }

    /// `(method, id, target)` of every message a JSON-RPC server would act on: requests and
    /// notifications alike (servers execute notifications too). Only MCP notifications
    /// (`notifications/...` without an id) and responses (no method) are not checked.
    pub(crate) fn as_checked(&self) -> Option<(&str, Option<&Value>, Option<&str>)> {
        let method = self.method.as_deref()?;
        if self.id.is_none() && method.starts_with("notifications/") {
            return None;
        }
        Some((method, self.id.as_ref(), self.target.as_deref()))
    }

    #[cfg(test)]
    fn is_request(&self) -> bool {
        self.as_request().is_some()
    }
}

/// Whether a resource URI is in the one form its permission prefix can be trusted on: no
/// dot segment (`.`, `..`), no backslash, and no percent-encoded `.`, `/`, `\`, `%` or NUL
/// (`%2e`, `%2f`, `%5c`, `%25`, `%00`, either case), which a server could decode into one.
/// A URI that fails this is authorized as the bare method (`resources/read`), so a prefix
/// grant such as `resources/read:file:///srv/docs/*` never covers `file:///srv/docs/../x`.
pub(crate) fn is_canonical_uri(uri: &str) -> bool {
    if uri.contains('\\') {
        return false;
    }
    let bytes = uri.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3).unwrap_or(b"");
            let encoded = |pair: &[u8]| hex.eq_ignore_ascii_case(pair);
            if encoded(b"2e")
                || encoded(b"2f")
                || encoded(b"5c")
                || encoded(b"25")
                || encoded(b"00")
            {
                return false;
            }
        }
    }
    !uri.split(['/', '?', '#'])
        .any(|segment| segment == "." || segment == "..")
}

/// The `Mcp-Name` value, decoded from the `=?base64?…?=` form (standard alphabet, UTF-8)
/// that MCP 2026-07-28 clients use for values that cannot be a plain header value.
fn decode_name_header(raw: &str) -> Option<Cow<'_, str>> {
    use base64::Engine as _;
    match raw
        .strip_prefix("=?base64?")
        .and_then(|inner| inner.strip_suffix("?="))
    {
        Some(inner) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(inner)
                .ok()?;
            String::from_utf8(bytes).ok().map(Cow::Owned)
        }
        None => Some(Cow::Borrowed(raw)),
    }
}

/// The one value of a singleton header, `Err` when repeated or not visible ASCII.
fn header_value<'h>(headers: &'h http::HeaderMap, name: &str) -> Result<Option<&'h str>, String> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(format!("duplicate {name} header"));
    }
    value
        .to_str()
        .map(Some)
        .map_err(|_| format!("{name} header has characters outside visible ASCII"))
}

/// Checks the MCP 2026-07-28 `Mcp-Method` / `Mcp-Name` headers against the parsed body.
/// Absent headers (2025-11-25 clients) check nothing. When either is present, the body must
/// be one message (the headers mirror a single message; a batch cannot match them), its
/// method equal to `Mcp-Method`, and, for the methods that address one object, its
/// `params.name` / `params.uri` equal to the decoded `Mcp-Name` (required then); a method
/// without a target must not come with an `Mcp-Name`.
pub(crate) fn check_headers(headers: &http::HeaderMap, parsed: &Parsed<'_>) -> Result<(), String> {
    let method_header = header_value(headers, "mcp-method")?;
    let name_header = header_value(headers, "mcp-name")?;
    if method_header.is_none() && name_header.is_none() {
        return Ok(());
    }
    let [call] = &parsed.calls[..] else {
        return Err("Mcp-Method and Mcp-Name describe one message, not a batch".to_owned());
    };
    if parsed.batch {
        return Err("Mcp-Method and Mcp-Name describe one message, not a batch".to_owned());
    }
    let Some(method) = call.method.as_deref() else {
        // A response: it has no method to mirror.
        return Ok(());
    };
    match method_header {
        None => return Err("missing Mcp-Method header next to Mcp-Name".to_owned()),
        Some(value) if value != method => {
            return Err(format!(
                "Mcp-Method header {value:?} does not match the body's method {method:?}"
            ))
        }
        Some(_) => {}
    }
    match (target_field(method), call.target.as_deref(), name_header) {
        (None, _, None) => Ok(()),
        (None, _, Some(_)) => Err(format!("unexpected Mcp-Name header for {method:?}")),
        (Some(_), _, None) => Err(format!("missing Mcp-Name header for {method:?}")),
        (Some(_), body, Some(raw)) => {
            let decoded = decode_name_header(raw)
                .ok_or_else(|| "Mcp-Name header is not valid base64 UTF-8".to_owned())?;
            if body == Some(&*decoded) {
                Ok(())
            } else {
                Err(format!(
                    "Mcp-Name header {decoded:?} does not match the body's {}",
                    if target_field(method) == Some(TargetField::Name) {
                        "params.name"
                    } else {
                        "params.uri"
                    }
                ))
            }
        }
    }
}

/// A parsed body: one message or a batch.
#[derive(Debug)]
pub(crate) struct Parsed<'a> {
    pub(crate) calls: Vec<Call<'a>>,
    pub(crate) batch: bool,
}

/// Why a body could not be read as JSON-RPC.
#[derive(Debug)]
pub(crate) struct BadMessage {
    pub(crate) code: i64,
    pub(crate) detail: String,
}

/// Parses a request body. A syntax error is a JSON-RPC parse error (-32700); valid JSON that
/// is not a message object (or an array of them) is an invalid request (-32600).
pub(crate) fn parse(body: &[u8]) -> Result<Parsed<'_>, BadMessage> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace()).copied();
    let result = if first == Some(b'[') {
        serde_json::from_slice::<Vec<Object<Message<'_>>>>(body).map(|m| (m, true))
    } else {
        serde_json::from_slice::<Object<Message<'_>>>(body).map(|m| (vec![m], false))
    };
    match result {
        Ok((messages, batch)) => Ok(Parsed {
            calls: messages.into_iter().map(|m| m.0.into_call()).collect(),
            batch,
        }),
        Err(e) => {
            let code = match e.classify() {
                serde_json::error::Category::Data => INVALID_REQUEST_CODE,
                _ => PARSE_ERROR_CODE,
            };
            Err(BadMessage {
                code,
                detail: e.to_string(),
            })
        }
    }
}

/// The methods whose permission names one object: `tools/call:<name>`,
/// `resources/read:<uri>`, ... Every other method is authorized by its name alone.
pub(crate) fn target_field(method: &str) -> Option<TargetField> {
    match method {
        "tools/call" | "prompts/get" => Some(TargetField::Name),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
            Some(TargetField::Uri)
        }
        _ => None,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TargetField {
    Name,
    Uri,
}

/// A struct read only from a JSON object: serde's derive would also accept an array and
/// read its fields by position, which no JSON-RPC server does.
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(std::marker::PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = Object<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON-RPC message object")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Object<T>, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Object)
            }
        }

        d.deserialize_map(ObjectVisitor(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    // `"id": null` is present (a request), a missing id is a notification.
    #[serde(default, deserialize_with = "present")]
    id: Option<Value>,
    #[serde(borrow, default)]
    params: Option<Params<'a>>,
}

impl<'a> Message<'a> {
    fn into_call(self) -> Call<'a> {
        let params = self.params.unwrap_or_default();
        let target = match self.method.as_deref().and_then(target_field) {
            Some(TargetField::Name) => params.name,
            Some(TargetField::Uri) => params.uri,
            None => None,
        };
        Call {
            method: self.method,
            id: self.id,
            target,
        }
    }
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    let id = Value::deserialize(d)?;
    match id {
        Value::Null | Value::String(_) | Value::Number(_) => Ok(Some(id)),
        _ => Err(de::Error::custom(
            "JSON-RPC id must be a string, number or null",
        )),
    }
}

/// `params.name` and `params.uri` when `params` is an object; nothing for by-position params.
#[derive(Default)]
struct Params<'a> {
    name: Option<Cow<'a, str>>,
    uri: Option<Cow<'a, str>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for Params<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ParamsVisitor<'a>(std::marker::PhantomData<&'a ()>);

        impl<'de: 'a, 'a> Visitor<'de> for ParamsVisitor<'a> {
            type Value = Params<'a>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("JSON-RPC params (object or array)")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Params<'a>, A::Error> {
                let mut params = Params::default();
                let (mut seen_name, mut seen_uri) = (false, false);
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    match &*key {
                        // A non-string name or uri is left for the server to reject; the call
                        // is then authorized as the bare method, which is stricter.
                        "name" | "uri" => {
                            let (seen, slot) = if &*key == "name" {
                                (&mut seen_name, &mut params.name)
                            } else {
                                (&mut seen_uri, &mut params.uri)
                            };
                            // Parsers disagree on which duplicate wins; refuse rather than
                            // authorize one tool and let the server run another.
                            if std::mem::replace(seen, true) {
                                return Err(de::Error::custom(format_args!(
                                    "duplicate field `{key}` in params"
                                )));
                            }
                            *slot = map.next_value::<MaybeStr<'a>>()?.0;
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(params)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Params<'a>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Params::default())
            }

            fn visit_unit<E: de::Error>(self) -> Result<Params<'a>, E> {
                Ok(Params::default())
            }
        }

        d.deserialize_any(ParamsVisitor(std::marker::PhantomData))
    }
}

/// A string, or `None` for any other JSON value.
struct MaybeStr<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for MaybeStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct StrVisitor<'a>(std::marker::PhantomData<&'a ()>);

        impl<'de: 'a, 'a> Visitor<'de> for StrVisitor<'a> {
            type Value = MaybeStr<'a>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<MaybeStr<'a>, E> {
                Ok(MaybeStr(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<MaybeStr<'a>, E> {
                Ok(MaybeStr(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<MaybeStr<'a>, E> {
                Ok(MaybeStr(Some(Cow::Owned(v))))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<MaybeStr<'a>, E> {
                Ok(MaybeStr(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<MaybeStr<'a>, E> {
                Ok(MaybeStr(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<MaybeStr<'a>, E> {
                Ok(MaybeStr(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<MaybeStr<'a>, E> {
                Ok(MaybeStr(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<MaybeStr<'a>, E> {
                Ok(MaybeStr(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<MaybeStr<'a>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(MaybeStr(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MaybeStr<'a>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(MaybeStr(None))
            }
        }

        d.deserialize_any(StrVisitor(std::marker::PhantomData))
    }
}

/// A JSON-RPC error response: `{"jsonrpc":"2.0","id":…,"error":{"code","message","data"}}`,
/// its members in that order.
#[derive(Debug, Serialize)]
pub(crate) struct Envelope {
    jsonrpc: &'static str,
    id: Value,
    error: ErrorObject,
}

#[derive(Debug, Serialize)]
struct ErrorObject {
    code: i64,
    message: String,
    data: Value,
}

pub(crate) fn error_envelope(id: Value, code: i64, message: &str, data: Value) -> Envelope {
    Envelope {
        jsonrpc: "2.0",
        id,
        error: ErrorObject {
            code,
            message: message.to_owned(),
            data,
        },
    }
}

/// Serializes an envelope or a batch of them; this cannot fail for these types.
pub(crate) fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_else(|_| br#"{"jsonrpc":"2.0","id":null}"#.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(body: &str) -> Call<'_> {
        let mut p = parse(body.as_bytes()).unwrap();
        assert!(!p.batch);
        p.calls.remove(0)
    }

    #[test]
    fn requests_notifications_and_responses() {
        let c = one(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#);
        assert_eq!(c.method.as_deref(), Some("tools/list"));
        assert_eq!(c.id, Some(json!(1)));
        assert!(c.is_request());

        let c = one(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        assert_eq!(c.id, None);
        assert!(!c.is_request());

        let c = one(r#"{"jsonrpc":"2.0","id":"a","result":{}}"#);
        assert_eq!(c.method, None);
        assert!(!c.is_request());

        // An explicit null id is still a request.
        assert!(one(r#"{"id":null,"method":"ping"}"#).is_request());
    }

    #[test]
    fn targets_per_method() {
        let c = one(
            r#"{"id":1,"method":"tools/call","params":{"arguments":{"x":[1,{"name":"no"}]},"name":"se\u0061rch"}}"#,
        );
        assert_eq!(c.target.as_deref(), Some("search"));
        let c =
            one(r#"{"id":1,"method":"resources/read","params":{"uri":"file:///a","name":"x"}}"#);
        assert_eq!(c.target.as_deref(), Some("file:///a"));
        let c = one(r#"{"id":1,"method":"prompts/get","params":{"name":"p"}}"#);
        assert_eq!(c.target.as_deref(), Some("p"));
        // Other methods are authorized by name alone, even with a params.name.
        let c = one(r#"{"id":1,"method":"tools/list","params":{"name":"x"}}"#);
        assert_eq!(c.target, None);
        // Non-string names, by-position and null params: no target.
        for body in [
            r#"{"id":1,"method":"tools/call","params":{"name":7}}"#,
            r#"{"id":1,"method":"tools/call","params":{"name":{"a":1}}}"#,
            r#"{"id":1,"method":"tools/call","params":["search"]}"#,
            r#"{"id":1,"method":"tools/call","params":null}"#,
            r#"{"id":1,"method":"tools/call"}"#,
        ] {
            assert_eq!(one(body).target, None, "{body}");
        }
    }

    #[test]
    fn canonical_resource_uris() {
        for uri in [
            "docs://intro",
            "file:///srv/docs/a.b/c..d/...",
            "file:///srv/docs/%41%20b",
            "https://h.example/x?q=1#f",
            "docs://trailing%",
            "docs://short%2",
        ] {
            assert!(is_canonical_uri(uri), "{uri}");
        }
        for uri in [
            "file:///srv/docs/../x",
            "file:///srv/docs/..",
            "file:///srv/./docs",
            "file:///srv/docs/%2E%2e/x",
            "file:///srv/docs/%2Fx",
            "file:///srv/docs/%5cx",
            "file:///srv/docs/%252e",
            "file:///srv/docs/%00",
            "file:///srv/docs\\x",
            "docs://a?..",
            "docs://a#..",
        ] {
            assert!(!is_canonical_uri(uri), "{uri}");
        }
    }

    #[test]
    fn batches() {
        let p = parse(br#" [{"id":1,"method":"a"},{"method":"n"},{"id":2,"result":1}]"#).unwrap();
        assert!(p.batch);
        assert_eq!(p.calls.len(), 3);
        assert_eq!(p.calls.iter().filter(|c| c.is_request()).count(), 1);
        assert!(parse(b"[]").unwrap().calls.is_empty());
    }

    #[test]
    fn malformed_bodies() {
        for (body, code) in [
            (&b""[..], PARSE_ERROR_CODE),
            (b"{", PARSE_ERROR_CODE),
            (b"{\"id\":1,\"method\":\"a\"} x", PARSE_ERROR_CODE),
            (b"\xff\xfe", PARSE_ERROR_CODE),
            (b"[{\"id\":1", PARSE_ERROR_CODE),
            (b"42", INVALID_REQUEST_CODE),
            (b"\"tools/list\"", INVALID_REQUEST_CODE),
            (b"[1,2]", INVALID_REQUEST_CODE),
            (b"[[\"tools/call\",1,{\"name\":\"x\"}]]", INVALID_REQUEST_CODE),
            (b"{\"method\":5,\"id\":1}", INVALID_REQUEST_CODE),
            (b"{\"method\":\"a\",\"id\":{}}", INVALID_REQUEST_CODE),
            (b"{\"method\":\"a\",\"id\":[1]}", INVALID_REQUEST_CODE),
            (b"{\"method\":\"a\",\"method\":\"b\",\"id\":1}", INVALID_REQUEST_CODE),
            (
                b"{\"method\":\"tools/call\",\"id\":1,\"params\":{\"name\":\"a\",\"n\\u0061me\":\"b\"}}",
                INVALID_REQUEST_CODE,
            ),
        ] {
            let err = parse(body).unwrap_err();
            assert_eq!(err.code, code, "{:?}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn deep_nesting_is_not_a_stack_overflow() {
        let deep = format!(
            r#"{{"id":1,"method":"tools/call","params":{{"arguments":{}1{}}}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        // Skipped values are not materialized, so depth costs no stack; the server's own
        // parser applies its recursion limit.
        let parsed = parse(deep.as_bytes()).unwrap();
        assert_eq!(parsed.calls[0].target, None);
        let deep_name = format!(
            r#"{{"id":1,"method":"tools/call","params":{{"name":{}1{}}}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(parse(deep_name.as_bytes()).unwrap().calls[0].target, None);
    }
}
