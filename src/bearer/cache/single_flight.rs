//! Single-flight verification for the token caches of [`CachedVerifier`](super::CachedVerifier)
//! and [`IntrospectionVerifier`](crate::bearer::IntrospectionVerifier).
//!
//! When several requests carry the same token that is not cached yet, only one of them asks
//! the slow verifier (a JWKS refresh, an introspection round trip); the others wait for that
//! answer and share it, success or error.
//!
//! - **Only pending work is shared.** A verifier that answers at once ([`Deferred::ready`])
//!   is called as before and nothing is registered; the table is touched (one lookup under a
//!   shard lock) only after a cache miss, never on a cache hit.
//! - **Table**: token hash to [`Flight`], sharded like the token cache, each shard behind a
//!   std `Mutex` that is held only for a map operation (never across an await, never while
//!   calling a verifier or a waker).
//! - **Waiting** uses std primitives only: a flight is a `Mutex` holding the answer once
//!   known and the wakers of the waiting futures. No runtime is needed.
//! - **Cancellation**: the future that does the work (the leader) owns a [`Leader`] guard.
//!   If it is dropped before it has an answer, the guard takes the flight out of the table
//!   and wakes the waiters; the first of them to run registers a new flight and verifies the
//!   token itself, the others wait for it. An entry leaves the table when its leader finishes
//!   or is dropped, so nothing leaks. Waiters rely on the leader's task polling it, as every
//!   server does with a request future it has not dropped; each waiter can still give up on
//!   its own (a timeout drops only that waiter).
//! - **Caching** is unchanged: only successes are stored, and the leader stores them before
//!   its flight leaves the table, so a request either finds the flight or the cached answer.

use std::fmt;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::SystemTime;

use crate::deferred::Deferred;
use crate::identity::Identity;

use super::token_cache::{shard_count, TokenCache, TokenHash, TokenMap};
use crate::bearer::verifier::TokenError;

/// The answer of one verification.
pub(crate) type Outcome = Result<Identity, TokenError>;

/// A verifier with a token cache whose misses go through single flight.
pub(crate) trait SingleFlight: Send + Sync + 'static {
    /// The verified-token cache, checked first.
    fn cache(&self) -> &TokenCache;

    /// The verifications in flight.
    fn flights(&self) -> &Flights;

    /// Verifies a token that is not cached (the slow path).
    fn verify_uncached(self: &Arc<Self>, token: &str) -> Deferred<Outcome>;
}

/// Verifies `token`: from the cache, by joining a verification of the same token in flight,
/// or with [`SingleFlight::verify_uncached`].
///
/// Only `b64token`s are cached ([`cached`] answers before the bearer layer checks the
/// syntax); anything else a caller passes goes straight to the verifier.
#[inline]
pub(crate) fn verify<V: SingleFlight>(verifier: &Arc<V>, token: &str) -> Deferred<Outcome> {
    let key = TokenHash::of(token);
    let now = SystemTime::now();
    if let Some(identity) = verifier.cache().get(&key, now) {
        crate::metrics::token_cache(true);
        return Deferred::ready(Ok(identity));
    }
    crate::metrics::token_cache(false);
    if !crate::credentials::is_b64token(token) {
        return verifier.verify_uncached(token);
    }
    match first_step(verifier, token, key, now) {
        Step::Done(outcome) => Deferred::ready(outcome),
        Step::Lead(leader, pending) => {
            Deferred::boxed(lead(Arc::clone(verifier), key, leader, pending))
        }
        Step::Wait(waiter) => {
            Deferred::boxed(follow(Arc::clone(verifier), token.to_owned(), key, waiter))
        }
    }
}

/// The cached identity of the raw `token`, if any ([`TokenVerifier::cached`]): a miss is not
/// counted, the verification that follows counts it.
///
/// [`TokenVerifier::cached`]: crate::TokenVerifier::cached
#[inline]
pub(crate) fn cached<V: SingleFlight>(verifier: &V, token: &[u8]) -> Option<Identity> {
    let identity = verifier
        .cache()
        .get(&TokenHash::of_bytes(token), SystemTime::now())?;
    crate::metrics::token_cache(true);
    Some(identity)
}

