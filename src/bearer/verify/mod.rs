//! Token verifiers: static-key JWTs ([`JwtVerifier`]), remote JWK sets ([`JwksVerifier`],
//! feature `jwks`), RFC 7662 introspection ([`IntrospectionVerifier`], feature
//! `introspection`) and several issuers at once ([`MultiIssuerVerifier`]), with what they
//! share: claims to [`Identity`](crate::Identity), canonical audiences, the crypto provider
//! and the HTTP fetching of the remote verifiers.

pub(in crate::bearer) mod audience;
pub(in crate::bearer) mod claims;
pub(in crate::bearer) mod crypto;
#[cfg(feature = "introspection")]
mod introspection;
#[cfg(feature = "jwks")]
mod jwks;
pub(in crate::bearer) mod jwt;
mod multi_issuer;
#[cfg(any(
    feature = "jwks",
    feature = "introspection",
    feature = "token-exchange"
))]
pub(crate) mod remote;

pub use claims::identity_from_claims;
pub use crypto::install_crypto_provider;
#[cfg(feature = "introspection")]
pub use introspection::{
    IntrospectionConfigError, IntrospectionVerifier, IntrospectionVerifierBuilder,
};
#[cfg(feature = "jwks")]
pub use jwks::{JwksConfigError, JwksError, JwksVerifier, JwksVerifierBuilder};
pub use jwt::{JwtConfigError, JwtKey, JwtVerifier, JwtVerifierBuilder, DEFAULT_LEEWAY};
pub use multi_issuer::{MultiIssuerError, MultiIssuerVerifier, MultiIssuerVerifierBuilder};
#[cfg(any(feature = "introspection", feature = "token-exchange"))]
pub use remote::ClientAuth;
