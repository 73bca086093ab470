//! Tests that capture `tracing` output, in their own binary: `tracing` caches callsite
//! interest per process, so tests that log without a subscriber must not run beside them.

#[path = "../common/mod.rs"]
mod common;
#[cfg(feature = "oauth-client")]
#[path = "../oauth_common/mod.rs"]
mod oauth_common;

mod base_url_warning;
mod oauth_logs;
