//! # tower-mcp-auth
//!
//! Composable [Tower](https://docs.rs/tower) layers that give any hyper, axum or tonic MCP
//! (Model Context Protocol) server authentication in-process: API keys, OAuth 2.1 bearer
//! tokens, rate limiting and per-endpoint policy, in the four auth modes users know from MCP
//! gateways.
//!
//! ```text
//! request ─▶ AuditLayer ─▶ OriginLayer ─▶ FailedAuthLimitLayer ─▶ ApiKeyLayer ─▶ BearerLayer ─▶ EndpointPolicyLayer ─▶ RateLimitLayer ─▶ McpPermissionsLayer ─▶ your MCP service
//!            (DNS rebinding) (per client IP)        (identify)     (identify)     (decide: 401 / 403)   (per identity)    (per JSON-RPC call)
//! ```
//!
//! ## Modules
//!
//! Each middleware is a module with its layer, service and future, as in tower-http; the
//! crate root re-exports the common path ([`McpAuth`], [`Identity`], [`EndpointPolicy`],
//! [`ApiKeyRegistry`], [`JwtVerifier`], [`McpRules`], the error contract).
//!
//! | module | what it holds |
//! |---|---|
//! | [`origin`] | `OriginLayer`: `Origin` / `Host` allowlists (DNS-rebinding protection) |
//! | [`rate_limit`] | `FailedAuthLimitLayer` (lockout per client IP), `RateLimitLayer` (quotas), `ClientIpResolver` |
//! | [`api_key`] | `ApiKeyLayer`, `ApiKeyRegistry`, the `KeyLookup` trait, key generation |
//! | [`bearer`] | `BearerLayer`, the `TokenVerifier` trait, JWT / JWKS / introspection / multi-issuer verifiers, `CachedVerifier` |
//! | [`policy`] | `EndpointPolicyLayer`: the four modes per endpoint, ownership, required permissions, canonical paths |
//! | [`mcp`] | `McpPermissionsLayer`: per-method and per-tool permissions from the JSON-RPC body, `tools/list` filtering |
//! | [`metadata`] | RFC 9728 protected resource metadata |
//! | [`store`] | the `StateStore` trait and its memory, Redis, PostgreSQL and SQLite backends |
//! | [`audit`] | `AuditLayer`: one event per decision into a sink (`tracing`, JSON lines, a channel) |
//! | [`metrics`] | (feature `metrics`) the metric names and labels emitted through the `metrics` facade |
//! | `oauth` | (feature `oauth-client`) login with GitHub / Google / Microsoft / OIDC, sessions, upstream tokens |
//!
//! Authenticators only *identify*: they verify a presented credential and leave the outcome
//! in the request extensions. [`EndpointPolicyLayer`](policy::EndpointPolicyLayer) *decides* per endpoint and puts the one
//! chosen [`Identity`] into the extensions for handlers. [`McpAuth`] composes the stack in one
//! `.layer(...)`: the authenticators and the policy always, the limiters
//! ([`McpAuthBuilder::failed_auth_limit`], [`McpAuthBuilder::rate_limit`]) and the MCP
//! permissions ([`McpAuthBuilder::mcp_permissions`]) when configured.
//!
//! ## The four modes (per endpoint)
//!
//! | mode | missing credentials | wrong credentials |
//! |---|---|---|
//! | [`EndpointPolicy::open`] | pass | not checked, pass |
//! | [`EndpointPolicy::api_key_only`] | 401 `authentication_required`, **no** `WWW-Authenticate` | 401 `invalid_credentials` |
//! | [`EndpointPolicy::both`] | 401 `authentication_required` + Bearer challenge | key: 401 `invalid_credentials`; token: 401 `invalid_token` |
//! | [`EndpointPolicy::oauth_only`] | 401 `authentication_required` + Bearer challenge | 401 `invalid_token` |
//!
//! A presented API key that the endpoint accepts wins over a bearer token; a wrong key is an
//! error even next to a good token; a method the endpoint does not accept is ignored.
//!
//! ## Example
//!
//! ```
//! use axum::{routing::post, Extension, Router};
//! use tower_mcp_auth::{ApiKeyRegistry, ApiKeySpec, Identity, McpAuth};
//!
//! // With the `axum` feature, `identity: Identity` works as an extractor directly.
//! async fn mcp(Extension(identity): Extension<Identity>) -> String {
//!     format!("hello {}", identity.name())
//! }
//!
//! let keys = ApiKeyRegistry::builder()
//!     .key("my-secret-key", ApiKeySpec::new("laptop").user_id("alice"))
//!     .build();
//! let app: Router = Router::new()
//!     .route("/mcp", post(mcp))
//!     .layer(McpAuth::builder().api_keys(keys).build().unwrap());
//! # let _ = app;
//! ```
//!
//! ## MCP-aware permissions
//!
//! [`McpAuthBuilder::mcp_permissions`] adds an [`McpPermissionsLayer`](mcp::McpPermissionsLayer) after the policy: it
//! reads each JSON-RPC request (single or batch) and checks its method and tool, prompt or
//! resource against the identity's operator-written permissions (`tools/call:search_*`,
//! `resources/read:docs://*`, `*`) or what its token scopes grant through a [`ScopeMap`]
//! (token scopes themselves match only literally), refusing with 403 `insufficient_scope` in a JSON-RPC error
//! envelope; it can also trim `tools/list` answers to the callable tools. See the [`mcp`]
//! module.
//!
//! ```
//! use tower_mcp_auth::{ApiKeyRegistry, ApiKeySpec, McpAuth, McpRules};
//!
//! let keys = ApiKeyRegistry::builder()
//!     .key("k-1", ApiKeySpec::new("bot").permissions(["tools/call:search_*"]))
//!     .build();
//! let auth = McpAuth::builder()
//!     .api_keys(keys)
//!     .mcp_permissions(McpRules::new().public(["tools/list"]).filter_tools_list(true))
//!     .build()
//!     .unwrap();
//! # let _ = auth;
//! ```
//!
//! ## Cargo features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `rust-crypto` | yes | jsonwebtoken's RustCrypto backend |
//! | `aws-lc-rs` | no | jsonwebtoken's aws-lc-rs backend (wins when both are on) |
//! | `axum` | no | [`Identity`] as an axum extractor; client IPs from axum's `ConnectInfo` |
//! | `redis` | no | `store::RedisStore` (Lua GCRA on server time, Cluster-ready keys; Redis 6.2+) |
//! | `redis-cluster` | no | `store::RedisStore` on a Redis Cluster (`redis+cluster://…`, `RedisStore::cluster_builder`) |
//! | `postgres` | no | `store::PostgresStore` (sqlx; Rust 1.94+) |
//! | `sqlite` | no | `store::SqliteStore` (sqlx, bundled SQLite; Rust 1.94+) |
//! | `keys` | no | `keys`: API keys created, rotated and revoked at run time in a `KeyStore`, synced into the registry (tokio); implied by `redis`, `postgres`, `sqlite` |
//! | `revocation` | no | `bearer::Revocations`: revoke tokens by `jti` or every token of a subject issued before a time (tokio) |
//! | `jwks` | no | `JwksVerifier`: keys from a remote JWK set or issuer discovery (reqwest, rustls, tokio) |
//! | `introspection` | no | `IntrospectionVerifier`: opaque tokens via RFC 7662 introspection |
//! | `oauth-client` | no | the `oauth` module: login with GitHub / Google / Microsoft / OIDC, session cookies, encrypted upstream tokens |
//! | `metrics` | no | counters and histograms through the `metrics` facade; see [`metrics`] |
//! | `oauth-server` | no | `oauth::server`: an embedded OAuth 2.1 authorization server for MCP clients (registration, PKCE, consent, its own JWT access tokens) |
//!
//! ## Error contract
//!
//! Every failure is a JSON body with `error`, `error_description` and `timestamp`,
//! `Cache-Control: no-store`, RFC 6750 / RFC 9728 challenges where OAuth is on, and an
//! [`AuthFailure`] in the response extensions; see [`AuthError`].
// `doc_auto_cfg` was folded into `doc_cfg` on current nightly (docs.rs builds with it); with
// `doc_cfg` on, rustdoc labels every feature-gated item with the feature it needs.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![forbid(unsafe_code)]

