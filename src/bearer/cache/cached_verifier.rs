//! [`CachedVerifier`]: a verified-token cache in front of any [`TokenVerifier`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::deferred::Deferred;
use crate::identity::Identity;

use super::single_flight::{self, Flights, Outcome, SingleFlight};
use super::token_cache::TokenCache;
use crate::bearer::verifier::{TokenError, TokenVerifier};

/// Default [`max_entries`](CachedVerifierBuilder::max_entries) of a [`CachedVerifier`].
///
/// ```
/// assert_eq!(tower_mcp_auth::bearer::DEFAULT_CACHE_ENTRIES, 10_000);
/// ```
pub const DEFAULT_CACHE_ENTRIES: usize = 10_000;

/// Default [`max_ttl`](CachedVerifierBuilder::max_ttl) of a [`CachedVerifier`].
///
/// ```
/// # use std::time::Duration;
/// assert_eq!(tower_mcp_auth::bearer::DEFAULT_CACHE_TTL, Duration::from_secs(300));
/// ```
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(300);

/// Remembers tokens the inner verifier accepted, so a client that sends the same token on
/// every request pays one keyed SipHash of the token instead of a signature check (or a
/// network round trip).
///
/// - **Key**: a 128-bit keyed SipHash-2-4 tag of the token under a per-process random key
///   (compared in constant time); the token itself is never stored, and nobody without the
///   key can make another token collide with a cached one.
/// - **Lifetime**: an entry is served until the earlier of the identity's
///   [`expires_at`](Identity::expires_at) (the token's `exp`, without leeway) and
///   [`max_ttl`](CachedVerifierBuilder::max_ttl) after it was verified. Past that, the token
///   goes to the inner verifier again. `max_ttl` also bounds how long a token keeps working
///   after its signing key was removed from a JWKS.
/// - **Bound**: at most [`max_entries`](CachedVerifierBuilder::max_entries), split over
///   shards that each have their own lock (no global lock); a full shard evicts the entry it
///   stored first (FIFO).
/// - **Only identities with a known expiry are cached.** An identity without
///   [`expires_at`](Identity::expires_at) (a token without `exp`, an introspection answer
///   without `exp`) goes to the inner verifier on every request: its end is unknown.
/// - **Only successes are cached.** A rejection can turn into an acceptance (a token whose
///   `kid` was unknown before a key rotation, a token before its `nbf`), and an unavailable
///   verifier must be asked again; to slow down floods of bad tokens, put a
///   [`FailedAuthLimitLayer`](crate::rate_limit::FailedAuthLimitLayer) in front.
/// - **Single flight: concurrent first requests with one token cost one verification.**
///   While the inner verifier's answer for a token is pending (a JWKS refresh, a network
///   round trip), other requests with the same token wait for that answer instead of calling
///   the inner verifier again, and all of them get it, success or error (errors are shared,
///   not cached). An inner verifier that answers at once ([`Deferred::ready`], like
///   [`JwtVerifier`](crate::JwtVerifier)) is simply called: nothing is shared or registered.
///   If the request that started the verification goes away (client gone, timeout), one of
///   the waiting requests starts it again and the others wait for that one.
///
/// A hit answers with [`Deferred::ready`]: no allocation besides the `Identity` clone (a
/// reference count), no await, no lock but the cache shard's read lock.
///
/// ```
/// use tower_mcp_auth::{bearer::CachedVerifier, JwtVerifier, TokenVerifier};
///
/// let secret = b"an-hs256-secret-that-is-32-bytes+";
/// let verifier = CachedVerifier::new(JwtVerifier::hs256(secret).build().unwrap());
///
/// tower_mcp_auth::bearer::install_crypto_provider();
/// let token = jsonwebtoken::encode(
///     &jsonwebtoken::Header::default(),
///     &serde_json::json!({"sub": "alice", "exp": 4_000_000_000u64}),
///     &jsonwebtoken::EncodingKey::from_secret(secret),
/// ).unwrap();
///
/// // First call verifies the signature, the second is served from the cache.
/// for _ in 0..2 {
///     let id = verifier.verify(&token).try_into_ready().unwrap().unwrap();
///     assert_eq!(id.user_id(), Some("alice"));
/// }
/// assert_eq!(verifier.len(), 1);
/// ```
///
/// Concurrent requests with one new token, in front of a verifier that answers later:
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use tower_mcp_auth::{AuthMethod, Deferred, Identity, TokenVerifier, bearer::{CachedVerifier, TokenError}};
///
/// /// Stands for a verifier that asks the network; counts its calls.
/// struct Remote(Arc<AtomicUsize>);
///
/// impl TokenVerifier for Remote {
///     fn verify(&self, token: &str) -> Deferred<Result<Identity, TokenError>> {
///         self.0.fetch_add(1, Ordering::SeqCst);
///         let name = token.to_owned();
///         let exp = std::time::SystemTime::now() + std::time::Duration::from_secs(300);
///         Deferred::boxed(async move {
///             Ok(Identity::builder(AuthMethod::Bearer, name).expires_at(exp).build())
///         })
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let calls = Arc::new(AtomicUsize::new(0));
/// let verifier = CachedVerifier::new(Remote(calls.clone()));
///
/// // Three requests arrive before the first verification finished: one call.
/// let (a, b, c) = tokio::join!(verifier.verify("t"), verifier.verify("t"), verifier.verify("t"));
/// assert_eq!(calls.load(Ordering::SeqCst), 1);
/// assert!(a.is_ok() && b.is_ok() && c.is_ok());
///
/// // Later requests are cache hits.
/// assert!(verifier.verify("t").try_into_ready().unwrap().is_ok());
/// assert_eq!(calls.load(Ordering::SeqCst), 1);
/// # });
/// ```
pub struct CachedVerifier<V> {
    shared: Arc<Shared<V>>,
}

