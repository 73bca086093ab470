//! Reading the examples' configuration from environment variables, with the same names and
//! defaults as `four_modes`.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use tower_mcp_auth::origin::OriginLayer;
use tower_mcp_auth::store::{MemoryStore, Quota, StateStore};
use tower_mcp_auth::{
    metadata::ProtectedResourceMetadata,
    rate_limit::{ClientIpResolver, FailedAuthLimitLayer, ForwardedHeader, RateLimitLayer},
    ApiKeyRegistry, EndpointPolicy, JwtVerifier, McpAuth, McpAuthBuilder, ScopeMap,
};

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// A variable, or `default` when it is unset.
pub fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// A boolean variable: `true`/`1`/`yes`/`on` or `false`/`0`/`no`/`off`.
pub fn env_bool(name: &str, default: bool) -> Result<bool, Error> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(v) => match v.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(format!("{name} must be true or false, got {v:?}").into()),
        },
    }
}

/// The failed-auth lockout: `FAILED_AUTH_LIMIT` wrong credentials (default 20) per
/// `FAILED_AUTH_WINDOW_SECS` (default 60) per client IP, as one GCRA bucket, counted in
/// `STATE_STORE` (`memory`, the default, holding at most `MEMORY_STORE_MAX_ENTRIES` keys,
/// default 1,000,000; `redis://…`, `redis+cluster://…`, `postgres://…`, `sqlite:path` with the
/// matching feature, shared by every instance). Client IPs: the socket peer, or, when it is in
/// `TRUSTED_PROXIES` (comma-separated addresses / CIDRs, default none), the one header
/// `CLIENT_IP_HEADER` (default `X-Forwarded-For`; `Forwarded`, or a single-address header
/// such as `CF-Connecting-IP` / `X-Real-IP`). Also returns the store's scheme, for the log.
pub async fn lockout_from_env() -> Result<(FailedAuthLimitLayer, String), Error> {
    let (lockout, _, scheme) = limits_from_env().await?;
    Ok((lockout, scheme))
}

/// [`lockout_from_env`], plus an optional quota per caller (issuer and user) counted in the
/// same store: `RATE_LIMIT` requests (unset: no quota) per `RATE_LIMIT_WINDOW_SECS`
/// (default 60), as one GCRA bucket (`RATE_LIMIT` at once, then one back every window /
/// limit), with `RateLimit-*` headers and 429 past it.
pub async fn limits_from_env(
) -> Result<(FailedAuthLimitLayer, Option<RateLimitLayer>, String), Error> {
    let limit: u32 = env_or("FAILED_AUTH_LIMIT", "20")
        .parse()
        .map_err(|e| format!("FAILED_AUTH_LIMIT: {e}"))?;
    let window: u64 = env_or("FAILED_AUTH_WINDOW_SECS", "60")
        .parse()
        .map_err(|e| format!("FAILED_AUTH_WINDOW_SECS: {e}"))?;
    let quota = Quota::new(limit, Duration::from_secs(window))
        .map_err(|e| format!("FAILED_AUTH_LIMIT / FAILED_AUTH_WINDOW_SECS: {e}"))?;
    let url = env_or("STATE_STORE", "memory");
    let store = store_from_env(&url).await?;
    let scheme = url.split("://").next().unwrap_or("memory").to_owned();
    let rate_limit = match non_empty("RATE_LIMIT") {
        None => None,
        Some(limit) => {
            let limit: u32 = limit.parse().map_err(|e| format!("RATE_LIMIT: {e}"))?;
            let window: u64 = env_or("RATE_LIMIT_WINDOW_SECS", "60")
                .parse()
                .map_err(|e| format!("RATE_LIMIT_WINDOW_SECS: {e}"))?;
            let quota = Quota::new(limit, Duration::from_secs(window))
                .map_err(|e| format!("RATE_LIMIT / RATE_LIMIT_WINDOW_SECS: {e}"))?;
            Some(RateLimitLayer::from_shared(Arc::clone(&store), quota))
        }
    };
    Ok((
        FailedAuthLimitLayer::from_shared(store, quota).client_ip(client_ip_from_env()?),
        rate_limit,
        scheme,
    ))
}

/// The store `STATE_STORE` names; `memory` holds at most `MEMORY_STORE_MAX_ENTRIES` keys.
async fn store_from_env(url: &str) -> Result<Arc<dyn StateStore>, Error> {
    if let (true, Some(cap)) = (
        matches!(url.trim(), "" | "memory"),
        non_empty("MEMORY_STORE_MAX_ENTRIES"),
    ) {
        let cap: usize = cap
            .parse()
            .map_err(|e| format!("MEMORY_STORE_MAX_ENTRIES: {e}"))?;
        let store = MemoryStore::builder()
            .max_entries(cap)
            .build()
            .map_err(|e| format!("MEMORY_STORE_MAX_ENTRIES: {e}"))?;
        return Ok(Arc::new(store));
    }
    Ok(tower_mcp_auth::store::connect(url)
        .await
        .map_err(|e| format!("STATE_STORE: {e}"))?)
}

