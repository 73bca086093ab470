//! Thin wrappers over the crate's internal parsers for the `cargo fuzz` targets in `fuzz/`.
//!
//! Compiled only with `--cfg fuzzing` (which `cargo fuzz` passes), hidden from the docs, and
//! never part of the public API: nothing here is stable. Every fuzz target reaches the crate
//! through this one file, so when an internal signature changes, only the wrapper here needs
//! fixing. The wrappers own their inputs and outputs (no borrowed internal types leak out).
#![allow(missing_docs, unreachable_pub, missing_debug_implementations)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use http::{Extensions, HeaderMap, Uri};
use serde_json::Value;

use crate::identity::Identity;
use crate::mcp::McpRules;

/// What a request carries for one kind of credential (mirror of `credentials::Presented`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Presented {
    Absent,
    Value(String),
    Malformed,
}

impl From<crate::credentials::Presented<'_>> for Presented {
    fn from(p: crate::credentials::Presented<'_>) -> Self {
        match p {
            crate::credentials::Presented::Absent => Presented::Absent,
            crate::credentials::Presented::Value(v) => Presented::Value(v.into_owned()),
            crate::credentials::Presented::Malformed => Presented::Malformed,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// src/credentials.rs
// ---------------------------------------------------------------------------------------------

pub const MAX_API_KEY_LEN: usize = crate::credentials::MAX_API_KEY_LEN;
pub const MAX_BEARER_LEN: usize = crate::credentials::MAX_BEARER_LEN;

/// `X-API-Key` header, then `api_key` / `apikey` query parameters when `query`.
pub fn api_key(headers: &HeaderMap, uri: &Uri, query: bool) -> Presented {
    crate::credentials::api_key(headers, uri, query).into()
}

/// `Authorization: Bearer`.
pub fn bearer(headers: &HeaderMap) -> Presented {
    crate::credentials::bearer(headers).into()
}

/// The session cookie `name`.
pub fn cookie(headers: &HeaderMap, name: &str) -> Presented {
    crate::credentials::cookie(headers, name).into()
}

// ---------------------------------------------------------------------------------------------
// src/rate_limit/client_ip.rs
// ---------------------------------------------------------------------------------------------

/// The forwarding header a resolver is configured to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientIpHeader {
    XForwardedFor,
    Forwarded,
}

/// Whether the resolver reads exactly the one configured header (the security review's
/// "never fall back from `Forwarded` to `X-Forwarded-For`"): the `client_ip` target then
/// asserts that only that header is used.
pub const CLIENT_IP_ONE_HEADER: bool = true;

/// The client IP of a request from `peer` through proxies in `trusted` (addresses or CIDRs;
/// `None` when one does not parse), with `ipv6_prefix` grouping for [`client_ip_bucket`].
pub fn client_ip(
    trusted: &[String],
    header: ClientIpHeader,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> Option<Option<IpAddr>> {
    let resolver = crate::rate_limit::ClientIpResolver::new()
        .trust_proxies(trusted)
        .ok()?
        .forwarded_header(match header {
            ClientIpHeader::XForwardedFor => crate::rate_limit::ForwardedHeader::XForwardedFor,
            ClientIpHeader::Forwarded => crate::rate_limit::ForwardedHeader::Forwarded,
        });
    let mut extensions = Extensions::new();
    extensions.insert(crate::rate_limit::ClientAddr(peer));
    Some(resolver.resolve(headers, &extensions))
}

/// The rate-limit bucket of `ip` with IPv6 grouped by `ipv6_prefix` bits.
pub fn client_ip_bucket(ip: IpAddr, ipv6_prefix: u8) -> String {
    crate::rate_limit::ClientIpResolver::new()
        .ipv6_prefix(ipv6_prefix)
        .bucket(ip)
}

// ---------------------------------------------------------------------------------------------
// src/bearer/ (jwt.rs, claims.rs)
// ---------------------------------------------------------------------------------------------

/// Verifies `token` with `verifier` (header, signature, claims, then identity building).
pub fn jwt_verify(
    verifier: &crate::JwtVerifier,
    token: &str,
) -> Result<Identity, crate::TokenRejection> {
    verifier.verify_now(token)
}

/// The identity built from verified claims.
pub fn identity_from_claims(claims: serde_json::Map<String, Value>) -> Identity {
    crate::bearer::identity_from_claims(claims)
}

/// The canonical form audiences are compared in (scheme and host lowercased, default port
/// and trailing slash dropped; the path stays case-sensitive).
pub fn canonical_resource(uri: &str) -> String {
    crate::bearer::canonical_resource(uri)
}

/// Whether a header `typ` is accepted by a verifier configured with `configured` types.
pub fn token_type_accepted(configured: &[&str], typ: Option<&str>) -> bool {
    let accepted: Vec<String> = configured
        .iter()
        .map(|t| crate::bearer::normalize_token_type(t))
        .collect();
    crate::bearer::token_type_accepted(&accepted, typ)
}

// ---------------------------------------------------------------------------------------------
// src/mcp/jsonrpc.rs, src/mcp/rules.rs
// ---------------------------------------------------------------------------------------------

/// One message of a request body, as far as authorization cares.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    pub method: Option<String>,
    pub id: Option<Value>,
    pub target: Option<String>,
}

/// A parsed JSON-RPC request body.
#[derive(Clone, Debug, PartialEq)]
pub struct Parsed {
    pub calls: Vec<Call>,
    pub batch: bool,
}

/// The JSON-RPC error code of a refused body.
pub const PARSE_ERROR_CODE: i64 = crate::mcp::PARSE_ERROR_CODE;
pub const INVALID_REQUEST_CODE: i64 = crate::mcp::INVALID_REQUEST_CODE;

/// Parses a request body; `Err(code)` when refused.
pub fn jsonrpc_parse(body: &[u8]) -> Result<Parsed, i64> {
    match crate::mcp::jsonrpc_parse(body) {
        Ok(p) => Ok(Parsed {
            calls: p
                .calls
                .into_iter()
                .map(|c| Call {
                    method: c.method.map(|m| m.into_owned()),
                    id: c.id,
                    target: c.target.map(|t| t.into_owned()),
                })
                .collect(),
            batch: p.batch,
        }),
        Err(e) => Err(e.code),
    }
}

/// Which `params` member names the target of `method`: `Some("name")`, `Some("uri")` or
/// `None` (authorized by the method alone).
pub fn jsonrpc_target_field(method: &str) -> Option<&'static str> {
    use crate::mcp::TargetField;
    crate::mcp::jsonrpc_target_field(method).map(|f| match f {
        TargetField::Name => "name",
        TargetField::Uri => "uri",
    })
}