/// What a `CachedVerifier` and its clones share (the waiting requests may call `inner`).
struct Shared<V> {
    inner: V,
    cache: TokenCache,
    flights: Flights,
}

impl<V: TokenVerifier> SingleFlight for Shared<V> {
    fn cache(&self) -> &TokenCache {
        &self.cache
    }

    fn flights(&self) -> &Flights {
        &self.flights
    }

    fn verify_uncached(self: &Arc<Self>, token: &str) -> Deferred<Outcome> {
        self.inner.verify(token)
    }
}

impl<V: TokenVerifier> CachedVerifier<V> {
    /// Caches `inner` with [`DEFAULT_CACHE_ENTRIES`] and [`DEFAULT_CACHE_TTL`].
    pub fn new(inner: V) -> Self {
        Self::builder(inner).build()
    }

    /// Starts configuring a cache in front of `inner`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_mcp_auth::{bearer::CachedVerifier, JwtVerifier};
    ///
    /// let inner = JwtVerifier::hs256(b"an-hs256-secret-that-is-32-bytes+").build().unwrap();
    /// let verifier = CachedVerifier::builder(inner)
    ///     .max_entries(50_000)
    ///     .max_ttl(Duration::from_secs(60))
    ///     .build();
    /// assert!(verifier.capacity() <= 50_000);
    /// ```
    pub fn builder(inner: V) -> CachedVerifierBuilder<V> {
        CachedVerifierBuilder {
            inner,
            max_entries: DEFAULT_CACHE_ENTRIES,
            max_ttl: DEFAULT_CACHE_TTL,
        }
    }
}

impl<V> CachedVerifier<V> {
    /// The wrapped verifier.
    ///
    /// ```
    /// # use tower_mcp_auth::{bearer::CachedVerifier, JwtVerifier};
    /// let v = CachedVerifier::new(JwtVerifier::hs256(b"an-hs256-secret-that-is-32-bytes+").build().unwrap());
    /// let _jwt: &JwtVerifier = v.get_ref();
    /// ```
    pub fn get_ref(&self) -> &V {
        &self.shared.inner
    }