/// `TRUSTED_PROXIES` and `CLIENT_IP_HEADER`, as described at [`lockout_from_env`].
pub fn client_ip_from_env() -> Result<ClientIpResolver, Error> {
    let proxies = env_or("TRUSTED_PROXIES", "");
    let header = ForwardedHeader::from_name(&env_or("CLIENT_IP_HEADER", "X-Forwarded-For"))
        .map_err(|e| format!("CLIENT_IP_HEADER: {e}"))?;
    Ok(ClientIpResolver::new()
        .trust_proxies(proxies.split(',').filter(|p| !p.trim().is_empty()))
        .map_err(|e| format!("TRUSTED_PROXIES: {e}"))?
        .forwarded_header(header))
}

/// DNS-rebinding protection from `ALLOWED_ORIGINS`: unset, browser pages on loopback only
/// (`http(s)://localhost|127.0.0.1|[::1]`, any port; the examples bind 127.0.0.1); a list
/// (comma or space separated `scheme://host[:port]`) allows those origins and loopback;
/// `off` checks nothing. A request without `Origin` (every non-browser client) passes.
pub fn origin_from_env() -> Result<Option<OriginLayer>, Error> {
    let value = env_or("ALLOWED_ORIGINS", "");
    let value = value.trim();
    if value.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let origins = value
        .split(|c: char| c == ',' || c.is_ascii_whitespace())
        .filter(|o| !o.is_empty());
    let layer = OriginLayer::builder()
        .loopback(true)
        .allow_origins(origins)
        .build()
        .map_err(|e| format!("ALLOWED_ORIGINS: {e}"))?;
    Ok(Some(layer))
}

/// The auth configuration shared by the examples.
pub struct AuthEnv {
    pub api_keys: bool,
    pub oauth: bool,
    pub query: bool,
    /// `OAUTH_ISSUER`: an authorization server; its discovery document gives the JWKS and it
    /// is listed in the metadata's `authorization_servers`.
    pub issuer: Option<String>,
    /// `JWKS_URL`: a JWK set to verify tokens with, when there is no issuer to discover.
    pub jwks_url: Option<String>,
    /// `OAUTH_AUDIENCE`: the audience tokens must carry (default: the resource URL).
    pub audience: Option<String>,
    /// `OAUTH_SCOPES`: scopes required on the protected endpoints, advertised in
    /// `scopes_supported` and in the Bearer challenge.
    pub scopes: Vec<String>,
    /// What token scopes grant: `MCP_SCOPE_PERMISSIONS` (a JSON object scope → [permission,
    /// ...]), or by default every `OAUTH_SCOPES` scope grants `*` (a token holding the scopes
    /// the server asks for may use every tool). Token scopes are never wildcards themselves.
    pub scope_map: ScopeMap,
}

