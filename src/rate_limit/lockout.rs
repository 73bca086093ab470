//! [`FailedAuthLimitLayer`]: failed-auth lockout per client IP.
//!
//! Only responses whose [`AuthFailure`] marks a presented-but-wrong credential count; a
//! *missing* credential never does, so an MCP client's OAuth discovery probe (a request with
//! no credential, answered 401) can never lock anyone out. While a client is locked out, its
//! requests that carry a credential get 429; requests without one pass (and get their 401 or
//! public answer), and successes never count.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::body::{error_response, ResponseBody};
use crate::credentials;
use crate::deferred::Deferred;
use crate::error::AuthFailure;
use crate::store::{Quota, RateDecision, StateStore, StoreError};

use super::client_ip::ClientIpResolver;
use super::layer::FailMode;
use super::service::{verdict, Verdict};

struct LockoutConfig {
    store: Arc<dyn StateStore>,
    quota: Quota,
    resolver: ClientIpResolver,
    fail_mode: FailMode,
    /// A session cookie that carries a bearer token counts as a presented credential.
    cookie: Option<Arc<str>>,
}

/// Locks out client IPs that present too many wrong credentials. Place it outermost, before
/// the authenticators, so it sees every refusal's [`AuthFailure`].
///
/// `quota` is the failure budget: `Quota::per_minute(20)` allows a burst of 20 wrong
/// credentials, then one more every 3 seconds (GCRA); a locked-out client is told when to
/// retry in `Retry-After`. Shared through a Redis store, every instance enforces one lockout.
///
/// ```
/// use tower::ServiceBuilder;
/// use tower_mcp_auth::store::{MemoryStore, Quota};
/// use tower_mcp_auth::{ClientIpResolver, FailedAuthLimitLayer};
///
/// let lockout = FailedAuthLimitLayer::new(MemoryStore::new(), Quota::per_minute(20).unwrap())
///     .client_ip(ClientIpResolver::new().trust_proxies(["10.0.0.0/8"]).unwrap());
/// let svc = ServiceBuilder::new()
///     .layer(lockout)
///     .service_fn(|_req: http::Request<String>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
///     });
/// # let _ = svc;
/// ```
#[derive(Clone)]
#[must_use]
pub struct FailedAuthLimitLayer {
    /// `None` when built by [`McpAuth`](crate::McpAuth) without a lockout: the layer passes through.
    config: Option<Arc<LockoutConfig>>,
}

impl FailedAuthLimitLayer {
    /// Allows each client IP `quota` failed authentications, counted in `store`.
    pub fn new(store: impl StateStore, quota: Quota) -> Self {
        Self::from_shared(Arc::new(store), quota)
    }

    /// Uses a store shared with other layers.
    pub fn from_shared(store: Arc<dyn StateStore>, quota: Quota) -> Self {
        Self {
            config: Some(Arc::new(LockoutConfig {
                store,
                quota,
                resolver: ClientIpResolver::new(),
                fail_mode: FailMode::Open,
                cookie: None,
            })),
        }
    }

    pub(crate) fn disabled() -> Self {
        Self { config: None }
    }

    /// Also treats the cookie `name` as a presented credential, as
    /// [`BearerLayer::session_cookie`](crate::BearerLayer::session_cookie) does: a browser
    /// replaying a forged session cookie is locked out like a client sending forged tokens.
    /// [`McpAuth`](crate::McpAuth) sets this from its own
    /// [`session_cookie`](crate::McpAuthBuilder::session_cookie).
    ///
    /// ```
    /// use tower_mcp_auth::store::{MemoryStore, Quota};
    /// use tower_mcp_auth::FailedAuthLimitLayer;
    ///
    /// let lockout = FailedAuthLimitLayer::new(MemoryStore::new(), Quota::per_minute(20).unwrap())
    ///     .session_cookie("mcp_session");
    /// # let _ = lockout;
    /// ```
    pub fn session_cookie(self, name: impl Into<String>) -> Self {
        let name: Arc<str> = name.into().into();
        self.map(|c| c.cookie = Some(name))
    }

    pub(crate) fn has_session_cookie(&self) -> bool {
        self.config.as_ref().is_some_and(|c| c.cookie.is_some())
    }

    /// How client IPs are found (trusted proxies, IPv6 prefix).
    pub fn client_ip(self, resolver: ClientIpResolver) -> Self {
        self.map(|c| c.resolver = resolver)
    }

    /// What to do when the store fails before a credentialed request (default
    /// [`FailMode::Open`]: the request is authenticated normally, only not limited).
    pub fn fail_mode(self, mode: FailMode) -> Self {
        self.map(|c| c.fail_mode = mode)
    }

    fn map(self, f: impl FnOnce(&mut LockoutConfig)) -> Self {
        let Some(c) = &self.config else {
            return self;
        };
        let mut config = LockoutConfig {
            store: c.store.clone(),
            quota: c.quota,
            resolver: c.resolver.clone(),
            fail_mode: c.fail_mode,
            cookie: c.cookie.clone(),
        };
        f(&mut config);
        Self {
            config: Some(Arc::new(config)),
        }
    }
}

