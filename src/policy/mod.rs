//! Per-endpoint decisions: the [`EndpointPolicyLayer`] and [`EndpointPolicy`].

mod canonical;
mod decide;
mod decision;
mod endpoint;
mod future;
mod layer;
mod pattern;
mod service;

/// For the other layers that match paths (MCP rules, metadata routing): match on this.
#[allow(unused_imports)]
pub(crate) use canonical::canonicalize;
pub use canonical::{CanonicalPath, PathRejection};
pub(crate) use decision::Decision;
pub use endpoint::{EndpointPolicy, Owner};
pub use future::PolicyFuture;
pub use layer::{EndpointPolicyLayer, EndpointPolicyLayerBuilder, PolicyError};
pub use pattern::PathPattern;
pub use service::EndpointPolicyService;
