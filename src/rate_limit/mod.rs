//! Rate limiting on the [`StateStore`](crate::store::StateStore):
//! [`RateLimitLayer`] (per-identity quotas) and [`FailedAuthLimitLayer`] (failed-auth lockout
//! per client IP).

mod client_ip;
mod future;
mod gate;
mod headers;
pub(crate) use headers::insert_rate_limit_headers;
mod key;
mod layer;
mod lockout;
mod service;
mod store_key;
mod tool;

pub use client_ip::{
    ClientAddr, ClientIpResolver, ForwardedHeader, InvalidForwardedHeader, InvalidProxyNetwork,
};
pub use future::RateLimitFuture;
pub use key::RateLimitKey;
pub use layer::{FailMode, RateLimitLayer};
pub use lockout::{FailedAuthLimitFuture, FailedAuthLimitLayer, FailedAuthLimitService};
pub use service::RateLimitService;
pub use tool::ToolQuotas;
pub(crate) use tool::{ToolCheck, ToolVerdict};