/// Whether a resource URI is in the form a permission prefix is trusted on (else the call is
/// authorized as the bare method).
pub fn is_canonical_uri(uri: &str) -> bool {
    crate::mcp::is_canonical_uri(uri)
}

/// Validated MCP permission rules (what `McpRules::build` accepts).
#[derive(Clone)]
pub struct Rules(Arc<crate::mcp::McpConfig>);

/// Builds rules: `public` patterns, then `(pattern, required scopes)` rules; `None` when
/// `McpRules::build` refuses them. `max_response_bytes` bounds the `tools/list` filter.
pub fn mcp_rules(
    public: &[String],
    rules: &[(String, Vec<String>)],
    max_response_bytes: usize,
) -> Option<Rules> {
    let mut r = McpRules::new().public(public.iter().cloned());
    for (pattern, required) in rules {
        r = r.rule(pattern.clone(), required.iter().cloned());
    }
    let layer = r
        .filter_tools_list(true)
        .max_response_bytes(max_response_bytes)
        .build()
        .ok()?;
    Some(Rules(layer.config()))
}

/// Whether `identity` may call `method` (on `target`) under `rules`.
pub fn mcp_allows(rules: &Rules, identity: &Identity, method: &str, target: Option<&str>) -> bool {
    rules.0.rules.check(identity, method, target).is_ok()
}

/// An API-key identity holding `permissions`.
pub fn identity_with(permissions: &[String]) -> Identity {
    Identity::builder(crate::AuthMethod::ApiKey, "fuzz")
        .permissions(permissions.iter().cloned())
        .build()
}

// ---------------------------------------------------------------------------------------------
// src/mcp/sse.rs, src/mcp/filter.rs
// ---------------------------------------------------------------------------------------------

/// The `tools/list` filter for pending request `ids` of `identity`.
pub struct ToolsFilter(crate::mcp::ToolsFilter);

impl ToolsFilter {
    pub fn new(ids: Vec<Value>, identity: Identity, rules: &Rules) -> Self {
        Self(crate::mcp::ToolsFilter::new(ids, identity, rules.0.clone()))
    }

    /// Filters a whole `application/json` response body; `None` when it is refused.
    pub fn apply_to_json(&mut self, body: Bytes) -> Option<Bytes> {
        self.0.apply_to_json(body)
    }

    /// Whether responses are still expected.
    pub fn is_pending(&self) -> bool {
        self.0.is_pending()
    }
}

/// The `text/event-stream` rewriter.
pub struct SseRewriter(crate::mcp::SseRewriter);

impl SseRewriter {
    pub fn new(filter: ToolsFilter) -> Self {
        Self(crate::mcp::SseRewriter::new(filter.0))
    }

    /// Feeds one chunk; returns what can be sent on.
    pub fn push(&mut self, chunk: Bytes) -> Bytes {
        self.0.push(chunk)
    }

