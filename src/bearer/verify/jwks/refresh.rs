//! Keeping the key set fresh: one background task per verifier does every fetch.
//!
//! Requests never fetch themselves. A request whose `kid` is unknown wakes the task
//! (`trigger`) and waits for the attempt to finish (`done`), so any number of concurrent
//! requests share one fetch, and a request dropped mid-fetch (client gone) cannot cancel it.
//! The unknown-`kid` cooldown is checked on the request path with two atomic loads, so a
//! flood of bogus `kid`s costs no allocation and no wake-up while the cooldown runs.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::Shared;

/// "No fetch ended yet" in `last_end_ms`.
const NEVER: u64 = u64::MAX;

/// How requests and the refresh task talk. Held by both; the task holds no strong reference
/// to the verifier while it sleeps, so dropping the verifier stops it.
#[derive(Debug)]
pub(super) struct Signals {
    epoch: Instant,
    /// Request → task: fetch now.
    trigger: Notify,
    /// Task → requests: an attempt finished (or was skipped); look at the keys again.
    done: Notify,
    generation: AtomicU64,
    /// Fetches running: the task's, and any `JwksVerifier::refresh` calls.
    fetching: AtomicUsize,
    /// When the last fetch ended. The cooldown runs from there: while a fetch runs,
    /// `fetching` already keeps requests and the task from starting another, and counting
    /// from its end means a wake-up that arrived during a slow fetch (longer than the
    /// cooldown) cannot start a second one the moment it finishes.
    last_end_ms: AtomicU64,
    running: AtomicBool,
    closed: AtomicBool,
}

impl Signals {
    pub(super) fn new() -> Self {
        Self {
            epoch: Instant::now(),
            trigger: Notify::new(),
            done: Notify::new(),
            generation: AtomicU64::new(0),
            fetching: AtomicUsize::new(0),
            last_end_ms: AtomicU64::new(NEVER),
            running: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(NEVER - 1)
    }

    /// Whether the last fetch ended less than `cooldown` ago.
    pub(super) fn cooling_down(&self, cooldown: Duration) -> bool {
        let ended = self.last_end_ms.load(Ordering::Acquire);
        ended != NEVER && u128::from(self.now_ms().saturating_sub(ended)) < cooldown.as_millis()
    }

    pub(super) fn fetching(&self) -> bool {
        self.fetching.load(Ordering::Acquire) > 0
    }

    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Marks a fetch as running (for waiters, and for the cooldown once it ends) until the
    /// guard drops, also when the fetch is cancelled.
    pub(super) fn attempt(&self) -> Attempt<'_> {
        self.fetching.fetch_add(1, Ordering::AcqRel);
        Attempt(self)
    }

    /// Marks the end of a fetch and wakes every waiter.
    fn finish(&self) {
        self.last_end_ms.store(self.now_ms(), Ordering::Release);
        self.fetching.fetch_sub(1, Ordering::AcqRel);
        self.wake_waiters();
    }

    /// Wakes every request waiting for a fetch, so it looks at the keys again.
    pub(super) fn wake_waiters(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.done.notify_waiters();
    }

    /// Stops the task (the verifier is gone).
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.trigger.notify_one();
    }

    /// Waits until the attempt running or requested now has finished, at most `budget`.
    /// `request` wakes the task first.
    pub(super) async fn wait_for_fetch(&self, request: bool, budget: Duration) {
        let seen = self.generation();
        let done = self.done.notified();
        let mut done = std::pin::pin!(done);
        // Register before triggering, so a fast fetch cannot finish unseen.
        done.as_mut().enable();
        if request {
            self.trigger.notify_one();
        }
        if self.generation() == seen {
            // On timeout the caller looks at whatever keys there are.
            let _ = tokio::time::timeout(budget, done).await;
        }
    }
}

/// A running fetch; see [`Signals::attempt`].
pub(super) struct Attempt<'a>(&'a Signals);

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        self.0.finish();
    }
}

