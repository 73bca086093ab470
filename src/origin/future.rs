//! Response future of [`OriginService`](super::OriginService).

/// Response future of [`OriginService`](super::OriginService): the inner service's future,
/// or a ready 403. The same future as the policy layer's: both either pass the request on or
/// answer with the error contract.
pub type OriginFuture<F> = crate::policy::PolicyFuture<F>;