    /// The body ended: flushes the rest.
    pub fn finish(&mut self) -> Bytes {
        self.0.finish()
    }
}

// ---------------------------------------------------------------------------------------------
// src/policy/pattern.rs
// ---------------------------------------------------------------------------------------------

/// A parsed path pattern.
pub use crate::policy::PathPattern;

/// Parses an axum-style path pattern.
pub fn path_pattern(pattern: &str) -> Option<PathPattern> {
    PathPattern::parse(pattern)
}

/// Whether `pattern` matches `path`.
pub fn path_matches(pattern: &PathPattern, path: &str) -> bool {
    pattern.matches(path)
}

/// Whether the `path_pattern` target checks canonicalization (kept as a switch for targets
/// that run against older trees).
pub const HAS_CANONICAL_PATH: bool = true;

/// The decoded, canonical form of a request path as the policy layer matches it, or `None`
/// when the layer refuses the path with 400 (and for targets that are not paths, such as
/// `*`, which no pattern matches).
pub fn canonical_path(raw: &str) -> Option<String> {
    if !raw.starts_with('/') {
        return None;
    }
    crate::policy::canonicalize(raw)
        .ok()
        .map(|c| c.into_owned())
}

// ---------------------------------------------------------------------------------------------
// src/oauth/ (state.rs, callback parsing) — feature `oauth-client`
// ---------------------------------------------------------------------------------------------

#[cfg(feature = "oauth-client")]
pub use oauth::*;

#[cfg(feature = "oauth-client")]
mod oauth {
    use crate::oauth::{OAuthClient, OAuthError, Provider, StartOptions, StateError};

    /// A signed state's payload (mirror of `oauth::state::StatePayload`).
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct StatePayload {
        pub provider: String,
        pub upstream: Option<String>,
        pub user: Option<String>,
        pub redirect: String,
        pub issued_ms: u64,
        pub nonce: String,
    }

    pub use crate::oauth::StateSigner;

    pub const MAX_STATE_LEN: usize = crate::oauth::MAX_STATE_LEN;

    /// Signs a payload as the start of a flow does.
    pub fn state_sign(signer: &StateSigner, p: &StatePayload) -> String {
        signer.sign(&crate::oauth::StatePayload {
            v: 1,
            p: p.provider.clone(),
            g: p.upstream.clone(),
            u: p.user.clone(),
            r: p.redirect.clone(),
            t: p.issued_ms,
            n: p.nonce.clone(),
        })
    }

    /// Verifies a `state` value (signature, then payload).
    pub fn state_verify(signer: &StateSigner, state: &str) -> Result<StatePayload, StateError> {
        signer.verify(state).map(|p| StatePayload {
            provider: p.p,
            upstream: p.g,
            user: p.u,
            redirect: p.r,
            issued_ms: p.t,
            nonce: p.n,
        })
    }

    /// The callback's query parsing: single-valued `names`, a repeated one is an error.
    pub fn callback_params(query: &str, names: &[&str]) -> Result<Vec<Option<String>>, OAuthError> {
        crate::oauth::query_params(query, names)
    }

    /// An OAuth client with one GitHub provider (named `github`, never contacted), a memory
    /// state store and no browser binding, for driving `start` and `callback`.
    pub async fn client() -> OAuthClient {
        OAuthClient::builder("http://localhost:8080/auth/oauth/callback")
            .provider(
                Provider::github("fuzz-client", "fuzz-secret")
                    .github_urls("http://127.0.0.1:9/", "http://127.0.0.1:9/"),
            )
            .state_secret(b"fuzz-state-secret-fuzz-state-secret!")
            // Bounded, and a 1 s state TTL so a long campaign's flows expire and are swept.
            .store(
                crate::store::MemoryStore::builder()
                    .max_entries(200_000)
                    .build()
                    .expect("valid memory store"),
            )
            .state_ttl(std::time::Duration::from_secs(1))
            .bind_state_to_browser(false)
            .build()
            .await
            .expect("the fuzz OAuth client configuration is valid")
    }

    /// Starts a flow with `provider`; returns the `state` put into the authorization URL.
    pub async fn start_state(client: &OAuthClient, provider: &str) -> Result<String, OAuthError> {
        let redirect = client.start(provider, StartOptions::default()).await?;
        let url = redirect.url();
        let query = url.split_once('?').map_or("", |(_, q)| q);
        Ok(form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default())
    }

    /// Runs the callback route's logic on a request for `path_and_query`.
    pub async fn callback(
        client: &OAuthClient,
        path_and_query: &str,
    ) -> Option<Result<(), OAuthError>> {
        let uri: http::Uri = path_and_query.parse().ok()?;
        let (parts, ()) = http::Request::builder()
            .uri(uri)
            .body(())
            .ok()?
            .into_parts();
        Some(client.callback(&parts).await.map(|_| ()))
    }
}
