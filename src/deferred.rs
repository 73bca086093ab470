//! [`Deferred`]: a value that is either ready now or computed by a boxed future.
//!
//! Key stores, token verifiers and state stores answer most requests from memory. Returning
//! `Pin<Box<dyn Future>>` from their traits would allocate on every request; returning
//! `Deferred` lets the in-memory path answer with [`Deferred::ready`] (no allocation) while a
//! network-backed implementation returns [`Deferred::boxed`]. The traits stay object safe.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A boxed, `Send` future, as returned by network-backed stores and verifiers.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A value that is either available now or produced later by a boxed future.
///
/// `Deferred` is itself a [`Future`], so callers simply `.await` it (or poll it from a
/// hand-written service future).
///
/// ```
/// use tower_mcp_auth::Deferred;
///
/// # async fn demo() {
/// let now = Deferred::ready(1);
/// let later = Deferred::boxed(async { 2 });
/// assert_eq!(now.await + later.await, 3);
/// # }
/// ```
#[must_use = "a Deferred does nothing unless polled or awaited"]
pub struct Deferred<T> {
    inner: Inner<T>,
}

enum Inner<T> {
    Ready(Option<T>),
    Boxed(BoxFuture<T>),
}

impl<T> Deferred<T> {
    /// A value that is already known. Polling it returns the value at once.
    pub fn ready(value: T) -> Self {
        Self {
            inner: Inner::Ready(Some(value)),
        }
    }

    /// A value that a future will produce.
    pub fn boxed<F>(future: F) -> Self
    where
        F: Future<Output = T> + Send + 'static,
    {
        Self {
            inner: Inner::Boxed(Box::pin(future)),
        }
    }

    /// Returns the value without polling if it is already known.
    ///
    /// Services use this to skip a state-machine step on the in-memory fast path.
    pub fn try_into_ready(self) -> Result<T, Self> {
        match self.inner {
            Inner::Ready(Some(value)) => Ok(value),
            inner => Err(Self { inner }),
        }
    }
}

// The value is never pinned in place (it is moved out of the `Option`), and the boxed future
// is pinned on the heap, so `Deferred` can be moved freely whatever `T` is.
impl<T> Unpin for Deferred<T> {}

impl<T> Future for Deferred<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match &mut self.get_mut().inner {
            Inner::Ready(value) => Poll::Ready(
                value
                    .take()
                    .expect("Deferred polled after it returned its value"),
            ),
            Inner::Boxed(future) => future.as_mut().poll(cx),
        }
    }
}

impl<T> fmt::Debug for Deferred<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.inner {
            Inner::Ready(_) => f.write_str("Deferred::Ready"),
            Inner::Boxed(_) => f.write_str("Deferred::Boxed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_value_is_returned_without_a_runtime() {
        let d = Deferred::ready(7);
        assert_eq!(d.try_into_ready().unwrap(), 7);
    }

    #[test]
    fn boxed_value_is_not_ready_until_polled() {
        let d = Deferred::boxed(async { 7 });
        let mut d = d.try_into_ready().unwrap_err();
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert_eq!(Pin::new(&mut d).poll(&mut cx), Poll::Ready(7));
    }
}