/// Internals for the `cargo fuzz` targets in `fuzz/`; not part of the API.
#[cfg(fuzzing)]
#[doc(hidden)]
#[path = "fuzz.rs"]
pub mod __fuzz;
pub mod api_key;
pub mod audit;
mod authenticate;
pub mod bearer;
mod body;
mod credentials;
mod deferred;
mod error;
#[cfg(feature = "token-exchange")]
pub mod exchange;
#[cfg(feature = "axum")]
mod extract;
mod identity;
#[cfg(any(feature = "oauth-client", feature = "token-exchange"))]
mod keyed_locks;
mod keyed_tag;
#[cfg(feature = "keys")]
pub mod keys;
pub mod mcp;
pub mod metadata;
pub mod metrics;
#[cfg(feature = "oauth-client")]
pub mod oauth;
pub mod origin;
mod outcome;
pub mod policy;
mod prehashed;
pub mod rate_limit;
mod scope_map;
mod stack;
pub mod store;
#[cfg(test)]
mod test_util;
mod time;

// The common path at the root; everything else in its middleware's module, as in tower-http.
pub use api_key::{ApiKeyRegistry, ApiKeySpec};
pub use authenticate::AuthenticateFuture;
pub use bearer::{JwtVerifier, TokenVerifier};
pub use body::ResponseBody;
pub use credentials::CredentialSources;
pub use deferred::{BoxFuture, Deferred};
pub use error::{
    AuthError, AuthFailure, AuthFailureKind, CredentialRejection, ErrorContext, OriginRejection,
    TokenRejection,
};
#[cfg(feature = "axum")]
pub use extract::MissingIdentity;
pub use identity::{AuthMethod, Identity, IdentityBuilder};
pub use mcp::McpRules;
pub use outcome::CredentialOutcome;
pub use policy::EndpointPolicy;
pub use scope_map::{IdentityMap, MapIdentity, ScopeMap, ScopeMapError};
pub use stack::{McpAuth, McpAuthBuilder, McpAuthLayer, McpAuthService};

/// The README's code blocks, compiled as doctests (they use the `axum` extractor).
#[cfg(all(doctest, feature = "axum"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
