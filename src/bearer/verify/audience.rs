//! Canonical resource URIs for the `aud` check (RFC 8707, MCP authorization): a token whose
//! `aud` differs from the resource only by an uppercase scheme or host, or by a trailing
//! slash, names the same resource.
//!
//! The exact forms (configured and canonical) go to jsonwebtoken once at build time, so a
//! token that matches byte for byte costs nothing extra; only a token whose `aud` fails that
//! exact match is decoded again without the audience check and compared in canonical form.

use jsonwebtoken::errors::{Error, ErrorKind};
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::{Map, Value};

/// `HTTPS://MCP.Example.com/mcp/` → `https://mcp.example.com/mcp`: scheme and host (the
/// authority) lowercased, the default port dropped, trailing slashes of the path dropped.
/// Anything that is not `scheme://authority…` is returned unchanged.
pub(crate) fn canonical_resource(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let scheme = scheme.to_ascii_lowercase();
    let mut authority = authority.to_ascii_lowercase();
    let default = match scheme.as_str() {
        "https" => Some(":443"),
        "http" => Some(":80"),
        _ => None,
    };
    if let Some(port) = default {
        if authority.ends_with(port) {
            authority.truncate(authority.len() - port.len());
        }
    }
    let path_end = tail.find(['?', '#']).unwrap_or(tail.len());
    let (path, suffix) = tail.split_at(path_end);
    format!(
        "{scheme}://{authority}{}{suffix}",
        path.trim_end_matches('/')
    )
}

/// The configured audiences with their canonical forms added (deduplicated): the exact
/// list handed to jsonwebtoken.
pub(crate) fn exact_list(configured: &[String]) -> Vec<String> {
    let mut out = configured.to_vec();
    for a in configured {
        let c = canonical_resource(a);
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

/// The canonical forms of the configured audiences.
pub(crate) fn canonical_list(configured: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(configured.len());
    for a in configured {
        let c = canonical_resource(a);
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

/// `strict` without the audience check (presence of `aud` stays required).
pub(crate) fn relaxed(strict: &Validation) -> Validation {
    let mut v = strict.clone();
    v.validate_aud = false;
    v.aud = None;
    v
}

/// Whether `aud` (a string or an array) names one of `canonical` once canonicalized.
pub(crate) fn aud_matches(claims: &Map<String, Value>, canonical: &[String]) -> bool {
    let one = |v: &Value| {
        v.as_str()
            .is_some_and(|a| canonical.iter().any(|c| *c == canonical_resource(a)))
    };
    match claims.get("aud") {
        Some(Value::Array(items)) => items.iter().any(one),
        Some(single) => one(single),
        None => false,
    }
}

/// Decodes with `strict`; a token refused only for its audience is decoded with `relaxed`
/// and accepted if its `aud` names a configured audience in canonical form.
pub(crate) fn decode(
    token: &str,
    key: &DecodingKey,
    strict: &Validation,
    fallback: Option<&(Validation, Vec<String>)>,
) -> Result<Map<String, Value>, Error> {
    match jsonwebtoken::decode::<Map<String, Value>>(token, key, strict) {
        Ok(data) => Ok(data.claims),
        Err(e) if matches!(e.kind(), ErrorKind::InvalidAudience) => {
            let Some((relaxed, canonical)) = fallback else {
                return Err(e);
            };
            let claims = jsonwebtoken::decode::<Map<String, Value>>(token, key, relaxed)?.claims;
            if aud_matches(&claims, canonical) {
                Ok(claims)
            } else {
                Err(e)
            }
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() {
        for (input, want) in [
            ("https://mcp.example.com/mcp", "https://mcp.example.com/mcp"),
            (
                "HTTPS://MCP.Example.COM/mcp/",
                "https://mcp.example.com/mcp",
            ),
            (
                "https://mcp.example.com:443/mcp",
                "https://mcp.example.com/mcp",
            ),
            ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
            ("https://h/Path/", "https://h/Path"),
            ("https://h/a/?q=1", "https://h/a?q=1"),
            ("urn:example:mcp", "urn:example:mcp"),
        ] {
            assert_eq!(canonical_resource(input), want, "{input}");
        }
    }

    #[test]
    fn aud_forms() {
        let canon = canonical_list(&["https://mcp.example.com/mcp".into()]);
        let m = |v: Value| {
            let mut c = Map::new();
            c.insert("aud".into(), v);
            aud_matches(&c, &canon)
        };
        assert!(m("HTTPS://MCP.EXAMPLE.COM/mcp/".into()));
        assert!(m(serde_json::json!([
            "other",
            "https://mcp.example.com/mcp/"
        ])));
        assert!(
            !m("https://mcp.example.com/MCP".into()),
            "the path stays case-sensitive"
        );
        assert!(!m("https://mcp.example.com/mcp2".into()));
        assert!(!m(serde_json::json!(1)));
    }
}
