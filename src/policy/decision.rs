//! [`Decision`]: the policy the policy layer applied, left for the layers after it.

use std::sync::Arc;

use http::request::Parts;
use http::{HeaderMap, Uri};

use crate::error::ErrorContext;

use super::endpoint::EndpointPolicy;
use super::layer::PolicyConfig;

/// Which policy applied to a request, recorded once by the policy layer in the request
/// extensions, so that later layers (MCP permissions, refusal rendering) never resolve it
/// again: the user's resolver runs once per request.
///
/// The identity the policy chose is the [`Identity`](crate::Identity) extension next to it.
#[derive(Clone)]
pub(crate) struct Decision {
    config: Arc<PolicyConfig>,
    applied: Applied,
}

/// Where the applied policy lives: routes and the default are borrowed from the shared
/// configuration, only a resolver's answer is owned.
#[derive(Clone)]
pub(crate) enum Applied {
    Route(usize),
    Resolved(EndpointPolicy),
    Default,
}

impl Applied {
    /// The policy this names in `config`.
    pub(crate) fn policy<'a>(&'a self, config: &'a PolicyConfig) -> &'a EndpointPolicy {
        match self {
            Applied::Route(i) => &config.routes[*i].1,
            Applied::Resolved(policy) => policy,
            Applied::Default => &config.default,
        }
    }
}

impl Decision {
    pub(crate) fn new(config: Arc<PolicyConfig>, applied: Applied) -> Self {
        Self { config, applied }
    }

    /// The policy that applied.
    pub(crate) fn policy(&self) -> &EndpointPolicy {
        self.applied.policy(&self.config)
    }

    /// The endpoint as a bounded label for logs and metrics: the route pattern that matched,
    /// `resolver` or `default` (never the raw path).
    pub(crate) fn endpoint_label(&self) -> &str {
        match &self.applied {
            Applied::Route(i) => self.config.routes[*i].0.as_str(),
            Applied::Resolved(_) => "resolver",
            Applied::Default => "default",
        }
    }

    /// How a refusal for this request is rendered: the same challenge as the policy layer's.
    pub(crate) fn error_context(&self, parts: &Parts) -> ErrorContext<'_> {
        self.error_context_for(&parts.uri, &parts.headers)
    }

    /// [`error_context`](Self::error_context) from the request's URI and headers.
    pub(crate) fn error_context_for(&self, uri: &Uri, headers: &HeaderMap) -> ErrorContext<'_> {
        self.config.error_context(self.policy(), uri, headers)
    }
}