/// What to do about a token that was not in the cache.
enum Step {
    /// The answer is known.
    Done(Outcome),
    /// This request verifies the token; the others wait for it.
    Lead(Leader, Deferred<Outcome>),
    /// Another request verifies the token; wait for its answer.
    Wait(Waiter),
}

/// After a cache miss: join the flight of this token, or ask the verifier, and register a
/// flight only if its answer is pending.
fn first_step<V: SingleFlight>(
    verifier: &Arc<V>,
    token: &str,
    key: TokenHash,
    now: SystemTime,
) -> Step {
    let flights = verifier.flights();
    if let Some(waiter) = flights.join(&key) {
        return Step::Wait(waiter);
    }
    let pending = match verifier.verify_uncached(token).try_into_ready() {
        Ok(outcome) => {
            store(verifier.cache(), key, &outcome, now);
            return Step::Done(outcome);
        }
        Err(pending) => pending,
    };
    match flights.lead_or_join(key) {
        // Another request registered the same token meanwhile: `pending` is dropped before
        // it was ever polled.
        Err(waiter) => Step::Wait(waiter),
        // A flight of this token may have finished between the cache lookup and now; it
        // stored a success before leaving the table, so look once more.
        Ok(leader) => match verifier.cache().get(&key, SystemTime::now()) {
            Some(identity) => {
                let outcome = Ok(identity);
                leader.finish(&outcome);
                Step::Done(outcome)
            }
            None => Step::Lead(leader, pending),
        },
    }
}

/// After the leader was dropped: register first, so that of all the waiters taking over,
/// exactly one calls the verifier again.
fn take_over<V: SingleFlight>(verifier: &Arc<V>, token: &str, key: TokenHash) -> Step {
    let now = SystemTime::now();
    if let Some(identity) = verifier.cache().get(&key, now) {
        return Step::Done(Ok(identity));
    }
    let leader = match verifier.flights().lead_or_join(key) {
        Ok(leader) => leader,
        Err(waiter) => return Step::Wait(waiter),
    };
    match verifier.verify_uncached(token).try_into_ready() {
        Ok(outcome) => {
            store(verifier.cache(), key, &outcome, now);
            leader.finish(&outcome);
            Step::Done(outcome)
        }
        Err(pending) => Step::Lead(leader, pending),
    }
}

/// Caches successes only: a rejection can turn into an acceptance (key rotation, `nbf`), and
/// an unavailable verifier must be asked again.
fn store(cache: &TokenCache, key: TokenHash, outcome: &Outcome, now: SystemTime) {
    if let Ok(identity) = outcome {
        cache.insert(key, identity, now);
    }
}

/// The leader's future: verify, cache, then hand the answer to the waiters.
async fn lead<V: SingleFlight>(
    verifier: Arc<V>,
    key: TokenHash,
    leader: Leader,
    pending: Deferred<Outcome>,
) -> Outcome {
    // If this future is dropped here (or the verifier panics), `leader` is dropped with it
    // and the waiters take over.
    let outcome = pending.await;
    store(verifier.cache(), key, &outcome, SystemTime::now());
    leader.finish(&outcome);
    outcome
}

/// A waiter's future: the leader's answer, or, if the leader went away, a verification of
/// its own (or of whichever waiter took over first).
async fn follow<V: SingleFlight>(
    verifier: Arc<V>,
    token: String,
    key: TokenHash,
    mut waiter: Waiter,
) -> Outcome {
    loop {
        if let Some(outcome) = waiter.await {
            return outcome;
        }
        match take_over(&verifier, &token, key) {
            Step::Done(outcome) => return outcome,
            Step::Lead(leader, pending) => return lead(verifier, key, leader, pending).await,
            Step::Wait(next) => waiter = next,
        }
    }
}

type Shard = Mutex<TokenMap<Arc<Flight>>>;

/// The verifications in flight, by token hash.
pub(crate) struct Flights {
    /// Shared with the [`Leader`]s, which take their flight out when they finish or drop.
    shards: Arc<[Shard]>,
}

