//! Response future of [`FailedAuthLimitService`](super::FailedAuthLimitService).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::body::{error_response, ResponseBody};
use crate::deferred::Deferred;
use crate::error::AuthFailure;
use crate::store::{Quota, RateDecision, StateStore, StoreError};

use super::super::gate::{PendingCheck, Verdict};

/// Where to record a failure once the response is known.
pub(super) struct Tally {
    pub(super) store: Arc<dyn StateStore>,
    pub(super) key: String,
    pub(super) quota: Quota,
}

/// A counted request waiting for the store's "locked out?" answer.
struct Checking<S, ReqBody> {
    pending: Box<PendingCheck<S, ReqBody>>,
    tally: Option<Tally>,
}

/// A failure being written to the store, with the response it will then return.
struct Recording<R> {
    write: Deferred<Result<RateDecision, StoreError>>,
    response: Option<R>,
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
        Checking { checking: Checking<S, ReqBody> },
        Calling { #[pin] future: S::Future, tally: Option<Tally> },
        Recording { recording: Box<Recording<S::Response>> },
        Denied { response: Option<Response<Full<Bytes>>> },
    }
}

impl<S, ReqBody> FailedAuthLimitFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    /// Nothing to count (no credential, no client address, or the layer is off).
    pub(super) fn unlimited(future: S::Future) -> Self {
        Self {
            state: State::Calling {
                future,
                tally: None,
            },
        }
    }

    pub(super) fn decided(verdict: Verdict<S::Future>, tally: Tally) -> Self {
        Self {
            state: State::decided(verdict, Some(tally)),
        }
    }

    pub(super) fn checking(pending: Box<PendingCheck<S, ReqBody>>, tally: Tally) -> Self {
        Self {
            state: State::Checking {
                checking: Checking {
                    pending,
                    tally: Some(tally),
                },
            },
        }
    }
}

impl<S, ReqBody> State<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    /// The peek only decides whether to call; a failure is recorded after the response.
    fn decided(verdict: Verdict<S::Future>, tally: Option<Tally>) -> Self {
        match verdict {
            Verdict::Call { future, .. } => State::Calling { future, tally },
            Verdict::Deny(response) => State::Denied {
                response: Some(response),
            },
        }
    }
}

impl<S, ReqBody, ResBody> Future for FailedAuthLimitFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Checking { checking } => {
                    let verdict = ready!(checking.pending.poll(cx));
                    let tally = checking.tally.take();
                    this.state.set(State::decided(verdict, tally));
                }
                StateProj::Calling { future, tally } => {
                    let response = ready!(future.poll(cx))?;
                    let failed = response
                        .extensions()
                        .get::<AuthFailure>()
                        .is_some_and(AuthFailure::is_invalid_credential);
                    let Some(tally) = tally.take().filter(|_| failed) else {
                        return Poll::Ready(Ok(response.map(ResponseBody::inner)));
                    };
                    let write = tally.store.gcra(&tally.key, tally.quota, 1);
                    match write.try_into_ready() {
                        Ok(result) => {
                            log_write(result);
                            return Poll::Ready(Ok(response.map(ResponseBody::inner)));
                        }
                        Err(write) => this.state.set(State::Recording {
                            recording: Box::new(Recording {
                                write,
                                response: Some(response),
                            }),
                        }),
                    }
                }
                StateProj::Recording { recording } => {
                    let result = ready!(Pin::new(&mut recording.write).poll(cx));
                    log_write(result);
                    let response = recording
                        .response
                        .take()
                        .expect("FailedAuthLimitFuture polled after completion");
                    return Poll::Ready(Ok(response.map(ResponseBody::inner)));
                }
                StateProj::Denied { response } => {
                    let response = response
                        .take()
                        .expect("FailedAuthLimitFuture polled after completion");
                    return Poll::Ready(Ok(error_response(response)));
                }
            }
        }
    }
}

/// Recording a failure never changes the response; a store error is only logged.
fn log_write(result: Result<RateDecision, StoreError>) {
    match result {
        Ok(decision) if !decision.allowed => {
            tracing::warn!("Too many failed authentication attempts: client locked out");
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not record a failed authentication"),
    }
}