fn non_empty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl AuthEnv {
    /// `ENABLE_API_KEY_AUTH` (default true), `ENABLE_OAUTH` (default false),
    /// `USE_QUERY_PARAM_AUTH` (default true), `OAUTH_ISSUER`, `JWKS_URL`, `OAUTH_AUDIENCE`,
    /// `OAUTH_SCOPES`, `MCP_SCOPE_PERMISSIONS`.
    pub fn from_env() -> Result<Self, Error> {
        let scopes: Vec<String> = non_empty("OAUTH_SCOPES")
            .map(|s| s.split_ascii_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        let scope_map = match non_empty("MCP_SCOPE_PERMISSIONS") {
            Some(json) => {
                ScopeMap::from_json(&json).map_err(|e| format!("MCP_SCOPE_PERMISSIONS: {e}"))?
            }
            None => scopes.iter().fold(ScopeMap::new(), |map, scope| {
                map.grant(scope.clone(), ["*"])
            }),
        };
        Ok(Self {
            api_keys: env_bool("ENABLE_API_KEY_AUTH", true)?,
            oauth: env_bool("ENABLE_OAUTH", false)?,
            query: env_bool("USE_QUERY_PARAM_AUTH", true)?,
            issuer: non_empty("OAUTH_ISSUER"),
            jwks_url: non_empty("JWKS_URL"),
            audience: non_empty("OAUTH_AUDIENCE"),
            scopes,
            scope_map,
        })
    }

    /// The mode of the protected endpoints, requiring `OAUTH_SCOPES` when OAuth is on.
    pub fn mode(&self) -> EndpointPolicy {
        let mode = EndpointPolicy::new(self.api_keys, self.oauth);
        if self.oauth && !self.scopes.is_empty() {
            mode.require(self.scopes.iter().cloned())
        } else {
            mode
        }
    }

    /// The RFC 9728 document for the resource at `resource` (the exact URL clients use).
    pub fn metadata(&self, resource: &str) -> ProtectedResourceMetadata {
        let mut doc = ProtectedResourceMetadata::new(resource);
        if let Some(issuer) = &self.issuer {
            doc = doc.authorization_server(issuer.clone());
        }
        if !self.scopes.is_empty() {
            doc = doc.scopes_supported(self.scopes.iter().cloned());
        }
        doc
    }

    /// A builder with keys from `MCP_API_KEYS` and, when OAuth is on, a verifier: the issuer's
    /// or `JWKS_URL`'s key set (feature `jwks`) with the audience `OAUTH_AUDIENCE` or
    /// `resource`, else HS256 from `JWT_SECRET` (`JWT_ISSUER`, `JWT_AUDIENCE` checked when set),
    /// with [`scope_map`](Self::scope_map) applied to every verified token. Every path not
    /// given an endpoint is open. Browser origins are checked ([`origin_from_env`]).
    pub async fn builder(
        &self,
        public_base_url: &str,
        resource: &str,
    ) -> Result<McpAuthBuilder, Error> {
        let mut auth = McpAuth::builder()
            .public_base_url(public_base_url)
            .credential_sources(tower_mcp_auth::CredentialSources::new().query_param(self.query))
            .default_policy(EndpointPolicy::open());
        if let Some(origins) = origin_from_env()? {
            auth = auth.origin(origins);
        }
        if self.api_keys {
            let keys = ApiKeyRegistry::from_env()
                .map_err(|e| format!("{e} (ENABLE_API_KEY_AUTH=true needs MCP_API_KEYS)"))?;
            tracing::info!(keys = keys.len(), "API keys loaded");
            auth = auth.api_keys(keys);
        }
        if !self.oauth {
            return Ok(auth);
        }
        if self.issuer.is_some() || self.jwks_url.is_some() {
            let audience = self.audience.clone().unwrap_or_else(|| resource.to_owned());
            let verifier = self.remote_verifier(audience).await?;
            return Ok(auth.bearer(self.scope_map.clone().verifier(verifier)));
        }
        let secret = std::env::var("JWT_SECRET").map_err(|_| {
            "ENABLE_OAUTH=true needs OAUTH_ISSUER, JWKS_URL or JWT_SECRET (an HS256 secret of 32+ bytes)"
        })?;
        let mut verifier = JwtVerifier::hs256(secret.as_bytes());
        if let Ok(issuer) = std::env::var("JWT_ISSUER") {
            verifier = verifier.issuer(issuer);
        }
        if let Some(audience) = non_empty("JWT_AUDIENCE").or_else(|| self.audience.clone()) {
            verifier = verifier.audience(audience);
        }
        Ok(auth.bearer(self.scope_map.clone().verifier(verifier.build()?)))
    }

    #[cfg(feature = "jwks")]
    async fn remote_verifier(
        &self,
        audience: String,
    ) -> Result<tower_mcp_auth::bearer::JwksVerifier, Error> {
        use tower_mcp_auth::bearer::JwksVerifier;
        let builder = match (&self.issuer, &self.jwks_url) {
            (Some(issuer), None) => JwksVerifier::from_issuer(issuer.clone()),
            (issuer, Some(url)) => {
                let b = JwksVerifier::from_jwks_url(url.clone());
                match issuer {
                    Some(issuer) => b.issuer(issuer.clone()),
                    None => b,
                }
            }
            (None, None) => unreachable!("checked by the caller"),
        };
        let verifier = builder.audience(audience).build()?;
        // Fetch now: a wrong issuer URL should stop the server at start, not fail requests.
        match verifier.refresh().await {
            Ok(keys) => tracing::info!(keys, "JWKS loaded"),
            Err(e) => {
                tracing::warn!(error = %e, "JWKS not reachable yet; requests get 503 until it is")
            }
        }
        Ok(verifier)
    }

    #[cfg(not(feature = "jwks"))]
    async fn remote_verifier(
        &self,
        _audience: String,
    ) -> Result<tower_mcp_auth::JwtVerifier, Error> {
        Err("OAUTH_ISSUER / JWKS_URL need the `jwks` feature: cargo run --features jwks --example ...".into())
    }
}
