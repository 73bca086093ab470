//! [`RateLimitKey`]: what a quota is counted per.

use std::fmt;
use std::sync::Arc;

use http::request::Parts;

use crate::identity::Identity;

use super::client_ip::ClientIpResolver;
use super::store_key::StoreKey;

type CustomKey = Arc<dyn Fn(&Parts) -> Option<String> + Send + Sync>;

/// What a [`RateLimitLayer`](crate::rate_limit::RateLimitLayer) quota is counted per.
///
/// Requests for which the key is `None` (for example an open endpoint, where no
/// [`Identity`] was decided) are not limited and get no `RateLimit-*` headers.
///
/// ```
/// use tower_mcp_auth::rate_limit::RateLimitKey;
///
/// let per_tenant = RateLimitKey::custom(|parts| {
///     parts.headers.get("x-tenant").and_then(|v| v.to_str().ok()).map(str::to_owned)
/// });
/// # let _ = per_tenant;
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub enum RateLimitKey {
    /// Per credential: the API key's name, or the token's subject (with its issuer).
    Identity,
    /// Per user: (issuer, user id), so `sub=42` of two identity providers, or a token `sub`
    /// and an API key `userId` of the same value, are counted apart. Falls back to the
    /// credential for public keys.
    User,
    /// Per role (identities without a role share one bucket).
    Role,
    /// Per request path.
    Endpoint,
    /// Per client IP (IPv6 grouped by prefix).
    ClientIp(ClientIpResolver),
    /// Per whatever the closure returns.
    Custom(CustomKey),
}

impl RateLimitKey {
    /// A key computed from the request.
    pub fn custom<F>(f: F) -> Self
    where
        F: Fn(&Parts) -> Option<String> + Send + Sync + 'static,
    {
        RateLimitKey::Custom(Arc::new(f))
    }

    /// The store key for this request, namespaced by kind (`rl:user:alice`). Built on the
    /// stack ([`StoreKey`]) with no formatting machinery: this runs on every limited request.
    ///
    /// Users and token subjects are namespaced by issuer: a local user (API keys, tokens
    /// without `iss`) is `rl:user:<id>`, a token subject `rl:sub:<issuer length>:<issuer>:<id>`
    /// (the length makes the split unambiguous whatever the issuer contains).
    pub(crate) fn key_for(&self, parts: &Parts) -> Option<StoreKey> {
        let identity = || parts.extensions.get::<Identity>();
        let credential = |id: &Identity| {
            let mut key = StoreKey::concat(&["rl:cred:", id.method().as_str(), ":"]);
            if let Some(iss) = id.issuer() {
                push_issuer(&mut key, iss);
            }
            key.push_str(id.name());
            key
        };
        match self {
            RateLimitKey::Identity => identity().map(credential),
            RateLimitKey::User => {
                let id = identity()?;
                Some(match (id.issuer(), id.user_id()) {
                    (None, Some(user)) => StoreKey::concat(&["rl:user:", user]),
                    (Some(iss), Some(user)) => {
                        let mut key = StoreKey::concat(&["rl:sub:"]);
                        push_issuer(&mut key, iss);
                        key.push_str(user);
                        key
                    }
                    (_, None) => credential(id),
                })
            }
            RateLimitKey::Role => {
                let id = identity()?;
                Some(StoreKey::concat(&["rl:role:", id.role().unwrap_or("")]))
            }
            RateLimitKey::Endpoint => Some(StoreKey::concat(&["rl:path:", parts.uri.path()])),
            RateLimitKey::ClientIp(resolver) => {
                let ip = resolver.resolve(&parts.headers, &parts.extensions)?;
                Some(resolver.store_key("rl:ip:", ip))
            }
            RateLimitKey::Custom(f) => f(parts).map(|k| StoreKey::concat(&["rl:custom:", &k])),
        }
    }
}

/// `<issuer length>:<issuer>:`, the unambiguous issuer namespace of a key.
fn push_issuer(key: &mut StoreKey, issuer: &str) {
    key.push_decimal(issuer.len() as u64);
    key.push_str(":");
    key.push_str(issuer);
    key.push_str(":");
}

