//! [`FailedAuthLimitLayer`]: failed-auth lockout per client IP.
//!
//! Only responses whose [`AuthFailure`](crate::AuthFailure) marks a presented-but-wrong credential count; a
//! *missing* credential never does, so an MCP client's OAuth discovery probe (a request with
//! no credential, answered 401) can never lock anyone out. While a client is locked out, its
//! requests that carry a credential get 429; requests without one pass (and get their 401 or
//! public answer), and successes never count.
//!
//! Credentialed requests reserve their failure before the call and are refunded after.

mod future;
mod layer;
mod service;

pub use future::FailedAuthLimitFuture;
pub use layer::FailedAuthLimitLayer;
pub use service::FailedAuthLimitService;
