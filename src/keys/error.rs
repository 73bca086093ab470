//! [`KeysError`].

use crate::store::StoreError;

/// A key-store operation failed. Messages never contain a key or a hash.
///
/// ```
/// use tower_mcp_auth::keys::KeysError;
///
/// assert_eq!(KeysError::NotFound.to_string(), "no API key with this id");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeysError {
    /// No key has this id.
    #[error("no API key with this id")]
    NotFound,
    /// The key is revoked: it cannot be rotated (create a new one).
    #[error("the API key is revoked")]
    Revoked,
    /// A key with this id or hash exists already.
    #[error("an API key with this id or hash exists already")]
    Conflict,
    /// The operating system's random number generator failed.
    #[error("no randomness for a new key: {0}")]
    Random(String),
    /// The backend failed (down, timed out, corrupt data).
    #[error(transparent)]
    Store(#[from] StoreError),
}
