//! API key authentication: the [`ApiKeyLayer`], the [`KeyLookup`] trait and the in-memory
//! [`ApiKeyRegistry`] loaded from `MCP_API_KEYS`.
//!
//! Keys are held only as SHA-256 hashes ([`KeyHash`]), compared in constant time; the
//! plaintext of a key exists only in the request that carries it.

mod future;
mod keygen;
mod layer;
mod registry;
mod service;
mod verified;

pub use future::ApiKeyFuture;
pub use keygen::{generate_api_key, GeneratedApiKey, API_KEY_PREFIX};
pub use layer::ApiKeyLayer;
pub use registry::{
    ApiKeyRegistry, ApiKeyRegistryBuilder, ApiKeySpec, KeyHash, KeyLookup, KeyLookupError,
    RegistryError, StoredKey, DEFAULT_VERIFIED_KEYS, MCP_API_KEYS_ENV,
};
pub use service::ApiKeyService;

pub use crate::credentials::API_KEY_HEADER;
pub use crate::outcome::ApiKeyOutcome;
