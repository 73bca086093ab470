//! Per-endpoint decisions: the [`EndpointPolicyLayer`] and [`EndpointPolicy`].

mod decide;
mod endpoint;
mod future;
mod layer;
mod pattern;
mod service;

pub use endpoint::{EndpointPolicy, Owner};
pub use future::PolicyFuture;
pub(crate) use layer::PolicyConfig;
pub use layer::{EndpointPolicyLayer, EndpointPolicyLayerBuilder, PolicyError};
pub use pattern::PathPattern;
pub use service::EndpointPolicyService;
