//! Bearer token authentication: the [`BearerLayer`], the [`TokenVerifier`] trait and the
//! static-key [`JwtVerifier`].

mod audience;
mod cache;
mod claims;
mod crypto;
mod future;
#[cfg(feature = "introspection")]
mod introspection;
#[cfg(feature = "jwks")]
mod jwks;
mod jwt;
mod layer;
mod multi_issuer;
#[cfg(any(feature = "jwks", feature = "introspection"))]
mod remote;
mod service;
mod single_flight;
mod token_cache;
mod verifier;

pub use cache::{CachedVerifier, CachedVerifierBuilder, DEFAULT_CACHE_ENTRIES, DEFAULT_CACHE_TTL};
pub use claims::identity_from_claims;
pub use crypto::install_crypto_provider;
pub use future::BearerFuture;
#[cfg(feature = "introspection")]
pub use introspection::{
    ClientAuth, IntrospectionConfigError, IntrospectionVerifier, IntrospectionVerifierBuilder,
};
#[cfg(feature = "jwks")]
pub use jwks::{JwksConfigError, JwksError, JwksVerifier, JwksVerifierBuilder};
pub use jwt::{JwtConfigError, JwtKey, JwtVerifier, JwtVerifierBuilder, DEFAULT_LEEWAY};
pub use layer::BearerLayer;
pub use multi_issuer::{MultiIssuerError, MultiIssuerVerifier, MultiIssuerVerifierBuilder};
pub use service::BearerService;
pub use verifier::{TokenError, TokenVerifier};

/// Re-export of the `jsonwebtoken` types that appear in this crate's API.
pub use jsonwebtoken::{Algorithm, DecodingKey};

// Internals for `crate::__fuzz` (only `cargo fuzz` builds, `--cfg fuzzing`).
#[cfg(fuzzing)]
pub(crate) use claims::{normalize_token_type, token_type_accepted};