impl Flights {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..shard_count()).map(|_| Shard::default()).collect(),
        }
    }

    /// A waiter on the flight of `key`, if there is one.
    fn join(&self, key: &TokenHash) -> Option<Waiter> {
        let flight = Arc::clone(lock_shard(&self.shards, key).get(key)?);
        Some(Waiter::new(flight))
    }

    /// Registers a flight for `key` and makes the caller its leader, or joins the flight
    /// already registered.
    fn lead_or_join(&self, key: TokenHash) -> Result<Leader, Waiter> {
        let mut shard = lock_shard(&self.shards, &key);
        if let Some(flight) = shard.get(&key) {
            return Err(Waiter::new(Arc::clone(flight)));
        }
        let flight = Arc::new(Flight::default());
        shard.insert(key, Arc::clone(&flight));
        drop(shard);
        Ok(Leader {
            shards: Arc::clone(&self.shards),
            key,
            flight: Some(flight),
        })
    }

    /// Number of verifications in flight.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }
}

fn lock_shard<'a>(shards: &'a [Shard], key: &TokenHash) -> MutexGuard<'a, TokenMap<Arc<Flight>>> {
    shards[key.shard_index(shards.len())]
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

impl fmt::Debug for Flights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Flights")
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

/// One verification in flight: its answer once known, and who waits for it.
#[derive(Default)]
struct Flight {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    phase: Phase,
    /// One slot per waiter that was polled; emptied when the waiter is dropped.
    wakers: Vec<Option<Waker>>,
}

#[derive(Default)]
enum Phase {
    #[default]
    Running,
    Done(Outcome),
    /// The leader was dropped without an answer.
    Abandoned,
}

impl Flight {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Held by the future that verifies; takes the flight out of the table when it finishes or
/// is dropped, and wakes the waiters.
struct Leader {
    shards: Arc<[Shard]>,
    key: TokenHash,
    /// `None` once landed.
    flight: Option<Arc<Flight>>,
}

impl Leader {
    /// Hands `outcome` to every waiter.
    fn finish(mut self, outcome: &Outcome) {
        self.land(|| Phase::Done(outcome.clone()));
    }

