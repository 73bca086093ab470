//! Token revocation (feature `revocation`): [`Revocations`], a denylist by `jti` and
//! per-subject kill-switches shared through the `StateStore`, checked on every verified
//! token by [`RevocationVerifier`] against a local snapshot refreshed every second.

mod list;
mod revocations;
mod verifier;

pub use revocations::{
    Revocations, RevocationsBuilder, DEFAULT_MAX_TOKEN_LIFETIME, DEFAULT_REVOCATION_REFRESH,
};
pub use verifier::RevocationVerifier;
