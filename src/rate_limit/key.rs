//! [`RateLimitKey`]: what a quota is counted per.

use std::fmt;
use std::sync::Arc;

use http::request::Parts;

use crate::identity::Identity;

use super::client_ip::ClientIpResolver;

type CustomKey = Arc<dyn Fn(&Parts) -> Option<String> + Send + Sync>;

/// What a [`RateLimitLayer`](crate::RateLimitLayer) quota is counted per.
///
/// Requests for which the key is `None` (for example an open endpoint, where no
/// [`Identity`] was decided) are not limited and get no `RateLimit-*` headers.
///
/// ```
/// use tower_mcp_auth::RateLimitKey;
///
/// let per_tenant = RateLimitKey::custom(|parts| {
///     parts.headers.get("x-tenant").and_then(|v| v.to_str().ok()).map(str::to_owned)
/// });
/// # let _ = per_tenant;
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub enum RateLimitKey {
    /// Per credential: the API key's name, or the token's subject.
    Identity,
    /// Per user id, falling back to the credential for public keys.
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

    /// The store key for this request, namespaced by kind (`rl:user:alice`). Built with one
    /// allocation and no formatting machinery: this runs on every limited request.
    pub(crate) fn key_for(&self, parts: &Parts) -> Option<String> {
        let identity = || parts.extensions.get::<Identity>();
        let credential =
            |id: &Identity| concat(&["rl:cred:", id.method().as_str(), ":", id.name()]);
        match self {
            RateLimitKey::Identity => identity().map(credential),
            RateLimitKey::User => {
                let id = identity()?;
                Some(match id.user_id() {
                    Some(user) => concat(&["rl:user:", user]),
                    None => credential(id),
                })
            }
            RateLimitKey::Role => {
                let id = identity()?;
                Some(concat(&["rl:role:", id.role().unwrap_or("")]))
            }
            RateLimitKey::Endpoint => Some(concat(&["rl:path:", parts.uri.path()])),
            RateLimitKey::ClientIp(resolver) => {
                let ip = resolver.resolve(&parts.headers, &parts.extensions)?;
                Some(resolver.store_key("rl:ip:", ip))
            }
            RateLimitKey::Custom(f) => f(parts).map(|k| concat(&["rl:custom:", &k])),
        }
    }
}

/// The pieces joined into one exactly-sized `String`.
fn concat(pieces: &[&str]) -> String {
    let mut key = String::with_capacity(pieces.iter().map(|p| p.len()).sum());
    pieces.iter().for_each(|p| key.push_str(p));
    key
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
