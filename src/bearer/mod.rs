//! Bearer token authentication: the [`BearerLayer`] middleware (layer, service, future), the
//! [`TokenVerifier`] trait, the verifiers in `verify/` ([`JwtVerifier`] and the remote ones)
//! and the caches in `cache/` ([`CachedVerifier`]).

mod cache;
mod future;
mod layer;
#[cfg(feature = "revocation")]
mod revocation;
mod service;
mod verifier;
mod verify;

pub use cache::{CachedVerifier, CachedVerifierBuilder, DEFAULT_CACHE_ENTRIES, DEFAULT_CACHE_TTL};
pub use future::BearerFuture;
pub use layer::BearerLayer;
#[cfg(feature = "revocation")]
pub use revocation::{
    RevocationVerifier, Revocations, RevocationsBuilder, DEFAULT_MAX_TOKEN_LIFETIME,
    DEFAULT_REVOCATION_REFRESH,
};
pub use service::BearerService;
pub use verifier::{TokenError, TokenVerifier};

pub use crate::outcome::BearerOutcome;
#[cfg(feature = "token-exchange")]
pub(crate) use verify::remote;
#[cfg(any(feature = "introspection", feature = "token-exchange"))]
pub use verify::ClientAuth;
pub use verify::{
    identity_from_claims, install_crypto_provider, JwtConfigError, JwtKey, JwtVerifier,
    JwtVerifierBuilder, MultiIssuerError, MultiIssuerVerifier, MultiIssuerVerifierBuilder,
    DEFAULT_LEEWAY,
};
#[cfg(feature = "introspection")]
pub use verify::{IntrospectionConfigError, IntrospectionVerifier, IntrospectionVerifierBuilder};
#[cfg(feature = "jwks")]
pub use verify::{JwksConfigError, JwksError, JwksVerifier, JwksVerifierBuilder};

/// Re-export of the `jsonwebtoken` types that appear in this crate's API.
pub use jsonwebtoken::{Algorithm, DecodingKey};

// Internals for `crate::__fuzz` (only `cargo fuzz` builds, `--cfg fuzzing`).
#[cfg(fuzzing)]
pub(crate) use verify::audience::canonical_resource;
#[cfg(fuzzing)]
pub(crate) use verify::claims::{normalize_token_type, token_type_accepted};
