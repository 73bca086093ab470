//! A simple in-memory failed-auth lockout per client IP for the examples.
//!
//! It counts only responses whose `AuthFailure` marks a presented-but-wrong credential
//! (never a missing one, so an OAuth discovery probe cannot lock anyone out). After `limit`
//! failures inside `window`, requests from that IP that carry a credential get 429 with
//! `Retry-After` until the window ends. The crate's store-backed `RateLimitLayer` is the
//! production version of this.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_mcp_auth::{AuthError, AuthFailure, ErrorContext};

#[derive(Clone)]
pub struct FailedAuthLockout {
    limit: u32,
    window: Duration,
    failures: Arc<Mutex<HashMap<IpAddr, (u32, Instant)>>>,
}

impl FailedAuthLockout {
    /// Wraps `app` so that every request passes through the lockout first.
    pub fn wrap(app: Router, limit: u32, window: Duration) -> Router {
        let lockout = FailedAuthLockout {
            limit,
            window,
            failures: Arc::default(),
        };
        app.layer(middleware::from_fn_with_state(lockout, handle))
    }

    fn locked_for(&self, ip: IpAddr) -> Option<Duration> {
        let failures = self.failures.lock().unwrap();
        let (count, since) = failures.get(&ip)?;
        let elapsed = since.elapsed();
        (*count >= self.limit && elapsed < self.window).then(|| self.window - elapsed)
    }

    fn record_failure(&self, ip: IpAddr) {
        let mut failures = self.failures.lock().unwrap();
        let entry = failures.entry(ip).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= self.window {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }
}

async fn handle(State(lockout): State<FailedAuthLockout>, req: Request, next: Next) -> Response {
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let has_credential = req.headers().contains_key("x-api-key")
        || req.headers().contains_key("authorization")
        || req
            .uri()
            .query()
            .is_some_and(|q| q.contains("api_key=") || q.contains("apikey="));
    if let (Some(ip), true) = (ip, has_credential) {
        if let Some(retry_after) = lockout.locked_for(ip) {
            tracing::warn!(%ip, "Too many failed authentication attempts");
            return AuthError::TooManyRequests { retry_after }
                .to_response(&ErrorContext::new(false, false))
                .into_response();
        }
    }
    let res = next.run(req).await;
    if let (Some(ip), Some(failure)) = (ip, res.extensions().get::<AuthFailure>()) {
        if failure.is_invalid_credential() {
            lockout.record_failure(ip);
        }
    }
    res
}