/// Starts the refresh task unless it runs. Needs a Tokio runtime; without one (a verifier
/// built in synchronous code) it starts at the first request that needs keys.
pub(super) fn ensure_running(shared: &Arc<Shared>) {
    let signals = &shared.signals;
    if signals.running.load(Ordering::Acquire) {
        return;
    }
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    if signals
        .running
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
    {
        handle.spawn(run(Arc::downgrade(shared), Arc::clone(signals)));
    }
}

/// Clears `running` when the task ends for any reason, including its runtime shutting
/// down, so the next request starts a new one.
struct RunningGuard(Arc<Signals>);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.running.store(false, Ordering::Release);
    }
}

async fn run(shared: Weak<Shared>, signals: Arc<Signals>) {
    let _guard = RunningGuard(Arc::clone(&signals));
    let mut next_periodic = Instant::now();
    let mut failures: u32 = 0;
    loop {
        let wait = next_periodic.saturating_duration_since(Instant::now());
        let triggered = !wait.is_zero()
            && tokio::time::timeout(wait, signals.trigger.notified())
                .await
                .is_ok();
        if signals.closed.load(Ordering::Acquire) {
            return;
        }
        let Some(shared) = shared.upgrade() else {
            return;
        };
        // A fetch that runs (`JwksVerifier::refresh`) wakes its waiters when it ends; one that
        // just ran (a refresh, a request that raced past its cooldown check, wake-ups that
        // coalesced during a fetch) makes another pointless. Either way: no second fetch.
        let busy = signals.fetching();
        if busy || signals.cooling_down(shared.config.cooldown) {
            if triggered && !busy {
                signals.wake_waiters();
            }
            if !triggered {
                next_periodic = Instant::now() + shared.config.refresh_interval;
            }
            continue;
        }
        let fetched = {
            let _attempt = signals.attempt();
            shared.fetch_and_store().await
        };
        let (delay, failed) = match fetched {
            Ok((_, max_age)) => (fresh_for(shared.config.refresh_interval, max_age), 0),
            Err(_) => {
                let failed = failures.saturating_add(1);
                (retry_after_failures(&shared, failed), failed)
            }
        };
        failures = failed;
        next_periodic = Instant::now() + delay;
    }
}

/// Least time between refreshes that an identity provider's `Cache-Control` can ask for
/// (`no-cache`, `max-age=0`): it must not turn the refresh task into a busy loop.
const MIN_CACHE_CONTROL_REFRESH: Duration = Duration::from_secs(60);

/// After a successful fetch: the periodic interval, or sooner when the identity provider's
/// `Cache-Control: max-age` says its keys go stale sooner (never below a minute, or the
/// interval when that is shorter). A longer `max-age` does not stretch the interval: the
/// interval is how fast a rotation or revocation is picked up without an unknown `kid`.
fn fresh_for(interval: Duration, max_age: Option<Duration>) -> Duration {
    match max_age {
        Some(age) => age.clamp(MIN_CACHE_CONTROL_REFRESH.min(interval), interval),
        None => interval,
    }
}

/// After `failures` failed fetches in a row: an exponential back-off (from the cooldown, at
/// least 1 s) capped by the interval, so an IdP that comes back is noticed soon.
fn retry_after_failures(shared: &Shared, failures: u32) -> Duration {
    let base = shared.config.cooldown.max(Duration::from_secs(1));
    base.saturating_mul(1 << failures.saturating_sub(1).min(6))
        .min(shared.config.refresh_interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_only_shortens_the_interval_down_to_a_minute() {
        let min = Duration::from_secs;
        let five = min(300);
        assert_eq!(fresh_for(five, None), five);
        assert_eq!(fresh_for(five, Some(min(120))), min(120));
        assert_eq!(fresh_for(five, Some(min(3600))), five, "never stretched");
        assert_eq!(
            fresh_for(five, Some(Duration::ZERO)),
            min(60),
            "no busy loop"
        );
        // An interval under a minute is its own floor.
        assert_eq!(fresh_for(min(10), Some(Duration::ZERO)), min(10));
    }
}
