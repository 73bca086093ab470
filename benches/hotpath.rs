//! Sends N requests through one stack in an axum `Router` with a JSON handler, in process and
//! without a runtime, so `valgrind --tool=callgrind` can count the instructions per request.
//!
//! `scripts/callgrind.sh` runs this twice per stack with different N and divides the
//! difference by the difference of N: start-up (router construction, the first allocation of
//! every table) cancels out, and what is left is the steady-state cost of one request,
//! repeatable to the instruction.
//!
//! ```text
//! cargo build --profile bench --bench hotpath
//! target/release/deps/hotpath-<hash> <stack> <n>
//! ```
//!
//! Stacks (`benches/support/stacks.rs`): `bare`, `key` (full `McpAuth` stack, valid API key),
//! `limited` (the same plus the failed-auth lockout and a per-identity quota on a
//! `MemoryStore`), `cached_token` (HS256 token through a `CachedVerifier`, a cache hit after
//! the first request), `uncached_token` (the same token verified every time), `audited`
//! (`limited` plus the audit layer with its default `tracing` sink, filtered off),
//! `audited_events` (`limited` plus an audit sink that takes every event) and, built with
//! `--features metrics`, `metered` (`audited` plus the metrics into a Prometheus recorder);
//! `key_audited`, `key_events`, `key_metered`: the same on the `key` stack, whose count does
//! not depend on the clock (the limiters' store sweeps do).

#[path = "support/stacks.rs"]
mod stacks;

use std::future::Future;
use std::hint::black_box;
use std::net::SocketAddr;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use axum::body::Body;
use axum::extract::ConnectInfo;
use http::Request;
use tower::Service;

/// Drives a future that completes without waiting (every future here does).
fn now<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1).peekable();
    // `cargo bench` runs every bench target with `--bench`; this one runs through the script.
    if args.peek().is_some_and(|a| a.starts_with("--")) {
        eprintln!("benches/hotpath.rs runs through scripts/callgrind.sh");
        return;
    }
    let stack = args.next().unwrap_or_else(|| "bare".into());
    let n: u64 = args.next().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let Some((router, (name, value))) = stacks::build(&stack) else {
        eprintln!("unknown stack {stack:?}; one of {:?}", stacks::STACKS);
        std::process::exit(2);
    };
    // What `axum::serve` does (`into_make_service*` calls `with_state(())`): the routes are
    // turned into services once. Without it the Router would rebuild every layered route on
    // each request, a cost no server pays.
    let mut router = router.with_state::<()>(());
    // One request outside the measured loop: lazy statics (the TSC calibration of
    // `MemoryStore`'s clock, whose instruction count varies from run to run) are set up here.
    send(&mut router, name, &value);
    measure(&mut router, name, &value, n);
}

/// Sends `n` requests. `scripts/callgrind.sh` counts only inside this function
/// (`--toggle-collect`), so set-up never blurs the figure.
#[inline(never)]
fn measure(router: &mut axum::Router, name: &'static str, value: &str, n: u64) {
    for _ in 0..n {
        send(router, name, value);
    }
}

fn send(router: &mut axum::Router, name: &'static str, value: &str) {
    let mut cx = Context::from_waker(Waker::noop());
    assert!(Service::<Request<Body>>::poll_ready(router, &mut cx).is_ready());
    let mut req = Request::post("/mcp")
        .header(name, value)
        .body(Body::empty())
        .expect("request");
    // What `into_make_service_with_connect_info` gives every request in a server.
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    let res = now(router.call(req)).expect("infallible");
    assert_eq!(res.status(), 200, "the stack must let the request through");
    black_box(res);
}