impl<S> Layer<S> for FailedAuthLimitLayer {
    type Service = FailedAuthLimitService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        FailedAuthLimitService {
            inner,
            config: self.config.clone(),
        }
    }
}

impl fmt::Debug for FailedAuthLimitLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(c) = &self.config else {
            return f.write_str("FailedAuthLimitLayer(disabled)");
        };
        f.debug_struct("FailedAuthLimitLayer")
            .field("quota", &c.quota)
            .field("client_ip", &c.resolver)
            .field("fail_mode", &c.fail_mode)
            .field("session_cookie", &c.cookie)
            .finish_non_exhaustive()
    }
}

/// Service produced by [`FailedAuthLimitLayer`].
#[derive(Clone)]
pub struct FailedAuthLimitService<S> {
    inner: S,
    config: Option<Arc<LockoutConfig>>,
}

impl<S: fmt::Debug> fmt::Debug for FailedAuthLimitService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailedAuthLimitService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// Where to record a failure once the response is known.
struct Tally {
    store: Arc<dyn StateStore>,
    key: String,
    quota: Quota,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for FailedAuthLimitService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = FailedAuthLimitFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let Some(config) = self.config.as_deref() else {
            return FailedAuthLimitFuture::new(State::Calling {
                future: self.inner.call(req),
                tally: None,
            });
        };
        // Without a credential nothing can fail as "invalid": never counted, never locked.
        let headers = req.headers();
        let presented = credentials::api_key(headers, req.uri(), true).is_present()
            || credentials::bearer(headers).is_present()
            || config
                .cookie
                .as_deref()
                .is_some_and(|name| credentials::cookie(headers, name).is_present());
        let ip = presented
            .then(|| config.resolver.resolve(req.headers(), req.extensions()))
            .flatten();
        if presented && ip.is_none() {
            warn_no_client_addr();
        }
        let Some(ip) = ip else {
            return FailedAuthLimitFuture::new(State::Calling {
                future: self.inner.call(req),
                tally: None,
            });
        };
        let tally = Tally {
            store: config.store.clone(),
            key: format!("fa:ip:{}", config.resolver.bucket(ip)),
            quota: config.quota,
        };
        let peek = config.store.gcra_peek(&tally.key, tally.quota, 1);
        match peek.try_into_ready() {
            Ok(result) => FailedAuthLimitFuture::new(match verdict(result, config.fail_mode) {
                Verdict::Allow(_) => State::Calling {
                    future: self.inner.call(req),
                    tally: Some(tally),
                },
                Verdict::Deny(response) => State::Denied {
                    response: Some(response),
                },
            }),
            Err(peek) => {
                let clone = self.inner.clone();
                let service = std::mem::replace(&mut self.inner, clone);
                FailedAuthLimitFuture::new(State::Checking {
                    pending: Box::new(Checking {
                        peek,
                        request: Some(req),
                        service,
                        tally: Some(tally),
                        fail_mode: config.fail_mode,
                    }),
                })
            }
        }
    }
}

struct Checking<S, ReqBody> {
    peek: Deferred<Result<RateDecision, StoreError>>,
    request: Option<Request<ReqBody>>,
    service: S,
    tally: Option<Tally>,
    fail_mode: FailMode,
}

struct Recording<R> {
    write: Deferred<Result<RateDecision, StoreError>>,
    response: Option<R>,
}

pin_project! {
    /// Response future of [`FailedAuthLimitService`].
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
        Checking { pending: Box<Checking<S, ReqBody>> },
        Calling { #[pin] future: S::Future, tally: Option<Tally> },
        Recording { recording: Box<Recording<S::Response>> },
        Denied { response: Option<Response<Full<Bytes>>> },
    }
}

impl<S, ReqBody> FailedAuthLimitFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    fn new(state: State<S, ReqBody>) -> Self {
        Self { state }
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
                StateProj::Checking { pending } => {
                    let result = ready!(Pin::new(&mut pending.peek).poll(cx));
                    let next = match verdict(result, pending.fail_mode) {
                        Verdict::Allow(_) => {
                            let request = pending
                                .request
                                .take()
                                .expect("FailedAuthLimitFuture polled after completion");
                            State::Calling {
                                future: pending.service.call(request),
                                tally: pending.tally.take(),
                            }
                        }
                        Verdict::Deny(response) => State::Denied {
                            response: Some(response),
                        },
                    };
                    this.state.set(next);
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

/// A lockout without client addresses protects nothing: say so once, loudly.
fn warn_no_client_addr() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        tracing::warn!(
            "FailedAuthLimitLayer sees no client address: serve axum with \
             into_make_service_with_connect_info and the `axum` feature, or insert \
             tower_mcp_auth::ClientAddr into request extensions; requests are not limited"
        );
    });
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
