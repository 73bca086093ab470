//! Bearer token authentication: the [`BearerLayer`], the [`TokenVerifier`] trait and the
//! static-key [`JwtVerifier`].

mod claims;
mod crypto;
mod future;
mod jwt;
mod layer;
mod service;
mod verifier;

pub use claims::identity_from_claims;
pub use crypto::install_crypto_provider;
pub use future::BearerFuture;
pub use jwt::{JwtConfigError, JwtKey, JwtVerifier, JwtVerifierBuilder, DEFAULT_LEEWAY};
pub use layer::BearerLayer;
pub use service::BearerService;
pub use verifier::{TokenError, TokenVerifier};

/// Re-export of the `jsonwebtoken` types that appear in this crate's API.
pub use jsonwebtoken::{Algorithm, DecodingKey};