impl fmt::Debug for RateLimitKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RateLimitKey::Identity => f.write_str("Identity"),
            RateLimitKey::User => f.write_str("User"),
            RateLimitKey::Role => f.write_str("Role"),
            RateLimitKey::Endpoint => f.write_str("Endpoint"),
            RateLimitKey::ClientIp(r) => f.debug_tuple("ClientIp").field(r).finish(),
            RateLimitKey::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use http::Request;

    use super::*;
    use crate::identity::AuthMethod;
    use crate::rate_limit::ClientAddr;

    fn parts(identity: Option<Identity>) -> Parts {
        let mut req = Request::post("/users/alice/mcp").body(()).unwrap();
        if let Some(identity) = identity {
            req.extensions_mut().insert(identity);
        }
        req.extensions_mut()
            .insert(ClientAddr(SocketAddr::from(([192, 0, 2, 7], 4000))));
        req.into_parts().0
    }

    #[test]
    fn keys_are_namespaced_by_kind() {
        let alice = Identity::builder(AuthMethod::ApiKey, "laptop")
            .user_id("alice")
            .role("admin")
            .build();
        let public = Identity::builder(AuthMethod::Bearer, "svc").build();
        let with = |key: RateLimitKey, id: &Identity| key.key_for(&parts(Some(id.clone())));
        assert_eq!(
            with(RateLimitKey::Identity, &alice).as_deref(),
            Some("rl:cred:api_key:laptop")
        );
        assert_eq!(
            with(RateLimitKey::User, &alice).as_deref(),
            Some("rl:user:alice")
        );
        assert_eq!(
            with(RateLimitKey::User, &public).as_deref(),
            Some("rl:cred:bearer:svc")
        );
        assert_eq!(
            with(RateLimitKey::Role, &alice).as_deref(),
            Some("rl:role:admin")
        );
        assert_eq!(
            with(RateLimitKey::Role, &public).as_deref(),
            Some("rl:role:")
        );
        assert_eq!(
            RateLimitKey::Endpoint.key_for(&parts(None)).as_deref(),
            Some("rl:path:/users/alice/mcp")
        );
        assert_eq!(
            RateLimitKey::ClientIp(ClientIpResolver::new())
                .key_for(&parts(None))
                .as_deref(),
            Some("rl:ip:192.0.2.7")
        );
        let tenant = RateLimitKey::custom(|p| Some(p.method.as_str().to_owned()));
        assert_eq!(
            tenant.key_for(&parts(None)).as_deref(),
            Some("rl:custom:POST")
        );
    }

    #[test]
    fn users_are_namespaced_by_issuer() {
        let sub = |iss: &str| {
            Identity::builder(AuthMethod::Bearer, "42")
                .issuer(iss)
                .user_id("42")
                .build()
        };
        let key = |k: RateLimitKey, id: Identity| {
            k.key_for(&parts(Some(id))).unwrap().as_str().to_owned()
        };
        assert_eq!(
            key(RateLimitKey::User, sub("https://a")),
            "rl:sub:9:https://a:42"
        );
        assert_ne!(
            key(RateLimitKey::User, sub("https://a")),
            key(RateLimitKey::User, sub("https://b"))
        );
        // Issuer and subject cannot be shifted into each other.
        let tricky = Identity::builder(AuthMethod::Bearer, "b:42")
            .issuer("a")
            .user_id("b:42")
            .build();
        assert_ne!(
            key(RateLimitKey::User, tricky),
            key(RateLimitKey::User, sub("a:b"))
        );
        assert_eq!(
            key(RateLimitKey::Identity, sub("https://a")),
            "rl:cred:bearer:9:https://a:42"
        );
    }

    #[test]
    fn identity_keys_need_an_identity() {
        for key in [
            RateLimitKey::Identity,
            RateLimitKey::User,
            RateLimitKey::Role,
        ] {
            assert!(key.key_for(&parts(None)).is_none());
        }
    }
}
