//! Response future of [`BearerService`](super::BearerService).

use crate::authenticate::AuthenticateFuture;
use crate::identity::Identity;
use crate::outcome::BearerOutcome;

use super::verifier::TokenError;

/// Response future of [`BearerService`](super::BearerService).
pub type BearerFuture<S, ReqBody> =
    AuthenticateFuture<S, ReqBody, Result<Identity, TokenError>, BearerOutcome>;
