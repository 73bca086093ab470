//! The response future shared by the identifying layers ([`ApiKeyLayer`](crate::api_key::ApiKeyLayer),
//! [`BearerLayer`](crate::bearer::BearerLayer)).
//!
//! An authenticator verifies a credential, inserts the outcome into the request extensions
//! and calls the inner service. When its store or verifier answers at once (the in-memory
//! case), the outcome is inserted inside `call` and this future only drives the inner
//! service's future; otherwise it first awaits the lookup. No boxing either way.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::Request;
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::deferred::Deferred;

pin_project! {
    /// Response future of [`ApiKeyService`](crate::api_key::ApiKeyService) and
    /// [`BearerService`](crate::bearer::BearerService): `T` is what the store or verifier returns,
    /// `O` the outcome inserted into the request extensions.
    pub struct AuthenticateFuture<S, ReqBody, T, O>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody, T, O>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody, T, O>
    where
        S: Service<Request<ReqBody>>,
    {
        // Boxed: this state exists only when the lookup itself is a boxed future (network
        // stores), and keeping the request inline would make every response future - the
        // in-memory fast path included - several hundred bytes to move around.
        Verifying { pending: Box<Pending<S, ReqBody, T, O>> },
        Calling { #[pin] future: S::Future },
    }
}

struct Pending<S, ReqBody, T, O> {
    lookup: Deferred<T>,
    to_outcome: fn(T) -> O,
    request: Option<Request<ReqBody>>,
    // A clone of the inner service that was made ready by `poll_ready`.
    service: S,
}

impl<S, ReqBody, T, O> AuthenticateFuture<S, ReqBody, T, O>
where
    S: Service<Request<ReqBody>>,
{
    pub(crate) fn calling(future: S::Future) -> Self {
        Self {
            state: State::Calling { future },
        }
    }

    pub(crate) fn verifying(
        lookup: Deferred<T>,
        to_outcome: fn(T) -> O,
        request: Request<ReqBody>,
        service: S,
    ) -> Self {
        Self {
            state: State::Verifying {
                pending: Box::new(Pending {
                    lookup,
                    to_outcome,
                    request: Some(request),
                    service,
                }),
            },
        }
    }
}

impl<S, ReqBody, T, O> Future for AuthenticateFuture<S, ReqBody, T, O>
where
    S: Service<Request<ReqBody>>,
    O: Clone + Send + Sync + 'static,
{
    type Output = Result<S::Response, S::Error>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Verifying { pending } => {
                    let found = ready!(Pin::new(&mut pending.lookup).poll(cx));
                    let mut request = pending
                        .request
                        .take()
                        .expect("AuthenticateFuture polled after completion");
                    request.extensions_mut().insert((pending.to_outcome)(found));
                    let future = pending.service.call(request);
                    this.state.set(State::Calling { future });
                }
                StateProj::Calling { future } => return future.poll(cx),
            }
        }
    }
}

/// Inserts an outcome that is known now and calls the inner service, or defers both until
/// the lookup completes. `inner` must have been made ready by `poll_ready`.
pub(crate) fn authenticate<S, ReqBody, T, O>(
    inner: &mut S,
    mut request: Request<ReqBody>,
    lookup: Deferred<T>,
    to_outcome: fn(T) -> O,
) -> AuthenticateFuture<S, ReqBody, T, O>
where
    S: Service<Request<ReqBody>> + Clone,
    O: Clone + Send + Sync + 'static,
{
    match lookup.try_into_ready() {
        Ok(found) => {
            request.extensions_mut().insert(to_outcome(found));
            AuthenticateFuture::calling(inner.call(request))
        }
        Err(lookup) => {
            // The ready service goes into the future; a fresh clone stays behind and will
            // be driven to readiness by the next `poll_ready` (tower's documented pattern).
            let clone = inner.clone();
            let ready = std::mem::replace(inner, clone);
            AuthenticateFuture::verifying(lookup, to_outcome, request, ready)
        }
    }
}
