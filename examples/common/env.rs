//! Reading the examples' configuration from environment variables, with the same names and
//! defaults as `four_modes`.
#![allow(dead_code)]

use tower_mcp_auth::{ApiKeyRegistry, EndpointPolicy, JwtVerifier, McpAuth, McpAuthBuilder};

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

/// The auth configuration shared by the examples.
pub struct AuthEnv {
    pub api_keys: bool,
    pub oauth: bool,
    pub query: bool,
}

impl AuthEnv {
    /// `ENABLE_API_KEY_AUTH` (default true), `ENABLE_OAUTH` (default false) and
    /// `USE_QUERY_PARAM_AUTH` (default true).
    pub fn from_env() -> Result<Self, Error> {
        Ok(Self {
            api_keys: env_bool("ENABLE_API_KEY_AUTH", true)?,
            oauth: env_bool("ENABLE_OAUTH", false)?,
            query: env_bool("USE_QUERY_PARAM_AUTH", true)?,
        })
    }

    /// The mode of the protected endpoints.
    pub fn mode(&self) -> EndpointPolicy {
        EndpointPolicy::new(self.api_keys, self.oauth)
    }

    /// A builder with keys from `MCP_API_KEYS` and an HS256 verifier from `JWT_SECRET`
    /// (`JWT_ISSUER`, `JWT_AUDIENCE` checked when set), as enabled; every path not given an
    /// endpoint is open.
    pub fn builder(&self, public_base_url: &str) -> Result<McpAuthBuilder, Error> {
        let mut auth = McpAuth::builder()
            .public_base_url(public_base_url)
            .query_param_auth(self.query)
            .default_policy(EndpointPolicy::open());
        if self.api_keys {
            let keys = ApiKeyRegistry::from_env()
                .map_err(|e| format!("{e} (ENABLE_API_KEY_AUTH=true needs MCP_API_KEYS)"))?;
            tracing::info!(keys = keys.len(), "API keys loaded");
            auth = auth.api_keys(keys);
        }
        if self.oauth {
            let secret = std::env::var("JWT_SECRET")
                .map_err(|_| "ENABLE_OAUTH=true needs JWT_SECRET (an HS256 secret of 32+ bytes)")?;
            let mut verifier = JwtVerifier::hs256(secret.as_bytes());
            if let Ok(issuer) = std::env::var("JWT_ISSUER") {
                verifier = verifier.issuer(issuer);
            }
            if let Ok(audience) = std::env::var("JWT_AUDIENCE") {
                verifier = verifier.audience(audience);
            }
            auth = auth.bearer(verifier.build()?);
        }
        Ok(auth)
    }
}
