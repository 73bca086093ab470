//! Response future of [`FailedAuthLimitService`](super::FailedAuthLimitService).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::body::{error_response, ResponseBody};
use crate::deferred::Deferred;
use crate::error::AuthFailure;
use crate::store::{Quota, StateStore, StoreError};

use super::super::gate::{Gate, Gated};
use super::super::store_key::StoreKey;

/// The bucket a request reserved a cell in, to refund once the response shows it did not
/// count.
pub(super) struct Tally {
    pub(super) store: Arc<dyn StateStore>,
    pub(super) key: StoreKey,
    pub(super) quota: Quota,
}

/// A reservation being given back, with the outcome it will then return.
struct Refunding<R, E> {
    write: Deferred<Result<(), StoreError>>,
    outcome: Option<Result<R, E>>,
}

pin_project! {
    /// Response future of [`FailedAuthLimitService`](super::FailedAuthLimitService).
    pub struct FailedAuthLimitFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        // `tally` is there when the request is counted: a cell is reserved (or being
        // reserved) in it.
        Gating { #[pin] gate: Gate<S, ReqBody>, tally: Option<Tally> },
        Refunding { refunding: Box<Refunding<S::Response, S::Error>> },
    }
}

impl<S, ReqBody> FailedAuthLimitFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    /// Nothing to count (no credential, no client address, or the layer is off).
    pub(super) fn unlimited(future: S::Future) -> Self {
        Self::gating(Gate::calling(future), None)
    }

    /// Counted: a cell is being reserved in `tally`, and the store's answer gates the call.
    pub(super) fn gated(gate: Gate<S, ReqBody>, tally: Tally) -> Self {
        Self::gating(gate, Some(tally))
    }

    fn gating(gate: Gate<S, ReqBody>, tally: Option<Tally>) -> Self {
        Self {
            state: State::Gating { gate, tally },
        }
    }
}

impl<S, ReqBody, ResBody> Future for FailedAuthLimitFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Gating { gate, tally } => {
                    let (outcome, decision) = match ready!(gate.poll(cx)) {
                        Gated::Called { outcome, decision } => (outcome, decision),
                        Gated::Denied(response) => {
                            if response.status() == http::StatusCode::TOO_MANY_REQUESTS {
                                crate::metrics::lockout();
                            }
                            return Poll::Ready(Ok(error_response(response)));
                        }
                    };
                    // Without a decision (the store failed open) nothing was reserved, so
                    // there is nothing to refund.
                    let Some(tally) = tally.take().filter(|_| decision.is_some()) else {
                        return Poll::Ready(outcome.map(|r| r.map(ResponseBody::inner)));
                    };
                    let failed = outcome.as_ref().is_ok_and(|response| {
                        response
                            .extensions()
                            .get::<AuthFailure>()
                            .is_some_and(AuthFailure::is_invalid_credential)
                    });
                    if failed {
                        // The reserved cell is the record of this failure.
                        if decision.is_some_and(|d| d.remaining == 0) {
                            tracing::warn!(
                                "Too many failed authentication attempts: client locked out"
                            );
                        }
                        return Poll::Ready(outcome.map(|r| r.map(ResponseBody::inner)));
                    }
                    // Valid, missing-but-accepted, refused for another reason, or an error:
                    // none of these count, so the reservation is given back.
                    let write = tally.store.gcra_refund(&tally.key, tally.quota, 1);
                    match write.try_into_ready() {
                        Ok(result) => {
                            log_refund(result);
                            return Poll::Ready(outcome.map(|r| r.map(ResponseBody::inner)));
                        }
                        Err(write) => this.state.set(State::Refunding {
                            refunding: Box::new(Refunding {
                                write,
                                outcome: Some(outcome),
                            }),
                        }),
                    }
                }
                StateProj::Refunding { refunding } => {
                    let result = ready!(Pin::new(&mut refunding.write).poll(cx));
                    log_refund(result);
                    let outcome = refunding
                        .outcome
                        .take()
                        .expect("FailedAuthLimitFuture polled after completion");
                    return Poll::Ready(outcome.map(|r| r.map(ResponseBody::inner)));
                }
            }
        }
    }
}

/// A refund never changes the response; a store error is only logged (the reserved cell then
/// drains at the quota's rate, like a failure).
fn log_refund(result: Result<(), StoreError>) {
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not refund a failed-auth reservation");
    }
}
