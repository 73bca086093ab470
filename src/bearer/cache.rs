//! [`CachedVerifier`]: a verified-token cache in front of any [`TokenVerifier`].

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::deferred::Deferred;
use crate::identity::Identity;

use super::token_cache::{TokenCache, TokenHash};
use super::verifier::{TokenError, TokenVerifier};

/// Default [`max_entries`](CachedVerifierBuilder::max_entries) of a [`CachedVerifier`].
///
/// ```
/// assert_eq!(tower_mcp_auth::DEFAULT_CACHE_ENTRIES, 10_000);
/// ```
pub const DEFAULT_CACHE_ENTRIES: usize = 10_000;

/// Default [`max_ttl`](CachedVerifierBuilder::max_ttl) of a [`CachedVerifier`].
///
/// ```
/// # use std::time::Duration;
/// assert_eq!(tower_mcp_auth::DEFAULT_CACHE_TTL, Duration::from_secs(300));
/// ```
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(300);

/// Remembers tokens the inner verifier accepted, so a client that sends the same token on
/// every request pays one SHA-256 instead of a signature check (or a network round trip).
///
/// - **Key**: the SHA-256 of the token; the token itself is never stored.
/// - **Lifetime**: an entry is served until the earlier of the identity's
///   [`expires_at`](Identity::expires_at) (the token's `exp`, without leeway) and
///   [`max_ttl`](CachedVerifierBuilder::max_ttl) after it was verified. Past that, the token
///   goes to the inner verifier again. `max_ttl` also bounds how long a token keeps working
///   after its signing key was removed from a JWKS.
/// - **Bound**: at most [`max_entries`](CachedVerifierBuilder::max_entries), split over
///   shards that each have their own lock (no global lock); a full shard evicts the entry it
///   stored first (FIFO).
/// - **Only successes are cached.** A rejection can turn into an acceptance (a token whose
///   `kid` was unknown before a key rotation, a token before its `nbf`), and an unavailable
///   verifier must be asked again; to slow down floods of bad tokens, put a
///   [`FailedAuthLimitLayer`](crate::FailedAuthLimitLayer) in front.
///
/// A hit answers with [`Deferred::ready`]: no allocation besides the `Identity` clone (a
/// reference count), no await.
///
/// ```
/// use tower_mcp_auth::{CachedVerifier, JwtVerifier, TokenVerifier};
///
/// let secret = b"an-hs256-secret-that-is-32-bytes+";
/// let verifier = CachedVerifier::new(JwtVerifier::hs256(secret).build().unwrap());
///
/// tower_mcp_auth::install_crypto_provider();
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
pub struct CachedVerifier<V> {
    inner: V,
    cache: Arc<TokenCache>,
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
    /// use tower_mcp_auth::{CachedVerifier, JwtVerifier};
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
    /// # use tower_mcp_auth::{CachedVerifier, JwtVerifier};
    /// let v = CachedVerifier::new(JwtVerifier::hs256(b"an-hs256-secret-that-is-32-bytes+").build().unwrap());
    /// let _jwt: &JwtVerifier = v.get_ref();
    /// ```
    pub fn get_ref(&self) -> &V {
        &self.inner
    }

    /// Number of cached tokens (expired ones count until evicted).
    ///
    /// ```
    /// # use tower_mcp_auth::{CachedVerifier, JwtVerifier};
    /// let v = CachedVerifier::new(JwtVerifier::hs256(b"an-hs256-secret-that-is-32-bytes+").build().unwrap());
    /// assert_eq!(v.len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    /// Whether nothing is cached.
    ///
    /// ```
    /// # use tower_mcp_auth::{CachedVerifier, JwtVerifier};
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
    /// # use tower_mcp_auth::{CachedVerifier, JwtVerifier};
    /// let v = CachedVerifier::new(JwtVerifier::hs256(b"an-hs256-secret-that-is-32-bytes+").build().unwrap());
    /// assert!(v.capacity() <= tower_mcp_auth::DEFAULT_CACHE_ENTRIES);
    /// ```
    pub fn capacity(&self) -> usize {
        self.cache.capacity()
    }

    /// Forgets every cached token, for example after revoking a signing key.
    ///
    /// ```
    /// # use tower_mcp_auth::{CachedVerifier, JwtVerifier};
    /// let v = CachedVerifier::new(JwtVerifier::hs256(b"an-hs256-secret-that-is-32-bytes+").build().unwrap());
    /// v.clear();
    /// assert!(v.is_empty());
    /// ```
    pub fn clear(&self) {
        self.cache.clear();
    }
}

impl<V: TokenVerifier> TokenVerifier for CachedVerifier<V> {
    fn verify(&self, token: &str) -> Deferred<Result<Identity, TokenError>> {
        let key = TokenHash::of(token);
        let now = SystemTime::now();
        if let Some(identity) = self.cache.get(&key, now) {
            return Deferred::ready(Ok(identity));
        }
        match self.inner.verify(token).try_into_ready() {
            Ok(result) => {
                if let Ok(identity) = &result {
                    self.cache.insert(key, identity, now);
                }
                Deferred::ready(result)
            }
            Err(pending) => {
                let cache = Arc::clone(&self.cache);
                Deferred::boxed(async move {
                    let result = pending.await;
                    if let Ok(identity) = &result {
                        cache.insert(key, identity, SystemTime::now());
                    }
                    result
                })
            }
        }
    }
}

impl<V: Clone> Clone for CachedVerifier<V> {
    /// Clones share one cache.
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            cache: Arc::clone(&self.cache),
        }
    }
}

impl<V: fmt::Debug> fmt::Debug for CachedVerifier<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedVerifier")
            .field("inner", &self.inner)
            .field("cache", &self.cache)
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
    /// # use tower_mcp_auth::{CachedVerifier, JwtVerifier};
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
    /// # use tower_mcp_auth::{CachedVerifier, JwtVerifier};
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
    /// # use tower_mcp_auth::{CachedVerifier, JwtVerifier};
    /// # let inner = JwtVerifier::hs256(b"an-hs256-secret-that-is-32-bytes+").build().unwrap();
    /// let v = CachedVerifier::builder(inner).build();
    /// assert!(v.is_empty());
    /// ```
    pub fn build(self) -> CachedVerifier<V> {
        CachedVerifier {
            inner: self.inner,
            cache: Arc::new(TokenCache::new(self.max_entries, self.max_ttl)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

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
    fn expired_identities_are_verified_again() {
        let (v, calls) = verifier(Some(Duration::ZERO), false);
        assert!(now(v.verify("ok")).is_ok());
        assert!(now(v.verify("ok")).is_ok());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