    /// Number of cached tokens (expired ones count until evicted).
    ///
    /// ```
    /// # use tower_mcp_auth::{bearer::CachedVerifier, JwtVerifier};
    /// let v = CachedVerifier::new(JwtVerifier::hs256(b"an-hs256-secret-that-is-32-bytes+").build().unwrap());
    /// assert_eq!(v.len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.shared.cache.len()
    }

    /// Whether nothing is cached.
    ///
    /// ```
    /// # use tower_mcp_auth::{bearer::CachedVerifier, JwtVerifier};
    /// let v = CachedVerifier::new(JwtVerifier::hs256(b"an-hs256-secret-that-is-32-bytes+").build().unwrap());
    /// assert!(v.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most entries the cache holds (`max_entries` rounded down to a multiple of the
    /// shard count).
    ///
    /// ```
    /// # use tower_mcp_auth::{bearer::CachedVerifier, JwtVerifier};
    /// let v = CachedVerifier::new(JwtVerifier::hs256(b"an-hs256-secret-that-is-32-bytes+").build().unwrap());
    /// assert!(v.capacity() <= tower_mcp_auth::bearer::DEFAULT_CACHE_ENTRIES);
    /// ```
    pub fn capacity(&self) -> usize {
        self.shared.cache.capacity()
    }

    /// Forgets every cached token, for example after revoking a signing key.
    ///
    /// ```
    /// # use tower_mcp_auth::{bearer::CachedVerifier, JwtVerifier};
    /// let v = CachedVerifier::new(JwtVerifier::hs256(b"an-hs256-secret-that-is-32-bytes+").build().unwrap());
    /// v.clear();
    /// assert!(v.is_empty());
    /// ```
    pub fn clear(&self) {
        self.shared.cache.clear();
    }
}

impl<V: TokenVerifier> TokenVerifier for CachedVerifier<V> {
    fn verify(&self, token: &str) -> Deferred<Result<Identity, TokenError>> {
        single_flight::verify(&self.shared, token)
    }

    fn cached(&self, token: &[u8]) -> Option<Identity> {
        single_flight::cached(&*self.shared, token)
    }
}

impl<V> Clone for CachedVerifier<V> {
    /// Clones share one inner verifier, one cache and one set of verifications in flight.
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<V: fmt::Debug> fmt::Debug for CachedVerifier<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedVerifier")
            .field("inner", &self.shared.inner)
            .field("cache", &self.shared.cache)
            .finish()
    }
}

/// Configures a [`CachedVerifier`]; see [`CachedVerifier::builder`].
#[must_use]
#[derive(Debug)]
pub struct CachedVerifierBuilder<V> {
    inner: V,
    max_entries: usize,
    max_ttl: Duration,
}

impl<V: TokenVerifier> CachedVerifierBuilder<V> {
    /// The most tokens kept (default [`DEFAULT_CACHE_ENTRIES`]); `0` disables caching.
    ///
    /// ```
    /// # use tower_mcp_auth::{bearer::CachedVerifier, JwtVerifier};
    /// # let inner = JwtVerifier::hs256(b"an-hs256-secret-that-is-32-bytes+").build().unwrap();
    /// let v = CachedVerifier::builder(inner).max_entries(0).build();
    /// assert_eq!(v.capacity(), 0);
    /// ```
    pub fn max_entries(mut self, max_entries: usize) -> Self {
        self.max_entries = max_entries;
        self
    }

    /// The longest a token is served from the cache, whatever its `exp` (default
    /// [`DEFAULT_CACHE_TTL`]).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use tower_mcp_auth::{bearer::CachedVerifier, JwtVerifier};
    /// # let inner = JwtVerifier::hs256(b"an-hs256-secret-that-is-32-bytes+").build().unwrap();
    /// let v = CachedVerifier::builder(inner).max_ttl(Duration::from_secs(30)).build();
    /// # let _ = v;
    /// ```
    pub fn max_ttl(mut self, max_ttl: Duration) -> Self {
        self.max_ttl = max_ttl;
        self
    }