    fn land(&mut self, phase: impl FnOnce() -> Phase) {
        let Some(flight) = self.flight.take() else {
            return;
        };
        {
            let mut shard = lock_shard(&self.shards, &self.key);
            if shard
                .get(&self.key)
                .is_some_and(|f| Arc::ptr_eq(f, &flight))
            {
                shard.remove(&self.key);
            }
        }
        // Out of the table, nobody can join any more: with no waiter, there is no one to tell.
        if Arc::strong_count(&flight) == 1 {
            return;
        }
        let wakers = {
            let mut state = flight.state();
            state.phase = phase();
            mem::take(&mut state.wakers)
        };
        for waker in wakers.into_iter().flatten() {
            waker.wake();
        }
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        self.land(|| Phase::Abandoned);
    }
}

/// Waits for a flight's answer: `Some(outcome)`, or `None` if its leader was dropped.
#[must_use = "a Waiter does nothing unless polled"]
struct Waiter {
    flight: Arc<Flight>,
    /// Index of this waiter's waker in the flight, once polled.
    slot: Option<usize>,
}

impl Waiter {
    fn new(flight: Arc<Flight>) -> Self {
        Self { flight, slot: None }
    }
}

impl Future for Waiter {
    type Output = Option<Outcome>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Outcome>> {
        let this = self.get_mut();
        let mut state = this.flight.state();
        match &state.phase {
            Phase::Done(outcome) => return Poll::Ready(Some(outcome.clone())),
            Phase::Abandoned => return Poll::Ready(None),
            Phase::Running => {}
        }
        // While running, the wakers are never taken, so the slot is still ours.
        let waker = cx.waker();
        match this.slot {
            Some(i) => match &mut state.wakers[i] {
                Some(old) if old.will_wake(waker) => {}
                slot => *slot = Some(waker.clone()),
            },
            None => {
                this.slot = Some(state.wakers.len());
                state.wakers.push(Some(waker.clone()));
            }
        }
        Poll::Pending
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            if let Some(slot) = self.flight.state().wakers.get_mut(i) {
                *slot = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use super::*;
    use crate::identity::AuthMethod;

    #[derive(Default)]
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll(waiter: &mut Waiter, waker: &Arc<CountingWaker>) -> Poll<Option<Outcome>> {
        let waker = Waker::from(Arc::clone(waker));
        Pin::new(waiter).poll(&mut Context::from_waker(&waker))
    }

    fn wakes(waker: &CountingWaker) -> usize {
        waker.0.load(Ordering::SeqCst)
    }

    #[test]
    fn waiters_get_the_leaders_answer_and_the_table_empties() {
        let flights = Flights::new();
        let key = TokenHash::of("t");
        let leader = flights.lead_or_join(key).ok().unwrap();
        let mut waiter = flights.join(&key).unwrap();
        let mut late = flights.lead_or_join(key).err().unwrap();
        assert_eq!(flights.len(), 1);
        assert!(flights.join(&TokenHash::of("other")).is_none());

        let waker = Arc::new(CountingWaker::default());
        assert!(poll(&mut waiter, &waker).is_pending());
        // Polling again with the same waker keeps one slot.
        assert!(poll(&mut waiter, &waker).is_pending());
        assert_eq!(waiter.flight.state().wakers.len(), 1);

        let identity = Identity::builder(AuthMethod::Bearer, "alice").build();
        leader.finish(&Ok(identity));
        assert_eq!(wakes(&waker), 1);
        assert_eq!(flights.len(), 0);
        for w in [&mut waiter, &mut late] {
            match poll(w, &waker) {
                Poll::Ready(Some(Ok(id))) => assert_eq!(id.name(), "alice"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn errors_are_shared_too() {
        let flights = Flights::new();
        let key = TokenHash::of("t");
        let leader = flights.lead_or_join(key).ok().unwrap();
        let mut waiter = flights.join(&key).unwrap();
        leader.finish(&Err(TokenError::Unavailable("down".into())));
        let waker = Arc::new(CountingWaker::default());
        assert!(matches!(
            poll(&mut waiter, &waker),
            Poll::Ready(Some(Err(TokenError::Unavailable(m)))) if m == "down"
        ));
    }

    #[test]
    fn a_dropped_leader_wakes_its_waiters_with_none() {
        let flights = Flights::new();
        let key = TokenHash::of("t");
        let leader = flights.lead_or_join(key).ok().unwrap();
        let mut waiter = flights.join(&key).unwrap();
        let waker = Arc::new(CountingWaker::default());
        assert!(poll(&mut waiter, &waker).is_pending());
        drop(leader);
        assert_eq!(wakes(&waker), 1);
        assert_eq!(flights.len(), 0);
        assert!(matches!(poll(&mut waiter, &waker), Poll::Ready(None)));
        // The key is free for a new leader.
        assert!(flights.lead_or_join(key).is_ok());
        assert_eq!(flights.len(), 0, "that leader was dropped at once");
    }

    #[test]
    fn a_dropped_waiter_leaves_no_waker_behind() {
        let flights = Flights::new();
        let key = TokenHash::of("t");
        let leader = flights.lead_or_join(key).ok().unwrap();
        let (gone, stays) = (
            Arc::new(CountingWaker::default()),
            Arc::new(CountingWaker::default()),
        );
        let mut a = flights.join(&key).unwrap();
        let mut b = flights.join(&key).unwrap();
        assert!(poll(&mut a, &gone).is_pending());
        assert!(poll(&mut b, &stays).is_pending());
        drop(a);
        leader.finish(&Err(TokenError::Unavailable("x".into())));
        assert_eq!((wakes(&gone), wakes(&stays)), (0, 1));
    }

    #[test]
    fn a_leader_without_waiters_just_leaves() {
        let flights = Flights::new();
        let key = TokenHash::of("t");
        let leader = flights.lead_or_join(key).ok().unwrap();
        let flight = Arc::downgrade(leader.flight.as_ref().unwrap());
        leader.finish(&Err(TokenError::Unavailable("x".into())));
        assert_eq!(flights.len(), 0);
        assert!(flight.upgrade().is_none(), "the flight is freed");
    }
}
