//! Mapping token claims to an [`Identity`].

use std::time::{Duration, UNIX_EPOCH};

use serde_json::{Map, Value};

use crate::identity::{AuthMethod, Identity};

/// A `typ` as configured, in the form [`token_type_accepted`] compares: lowercase, without an
/// `application/` prefix (RFC 7515 §4.1.9: `application/at+jwt` is the same type as `at+jwt`).
pub(crate) fn normalize_token_type(typ: &str) -> String {
    short_media_type(typ.trim()).to_ascii_lowercase()
}

/// Whether a token whose header says `typ` is acceptable: anything when `accepted` is empty
/// (no requirement), else one of them (normalized). Runs per request: no allocation.
pub(crate) fn token_type_accepted(accepted: &[String], typ: Option<&str>) -> bool {
    if accepted.is_empty() {
        return true;
    }
    let Some(typ) = typ else {
        return false;
    };
    let typ = short_media_type(typ.trim());
    accepted.iter().any(|a| a.eq_ignore_ascii_case(typ))
}

/// `typ` without a case-insensitive `application/` prefix, if what follows has no `/`.
fn short_media_type(typ: &str) -> &str {
    const PREFIX: &str = "application/";
    match typ.get(..PREFIX.len()) {
        Some(head) if head.eq_ignore_ascii_case(PREFIX) && !typ[PREFIX.len()..].contains('/') => {
            &typ[PREFIX.len()..]
        }
        _ => typ,
    }
}

/// Builds the [`Identity`] of a verified token from its claims.
///
/// - `sub` is the user id and the name; without `sub`, `client_id` names a client-credentials
///   token, which then has no user.
/// - Scopes come from `scope` (RFC 9068: space-separated string; absent means none) or
///   `scp` (string or array, as some identity providers send).
/// - `role` (string) is the role; `exp` the expiry. All claims are kept.
///
/// ```
/// use tower_mcp_auth::identity_from_claims;
///
/// let claims = serde_json::json!({"sub": "alice", "scope": "tools:read tools:call", "exp": 2000000000});
/// let id = identity_from_claims(claims.as_object().unwrap().clone());
/// assert_eq!(id.user_id(), Some("alice"));
/// assert!(id.has_permission("tools:call"));
/// ```
pub fn identity_from_claims(claims: Map<String, Value>) -> Identity {
    let sub = claims.get("sub").and_then(Value::as_str);
    let name = sub
        .or_else(|| claims.get("client_id").and_then(Value::as_str))
        .unwrap_or("");
    let mut builder = Identity::builder(AuthMethod::Bearer, name);
    if let Some(sub) = sub {
        builder = builder.user_id(sub);
    }
    if let Some(role) = claims.get("role").and_then(Value::as_str) {
        builder = builder.role(role);
    }
    let scopes = claims.get("scope").or_else(|| claims.get("scp"));
    match scopes {
        Some(Value::String(s)) => builder = builder.permissions(s.split_ascii_whitespace()),
        Some(Value::Array(items)) => {
            builder = builder.permissions(items.iter().filter_map(Value::as_str))
        }
        _ => {}
    }
    if let Some(exp) = claims.get("exp").and_then(Value::as_u64) {
        builder = builder.expires_at(UNIX_EPOCH + Duration::from_secs(exp));
    }
    builder.claims(claims).build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn id(v: Value) -> Identity {
        identity_from_claims(v.as_object().unwrap().clone())
    }

    #[test]
    fn scope_forms() {
        assert_eq!(
            id(json!({"sub": "a", "scope": "x  y"})).permissions(),
            ["x", "y"]
        );
        assert_eq!(
            id(json!({"sub": "a", "scp": ["x", 1, "y"]})).permissions(),
            ["x", "y"]
        );
        assert!(id(json!({"sub": "a"})).permissions().is_empty());
    }

    #[test]
    fn token_types_compare_as_media_types() {
        let at = [normalize_token_type(" Application/AT+JWT ")];
        assert_eq!(at[0], "at+jwt");
        for typ in [
            "at+jwt",
            "AT+JWT",
            "application/at+jwt",
            "APPLICATION/At+Jwt",
        ] {
            assert!(token_type_accepted(&at, Some(typ)), "{typ}");
        }
        for typ in [
            Some("JWT"),
            Some("application/x/at+jwt"),
            Some("app/at+jwt"),
            None,
        ] {
            assert!(!token_type_accepted(&at, typ), "{typ:?}");
        }
        assert!(token_type_accepted(&[], None), "no requirement");
    }

    #[test]
    fn client_credentials_token_has_no_user() {
        let i = id(json!({"client_id": "svc", "role": "bot"}));
        assert_eq!(i.name(), "svc");
        assert_eq!(i.user_id(), None);
        assert_eq!(i.role(), Some("bot"));
    }
}
