//! [`RateLimitKey`]: what a quota is counted per.

use std::fmt;
use std::sync::Arc;

use http::request::Parts;
use http::{Extensions, HeaderMap, Request, Uri};

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
        self.key_from(&parts.uri, &parts.headers, &parts.extensions)
            .unwrap_or_else(|custom| custom_key(custom, parts))
    }

    /// [`key_for`](Self::key_for) on a whole request, which is taken apart only for a
    /// [`Custom`](RateLimitKey::Custom) key (its closure reads [`Parts`]): every other kind
    /// reads the request in place, without moving its head twice.
    pub(crate) fn key_for_request<B>(&self, req: &mut Request<B>) -> Option<StoreKey> {
        match self.key_from(req.uri(), req.headers(), req.extensions()) {
            Ok(key) => key,
            Err(custom) => {
                // The head is lent to an empty `Parts` for the closure and given back.
                let mut parts = Request::new(()).into_parts().0;
                swap_head(&mut parts, req);
                let key = custom_key(custom, &parts);
                swap_head(&mut parts, req);
                key
            }
        }
    }

    /// The key from what every kind but `Custom` reads; `Err` with the closure for `Custom`.
    fn key_from(
        &self,
        uri: &Uri,
        headers: &HeaderMap,
        extensions: &Extensions,
    ) -> Result<Option<StoreKey>, &CustomKey> {
        let identity = || extensions.get::<Identity>();
        let credential = |id: &Identity| {
            let mut key = StoreKey::concat(&["rl:cred:", id.method().as_str(), ":"]);
            if let Some(iss) = id.issuer() {
                push_issuer(&mut key, iss);
            }
            key.push_str(id.name());
            key
        };
        Ok(match self {
            RateLimitKey::Identity => identity().map(credential),
            RateLimitKey::User => identity().map(|id| match (id.issuer(), id.user_id()) {
                (None, Some(user)) => StoreKey::concat(&["rl:user:", user]),
                (Some(iss), Some(user)) => {
                    let mut key = StoreKey::concat(&["rl:sub:"]);
                    push_issuer(&mut key, iss);
                    key.push_str(user);
                    key
                }
                (_, None) => credential(id),
            }),
            RateLimitKey::Role => {
                identity().map(|id| StoreKey::concat(&["rl:role:", id.role().unwrap_or("")]))
            }
            RateLimitKey::Endpoint => Some(StoreKey::concat(&["rl:path:", uri.path()])),
            RateLimitKey::ClientIp(resolver) => resolver
                .resolve(headers, extensions)
                .map(|ip| resolver.store_key("rl:ip:", ip)),
            RateLimitKey::Custom(f) => return Err(f),
        })
    }
}

/// Exchanges the head of `req` with `parts` (the extensions included).
fn swap_head<B>(parts: &mut Parts, req: &mut Request<B>) {
    std::mem::swap(&mut parts.method, req.method_mut());
    std::mem::swap(&mut parts.uri, req.uri_mut());
    std::mem::swap(&mut parts.version, req.version_mut());
    std::mem::swap(&mut parts.headers, req.headers_mut());
    std::mem::swap(&mut parts.extensions, req.extensions_mut());
}

fn custom_key(f: &CustomKey, parts: &Parts) -> Option<StoreKey> {
    f(parts).map(|k| StoreKey::concat(&["rl:custom:", &k]))
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
    fn a_custom_key_reads_the_whole_head_and_leaves_the_request_as_it_was() {
        let tenant = RateLimitKey::custom(|p| {
            let id = p.extensions.get::<ClientAddr>()?;
            let tenant = p.headers.get("x-tenant")?.to_str().ok()?;
            Some(format!(
                "{} {} {:?} {tenant} {}",
                p.method, p.uri, p.version, id.0
            ))
        });
        let mut req = Request::put("/t?x=1")
            .header("x-tenant", "acme")
            .extension(ClientAddr(SocketAddr::from(([192, 0, 2, 7], 4000))))
            .body("body")
            .unwrap();
        assert_eq!(
            tenant.key_for_request(&mut req).as_deref(),
            Some("rl:custom:PUT /t?x=1 HTTP/1.1 acme 192.0.2.7:4000")
        );
        assert_eq!(
            (req.method(), req.uri().to_string()),
            (&http::Method::PUT, "/t?x=1".into())
        );
        assert_eq!(req.headers()["x-tenant"], "acme");
        assert!(req.extensions().get::<ClientAddr>().is_some());
        assert_eq!(*req.body(), "body");
        // Every other kind reads the request in place, with the same key as from `Parts`.
        let mut req = Request::post("/users/alice/mcp").body(()).unwrap();
        assert_eq!(
            RateLimitKey::Endpoint.key_for_request(&mut req).as_deref(),
            Some("rl:path:/users/alice/mcp")
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
