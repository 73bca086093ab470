//! Response future of [`ApiKeyService`](super::ApiKeyService).

use crate::authenticate::AuthenticateFuture;
use crate::outcome::ApiKeyOutcome;

use super::registry::{KeyLookupError, StoredKey};

/// Response future of [`ApiKeyService`](super::ApiKeyService).
pub type ApiKeyFuture<S, ReqBody> =
    AuthenticateFuture<S, ReqBody, Result<Option<StoredKey>, KeyLookupError>, ApiKeyOutcome>;