    /// Finishes the verifier.
    ///
    /// ```
    /// # use tower_mcp_auth::{bearer::CachedVerifier, JwtVerifier};
    /// # let inner = JwtVerifier::hs256(b"an-hs256-secret-that-is-32-bytes+").build().unwrap();
    /// let v = CachedVerifier::builder(inner).build();
    /// assert!(v.is_empty());
    /// ```
    pub fn build(self) -> CachedVerifier<V> {
        CachedVerifier {
            shared: Arc::new(Shared {
                inner: self.inner,
                cache: TokenCache::new(self.max_entries, self.max_ttl),
                flights: Flights::new(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::SystemTime;

    use super::*;
    use crate::error::TokenRejection;
    use crate::identity::AuthMethod;

    /// Counts calls; accepts tokens starting with "ok", with an expiry in `exp_in` seconds.
    struct Counting {
        calls: Arc<AtomicUsize>,
        exp_in: Option<Duration>,
        asynchronous: bool,
    }

    impl TokenVerifier for Counting {
        fn verify(&self, token: &str) -> Deferred<Result<Identity, TokenError>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let mut b = Identity::builder(AuthMethod::Bearer, token);
            if let Some(d) = self.exp_in {
                b = b.expires_at(SystemTime::now() + d);
            }
            let result = if token.starts_with("ok") {
                Ok(b.build())
            } else if token == "down" {
                Err(TokenError::Unavailable("down".into()))
            } else {
                Err(TokenRejection::BadSignature.into())
            };
            if self.asynchronous {
                Deferred::boxed(async move { result })
            } else {
                Deferred::ready(result)
            }
        }
    }

    fn verifier(
        exp_in: Option<Duration>,
        asynchronous: bool,
    ) -> (CachedVerifier<Counting>, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let v = CachedVerifier::new(Counting {
            calls: calls.clone(),
            exp_in,
            asynchronous,
        });
        (v, calls)
    }

    fn now<T>(d: Deferred<T>) -> T {
        let mut d = std::pin::pin!(d);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match std::future::Future::poll(d.as_mut(), &mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => unreachable!("test futures complete at once"),
        }
    }

    #[test]
    fn raw_bytes_hit_only_what_was_verified_and_only_b64tokens_are_cached() {
        let (v, calls) = verifier(Some(Duration::from_secs(60)), false);
        assert!(v.cached(b"ok-1").is_none(), "nothing verified yet");
        assert!(now(v.verify("ok-1")).is_ok());
        assert_eq!(
            v.cached(b"ok-1").map(|id| id.name().to_owned()).as_deref(),
            Some("ok-1")
        );
        assert!(v.cached(b"ok-2").is_none());
        assert!(v.cached(b"bad").is_none(), "rejections are not cached");
        // Accepted by the inner verifier but not a `b64token`: verified every time, never
        // answered from raw bytes (the bearer layer asks before checking the syntax).
        assert!(now(v.verify("ok not,a token")).is_ok());
        assert!(now(v.verify("ok not,a token")).is_ok());
        assert!(v.cached(b"ok not,a token").is_none());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(v.len(), 1);
    }

    #[test]
    fn successes_are_cached_and_hits_are_ready() {
        for asynchronous in [false, true] {
            let (v, calls) = verifier(Some(Duration::from_secs(60)), asynchronous);
            assert!(now(v.verify("ok-1")).is_ok());
            let hit = v.verify("ok-1").try_into_ready();
            assert_eq!(hit.unwrap().unwrap().name(), "ok-1");
            assert_eq!(calls.load(Ordering::SeqCst), 1);
        }
    }

    #[test]
    fn failures_are_not_cached() {
        let (v, calls) = verifier(None, false);
        for token in ["bad", "bad", "down", "down"] {
            assert!(now(v.verify(token)).is_err());
        }
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        assert!(v.is_empty());
    }

    #[test]
    fn identities_without_expiry_are_verified_again() {
        let (v, calls) = verifier(None, false);
        assert!(now(v.verify("ok")).is_ok());
        assert!(now(v.verify("ok")).is_ok());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert!(v.is_empty());
    }

    #[test]
    fn expired_identities_are_verified_again() {
        let (v, calls) = verifier(Some(Duration::ZERO), false);
        assert!(now(v.verify("ok")).is_ok());
        assert!(now(v.verify("ok")).is_ok());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}

/// Single flight, with an inner verifier that answers only when the test releases it.
#[cfg(test)]
mod single_flight_tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use tokio::sync::watch;
    use tokio::task::JoinHandle;

    use super::*;
    use crate::error::TokenRejection;
    use crate::identity::AuthMethod;

    /// Counts `verify` calls and the futures that actually ran; answers once released. The
    /// identity is named `{token}#{call}`, so tests see which call an answer came from.
    /// Tokens starting with "ok" are accepted, "down" is unavailable, the rest rejected.
    struct Gated(Arc<Gate>);

    struct Gate {
        calls: AtomicUsize,
        started: AtomicUsize,
        release: watch::Receiver<bool>,
    }

    impl TokenVerifier for Gated {
        fn verify(&self, token: &str) -> Deferred<Result<Identity, TokenError>> {
            let call = self.0.calls.fetch_add(1, Ordering::SeqCst) + 1;
            let this = Arc::clone(&self.0);
            let token = token.to_owned();
            Deferred::boxed(async move {
                this.started.fetch_add(1, Ordering::SeqCst);
                let mut release = this.release.clone();
                release.wait_for(|released| *released).await.unwrap();
                if token.starts_with("ok") {
                    Ok(
                        Identity::builder(AuthMethod::Bearer, format!("{token}#{call}"))
                            .expires_at(std::time::SystemTime::now() + Duration::from_secs(60))
                            .build(),
                    )
                } else if token == "down" {
                    Err(TokenError::Unavailable(format!("down#{call}")))
                } else {
                    Err(TokenRejection::BadSignature.into())
                }
            })
        }
    }

    struct Setup {
        verifier: CachedVerifier<Gated>,
        gated: Arc<Gate>,
        release: watch::Sender<bool>,
    }

    impl Setup {
        fn new() -> Self {
            let (release, rx) = watch::channel(false);
            let gated = Arc::new(Gate {
                calls: AtomicUsize::new(0),
                started: AtomicUsize::new(0),
                release: rx,
            });
            Self {
                verifier: CachedVerifier::new(Gated(Arc::clone(&gated))),
                gated,
                release,
            }
        }

        fn calls(&self) -> usize {
            self.gated.calls.load(Ordering::SeqCst)
        }

        fn started(&self) -> usize {
            self.gated.started.load(Ordering::SeqCst)
        }

        fn in_flight(&self) -> usize {
            self.verifier.shared.flights.len()
        }

        /// Starts `n` verifications of `token` now and awaits each in its own task.
        fn spawn(&self, token: &str, n: usize) -> Vec<JoinHandle<Outcome>> {
            (0..n)
                .map(|_| tokio::spawn(self.verifier.verify(token)))
                .collect()
        }

        fn release(&self) {
            self.release.send_replace(true);
        }
    }

    async fn outcomes(tasks: Vec<JoinHandle<Outcome>>) -> Vec<Outcome> {
        let mut out = Vec::with_capacity(tasks.len());
        for task in tasks {
            out.push(task.await.expect("verification task"));
        }
        out
    }

    fn names(outcomes: &[Outcome]) -> Vec<String> {
        outcomes
            .iter()
            .map(|o| o.as_ref().expect("accepted").name().to_owned())
            .collect()
    }

    /// Waits until `cond` holds (the spawned tasks run on other threads).
    async fn until(mut cond: impl FnMut() -> bool) {
        for _ in 0..500 {
            if cond() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("condition not reached in time");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_first_requests_cost_one_verification() {
        let s = Setup::new();
        let tasks = s.spawn("ok-a", 64);
        until(|| s.started() == 1).await;
        assert_eq!(s.calls(), 1);
        assert_eq!(s.in_flight(), 1);
        assert!(s.verifier.is_empty());

        s.release();
        let outcomes = outcomes(tasks).await;
        assert_eq!(names(&outcomes), vec!["ok-a#1"; 64]);
        assert_eq!(s.calls(), 1);
        assert_eq!(s.in_flight(), 0);
        assert_eq!(s.verifier.len(), 1);
        // And the next request is a ready cache hit.
        let hit = s.verifier.verify("ok-a").try_into_ready().unwrap();
        assert_eq!(hit.unwrap().name(), "ok-a#1");
        assert_eq!(s.calls(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn racing_tasks_start_one_verification() {
        // Here each task calls `verify` itself, so calls race with the registration. Work
        // (a polled inner future) is still done exactly once; a `verify` call that lost the
        // race has its future dropped unpolled.
        let s = Arc::new(Setup::new());
        let registered = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let (s, registered) = (Arc::clone(&s), Arc::clone(&registered));
                tokio::spawn(async move {
                    let pending = s.verifier.verify("ok-r");
                    registered.fetch_add(1, Ordering::SeqCst);
                    pending.await
                })
            })
            .collect();
        until(|| registered.load(Ordering::SeqCst) == 64).await;
        s.release();
        let outcomes = outcomes(tasks).await;
        assert_eq!(outcomes.len(), 64);
        assert!(outcomes.iter().all(|o| o.is_ok()));
        assert_eq!(s.started(), 1);
        assert_eq!(s.in_flight(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn different_tokens_fly_separately() {
        let s = Setup::new();
        let a = s.spawn("ok-a", 8);
        let b = s.spawn("ok-b", 8);
        until(|| s.started() == 2).await;
        assert_eq!(s.in_flight(), 2);
        s.release();
        let (a, b) = (outcomes(a).await, outcomes(b).await);
        let (a, b) = (names(&a), names(&b));
        assert!(a.iter().all(|n| n == &a[0]) && a[0].starts_with("ok-a#"));
        assert!(b.iter().all(|n| n == &b[0]) && b[0].starts_with("ok-b#"));
        assert_eq!(s.calls(), 2);
        assert_eq!(s.in_flight(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn errors_are_shared_but_not_cached() {
        let s = Setup::new();
        let down = s.spawn("down", 16);
        let bad = s.spawn("bad", 16);
        until(|| s.started() == 2).await;
        s.release();
        for outcome in outcomes(down).await {
            assert_eq!(
                outcome.unwrap_err(),
                TokenError::Unavailable("down#1".into())
            );
        }
        for outcome in outcomes(bad).await {
            assert_eq!(outcome.unwrap_err(), TokenRejection::BadSignature.into());
        }
        assert_eq!(s.calls(), 2);
        assert_eq!(s.in_flight(), 0);
        assert!(s.verifier.is_empty());
        // Not cached: the next request asks again.
        assert!(s.verifier.verify("down").await.is_err());
        assert_eq!(s.calls(), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_leader_is_replaced_by_one_waiter() {
        let s = Setup::new();
        let leader = s.spawn("ok-l", 1).pop().unwrap();
        until(|| s.started() == 1).await;
        let waiters = s.spawn("ok-l", 16);
        assert_eq!(s.calls(), 1, "the waiters joined");

        // The leader goes away mid-flight (its inner future is dropped while waiting).
        leader.abort();
        assert!(leader.await.unwrap_err().is_cancelled());
        until(|| s.started() == 2).await;
        assert_eq!(s.calls(), 2, "exactly one waiter took over");
        assert_eq!(s.in_flight(), 1);

        s.release();
        let outcomes = outcomes(waiters).await;
        assert_eq!(names(&outcomes), vec!["ok-l#2"; 16]);
        assert_eq!(s.calls(), 2);
        assert_eq!(s.in_flight(), 0);
    }

    #[tokio::test]
    async fn dropped_futures_leave_nothing_in_flight() {
        let s = Setup::new();
        // A leader dropped before it was ever polled, with no waiters.
        drop(s.verifier.verify("ok-u"));
        assert_eq!(s.in_flight(), 0);
        // Waiters dropped, then the leader.
        let leader = s.verifier.verify("ok-u");
        let waiters: Vec<_> = (0..4).map(|_| s.verifier.verify("ok-u")).collect();
        assert_eq!(s.in_flight(), 1);
        drop(waiters);
        drop(leader);
        assert_eq!(s.in_flight(), 0);
        // Everyone dropped after the leader was polled and the waiters registered wakers.
        let tasks = s.spawn("ok-u", 4);
        until(|| s.started() == 1).await;
        tokio::task::yield_now().await;
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            assert!(task.await.unwrap_err().is_cancelled());
        }
        assert_eq!(s.in_flight(), 0);
        assert_eq!(s.calls(), 3);
    }

    #[test]
    fn ready_answers_are_not_shared() {
        // A synchronous inner verifier is called for every request and registers nothing.
        struct Immediate(Arc<AtomicUsize>);
        impl TokenVerifier for Immediate {
            fn verify(&self, _: &str) -> Deferred<Result<Identity, TokenError>> {
                self.0.fetch_add(1, Ordering::SeqCst);
                Deferred::ready(Err(TokenError::Unavailable("no".into())))
            }
        }
        let calls = Arc::new(AtomicUsize::new(0));
        let v = CachedVerifier::new(Immediate(Arc::clone(&calls)));
        for _ in 0..3 {
            assert!(v.verify("t").try_into_ready().unwrap().is_err());
            assert_eq!(v.shared.flights.len(), 0);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }
}
