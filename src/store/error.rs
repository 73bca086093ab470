//! [`StoreError`]: what can go wrong when talking to a [`StateStore`](super::StateStore).

use std::borrow::Cow;
use std::error::Error as StdError;

/// A boxed error from a backend driver, kept as the `source` of a [`StoreError`].
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// An error from a [`StateStore`](super::StateStore).
///
/// Messages never contain keys, values or connection strings: keys can be token hashes or
/// OAuth `state` values, and URLs can carry passwords. Layers decide what to do with an error
/// from [`is_unavailable`](Self::is_unavailable) (fail open or answer 503) and never need to
/// parse the message.
///
/// ```
/// use tower_mcp_auth::store::StoreError;
///
/// let err = StoreError::Timeout { backend: "redis" };
/// assert!(err.is_unavailable());
/// assert_eq!(err.to_string(), "redis state store timed out");
///
/// let err = StoreError::CostExceedsBurst { cost: 5, burst: 3 };
/// assert!(!err.is_unavailable());
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend could not be reached or dropped the connection.
    #[error("{backend} state store is unavailable")]
    Unavailable {
        /// Which backend (`"redis"`, `"postgres"`, `"sqlite"`).
        backend: &'static str,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// The backend did not answer in time (response, pool acquire or lock timeout).
    #[error("{backend} state store timed out")]
    Timeout {
        /// Which backend.
        backend: &'static str,
    },
    /// The backend answered with data this crate did not write (wrong type or format).
    #[error("{backend} state store holds corrupt data: {detail}")]
    Corrupt {
        /// Which backend.
        backend: &'static str,
        /// What was wrong, without the key or the value.
        detail: &'static str,
    },
    /// Any other error reported by the backend (for example a rejected statement).
    #[error("{backend} state store error")]
    Backend {
        /// Which backend.
        backend: &'static str,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// A GCRA request asked for more cells than the quota's burst: it can never be allowed,
    /// however long the caller waits. Nothing was consumed.
    #[error("a cost of {cost} can never be allowed by a quota with a burst of {burst}")]
    CostExceedsBurst {
        /// The requested cost.
        cost: u32,
        /// The quota's burst size.
        burst: u32,
    },
    /// An argument was rejected before reaching the backend (for example a zero TTL).
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// A store could not be built from its configuration (bad URL, prefix or schema name).
    #[error("invalid state store configuration: {0}")]
    Config(Cow<'static, str>),
}

impl StoreError {
    /// `true` when the backend is down or too slow, i.e. when the request itself was fine
    /// and a fail-open / fail-closed policy should decide.
    ///
    /// ```
    /// use tower_mcp_auth::store::StoreError;
    ///
    /// assert!(StoreError::Timeout { backend: "postgres" }.is_unavailable());
    /// assert!(!StoreError::InvalidArgument("ttl must be non-zero").is_unavailable());
    /// ```
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::Timeout { .. })
    }

    #[allow(dead_code)] // used by the optional backends only
    pub(crate) fn unavailable(backend: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Unavailable {
            backend,
            source: source.into(),
        }
    }

    #[allow(dead_code)] // used by the optional backends only
    pub(crate) fn backend(backend: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Backend {
            backend,
            source: source.into(),
        }
    }
}

/// Rejects a zero TTL: every backend would treat it differently (Redis refuses `PX 0`).
pub(crate) fn check_ttl(ttl: std::time::Duration) -> Result<(), StoreError> {
    if ttl.is_zero() {
        Err(StoreError::InvalidArgument("ttl must be non-zero"))
    } else {
        Ok(())
    }
}
