//! Integration tests, one binary (it): one module per area (the former
//! `tests/<area>.rs` files, test names unchanged), so the crate, axum, rmcp and reqwest are
//! linked once instead of once per file.

#[path = "../common/mod.rs"]
mod common;
#[path = "../example_process/mod.rs"]
mod example_process;
#[path = "../idp/mod.rs"]
mod idp;
#[cfg(feature = "oauth-client")]
#[path = "../oauth_common/mod.rs"]
mod oauth_common;
#[path = "../store_common/mod.rs"]
mod store_common;

mod audit;
mod contract;
mod extractor;
mod four_modes_example;
mod fuzz_regressions;
mod identity;
mod introspection;
mod jwks;
mod jwt;
mod key_registry;
mod key_store;
mod malformed;
mod mcp_discovery_flow;
mod mcp_permissions;
#[cfg(feature = "metrics")]
mod metrics;
mod modes;
mod node_interop;
mod oauth_authorize;
mod oauth_config;
mod oauth_example;
mod oauth_login;
mod oauth_redis;
mod oauth_server;
mod oauth_upstream;
mod origin;
mod paths;
mod rate_limit;
mod revocation;
mod rmcp_example;
mod server_examples;
mod session_cookie;
mod soak;
mod store_conformance;
mod token_exchange;
mod tool_quotas;
mod two_clients;
