//! Helpers for unit tests.

use std::future::Future;
use std::task::{Context, Poll, Waker};

/// Polls a future once; panics if it is not ready (every future under test here is).
pub(crate) fn now_or_never<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("future was not ready"),
    }
}

/// Collects a body that is already complete into bytes.
pub(crate) fn body_bytes<B>(body: B) -> bytes::Bytes
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    use http_body_util::BodyExt;
    now_or_never(body.collect()).unwrap().to_bytes()
}
