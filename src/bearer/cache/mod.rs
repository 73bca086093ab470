//! Caches in front of slow verifiers: [`CachedVerifier`] (any [`TokenVerifier`]), the
//! sharded token map it shares with the introspection cache, and single-flight verification
//! (concurrent first requests with one token cost one verification).
//!
//! [`TokenVerifier`]: super::TokenVerifier

mod cached_verifier;
pub(in crate::bearer) mod single_flight;
pub(in crate::bearer) mod token_cache;

pub use cached_verifier::{
    CachedVerifier, CachedVerifierBuilder, DEFAULT_CACHE_ENTRIES, DEFAULT_CACHE_TTL,
};
