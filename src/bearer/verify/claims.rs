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
/// - `iss` is the [issuer](Identity::issuer): the user is (`iss`, `sub`), never `sub` alone.
///   A token without `iss` is in the local namespace, the one of API keys.
/// - [Scopes](Identity::scopes) come from `scope` (RFC 9068: space-separated string; absent
///   means none) or `scp` (string or array, as some identity providers send). They are not
///   permissions: they match literally (see [`ScopeMap`](crate::ScopeMap) for what they
///   grant).
/// - `role` (string) is the role; `exp` the expiry, read as the JWT validator reads it (a
///   non-negative number, integer or not; rounded down here, so a cached identity never
///   outlives the token). All claims are kept.
///
/// ```
/// use tower_mcp_auth::bearer::identity_from_claims;
///
/// let claims = serde_json::json!({"iss": "https://idp", "sub": "alice",
///     "scope": "tools:read tools:call", "exp": 2000000000.5});
/// let id = identity_from_claims(claims.as_object().unwrap().clone());
/// assert_eq!((id.issuer(), id.user_id()), (Some("https://idp"), Some("alice")));
/// assert!(id.has_permission("tools:call"));
/// assert!(id.expires_at().is_some());
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
    if let Some(iss) = claims.get("iss").and_then(Value::as_str) {
        builder = builder.issuer(iss);
    }
    if let Some(role) = claims.get("role").and_then(Value::as_str) {
        builder = builder.role(role);
    }
    let scopes = claims.get("scope").or_else(|| claims.get("scp"));
    match scopes {
        Some(Value::String(s)) => builder = builder.scopes(s.split_ascii_whitespace()),
        Some(Value::Array(items)) => {
            builder = builder.scopes(
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .filter(|s| !s.is_empty()),
            )
        }
        _ => {}
    }
    // An `exp` beyond what `SystemTime` can hold (jsonwebtoken accepts any u64) is treated
    // as an unknown expiry, never cached, instead of overflowing (a panic, found by fuzzing).
    let expires_at = claims
        .get("exp")
        .and_then(numeric_date)
        .and_then(|exp| UNIX_EPOCH.checked_add(Duration::from_secs(exp)));
    if let Some(at) = expires_at {
        builder = builder.expires_at(at);
    }
    builder.claims(claims).build()
}

/// A NumericDate (RFC 7519 §2) in whole seconds, rounded down: what jsonwebtoken accepts
/// (a non-negative, finite number, integer or not). `None` for anything else.
pub(crate) fn numeric_date(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0 && *f < u64::MAX as f64)
            .map(|f| f as u64)
    })
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
            id(json!({"sub": "a", "scope": "x  y"})).scopes(),
            ["x", "y"]
        );
        assert_eq!(
            id(json!({"sub": "a", "scp": ["x", 1, "y", ""]})).scopes(),
            ["x", "y"]
        );
        assert!(id(json!({"sub": "a"})).scopes().is_empty());
        assert!(
            id(json!({"sub": "a", "scope": "x"}))
                .permissions()
                .is_empty(),
            "scopes are not permissions"
        );
    }

    #[test]
    fn float_exp_is_an_expiry() {
        for exp in [
            json!(1_700_000_000.7),
            json!(1.7e9),
            json!(1_700_000_000u64),
        ] {
            let at = id(json!({"sub": "a", "exp": exp})).expires_at();
            let secs = at.unwrap().duration_since(UNIX_EPOCH).unwrap().as_secs();
            assert_eq!(secs, 1_700_000_000, "{exp}");
        }
        for exp in [json!(-1), json!("1700000000"), json!(null), json!(1e300)] {
            assert_eq!(id(json!({"sub": "a", "exp": exp})).expires_at(), None);
        }
    }

    #[test]
    fn exp_beyond_system_time_is_an_unknown_expiry_not_a_panic() {
        // Found by the `jwt` fuzz target: `UNIX_EPOCH + u64::MAX s` overflowed and panicked.
        for exp in [json!(u64::MAX), json!(1.8e19)] {
            assert_eq!(
                id(json!({"sub": "a", "exp": exp})).expires_at(),
                None,
                "{exp}"
            );
        }
    }

    #[test]
    fn issuer_namespaces_the_user() {
        let i = id(json!({"iss": "https://a", "sub": "42"}));
        assert_eq!((i.issuer(), i.user_id()), (Some("https://a"), Some("42")));
        assert_eq!(id(json!({"sub": "42"})).issuer(), None);
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
