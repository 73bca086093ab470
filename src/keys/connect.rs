//! [`connect`]: a key store from a URL, as for the state stores.

use std::sync::Arc;

use crate::store::{self, Opened};

use super::error::KeysError;
use super::memory::MemoryKeyStore;
use super::store::KeyStore;

/// Opens the key store a URL names (`KEY_STORE_URL` in `examples/keys.rs`), with the same
/// URLs as [`store::connect`](crate::store::connect): `memory` (a fresh [`MemoryKeyStore`]),
/// `redis://`, `postgres://` (migrations run) or `sqlite:path`, each needing its feature.
/// One database can hold both the state store and the keys.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let keys = tower_mcp_auth::keys::connect("memory").await.unwrap();
/// assert!(keys.list().await.unwrap().is_empty());
/// assert!(tower_mcp_auth::keys::connect("ftp://nope").await.is_err());
/// # });
/// ```
///
/// # Errors
///
/// [`KeysError::Store`] for an unknown scheme, a missing feature or a connection error.
pub async fn connect(url: &str) -> Result<Arc<dyn KeyStore>, KeysError> {
    Ok(match store::open(url).await? {
        Opened::Memory => Arc::new(MemoryKeyStore::new()),
        #[cfg(feature = "redis")]
        Opened::Redis(store) => Arc::new(store),
        #[cfg(feature = "postgres")]
        Opened::Postgres(store) => Arc::new(store),
        #[cfg(feature = "sqlite")]
        Opened::Sqlite(store) => Arc::new(store),
    })
}
