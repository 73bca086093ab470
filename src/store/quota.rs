//! [`Quota`], [`RateDecision`] and the GCRA arithmetic shared by every backend.
//!
//! GCRA (the generic cell rate algorithm, as in the `governor` crate) keeps one number per key:
//! the theoretical arrival time (TAT) of the next request if the client sent at exactly the
//! sustained rate. A request of cost `c` is allowed when `max(TAT, now) + c·T − now ≤ τ`, where
//! `T` is the emission interval (`period / burst`) and `τ` the full bucket (`period`). Nothing
//! runs in the background: a key whose TAT is in the past is the same as an absent key.
//!
//! Backends only fetch `(now, TAT)` atomically and store the new TAT; the decision itself is
//! computed here, once, so every store answers identically.

use std::time::Duration;

use super::StoreError;

/// Longest accepted quota period. Longer windows are almost certainly a unit mistake, and the
/// bound keeps every TAT exact in Redis' Lua numbers (doubles) and in `i64` SQL columns.
pub const MAX_PERIOD: Duration = Duration::from_secs(366 * 24 * 60 * 60);

/// A rate limit: at most `burst` requests at once, refilled evenly over `period`.
///
/// A full bucket holds `burst` cells; one cell comes back every `period / burst` (the
/// *emission interval*), so an idle client regains its whole burst after `period`. Sustained
/// traffic is therefore capped at `burst` requests per `period`, and a client may spend its
/// whole burst at once.
///
/// ```
/// use std::time::Duration;
/// use tower_mcp_auth::store::Quota;
///
/// // 100 requests per minute: a burst of 100, one cell back every 600 ms.
/// let q = Quota::per_minute(100)?;
/// assert_eq!(q.burst_size(), 100);
/// assert_eq!(q.period(), Duration::from_secs(60));
/// assert_eq!(q.emission_interval(), Duration::from_millis(600));
///
/// // One request every 2 s sustained, but up to 5 at once (governor's `allow_burst`).
/// let q = Quota::with_period(Duration::from_secs(2))?.burst(5)?;
/// assert_eq!(q.period(), Duration::from_secs(10));
/// # Ok::<(), tower_mcp_auth::store::QuotaError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Quota {
    burst: u32,
    period_ns: u64,
}

/// Why a [`Quota`] was rejected.
///
/// ```
/// use std::time::Duration;
/// use tower_mcp_auth::store::{Quota, QuotaError};
///
/// assert_eq!(Quota::per_second(0), Err(QuotaError::ZeroBurst));
/// assert_eq!(Quota::new(1, Duration::ZERO), Err(QuotaError::ZeroPeriod));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QuotaError {
    /// `burst` was 0: the quota would never allow anything.
    #[error("quota burst must be at least 1")]
    ZeroBurst,
    /// `period` was zero.
    #[error("quota period must be greater than zero")]
    ZeroPeriod,
    /// `period` was longer than [`MAX_PERIOD`].
    #[error("quota period must be at most 366 days")]
    PeriodTooLong,
    /// `period / burst` was under one nanosecond.
    #[error("quota emission interval (period / burst) must be at least 1 ns")]
    IntervalTooShort,
}

impl Quota {
    /// `burst` requests per `period`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_mcp_auth::store::Quota;
    ///
    /// let q = Quota::new(10, Duration::from_secs(30))?;
    /// assert_eq!(q.emission_interval(), Duration::from_secs(3));
    /// # Ok::<(), tower_mcp_auth::store::QuotaError>(())
    /// ```
    pub fn new(burst: u32, period: Duration) -> Result<Self, QuotaError> {
        if burst == 0 {
            return Err(QuotaError::ZeroBurst);
        }
        if period.is_zero() {
            return Err(QuotaError::ZeroPeriod);
        }
        if period > MAX_PERIOD {
            return Err(QuotaError::PeriodTooLong);
        }
        // Cannot truncate: MAX_PERIOD is far below u64::MAX nanoseconds.
        let period_ns = period.as_nanos() as u64;
        if period_ns < u64::from(burst) {
            return Err(QuotaError::IntervalTooShort);
        }
        Ok(Self { burst, period_ns })
    }

    /// `n` requests per second, all of which may come at once.
    ///
    /// ```
    /// use tower_mcp_auth::store::Quota;
    /// assert_eq!(Quota::per_second(5)?.burst_size(), 5);
    /// # Ok::<(), tower_mcp_auth::store::QuotaError>(())
    /// ```
    pub fn per_second(n: u32) -> Result<Self, QuotaError> {
        Self::new(n, Duration::from_secs(1))
    }

    /// `n` requests per minute, all of which may come at once.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_mcp_auth::store::Quota;
    /// assert_eq!(Quota::per_minute(60)?.emission_interval(), Duration::from_secs(1));
    /// # Ok::<(), tower_mcp_auth::store::QuotaError>(())
    /// ```
    pub fn per_minute(n: u32) -> Result<Self, QuotaError> {
        Self::new(n, Duration::from_secs(60))
    }

    /// `n` requests per hour, all of which may come at once.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_mcp_auth::store::Quota;
    /// assert_eq!(Quota::per_hour(3600)?.emission_interval(), Duration::from_secs(1));
    /// # Ok::<(), tower_mcp_auth::store::QuotaError>(())
    /// ```
    pub fn per_hour(n: u32) -> Result<Self, QuotaError> {
        Self::new(n, Duration::from_secs(3600))
    }

    /// One request per `interval`, with a burst of 1. Chain [`burst`](Self::burst) to allow
    /// more at once at the same sustained rate.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_mcp_auth::store::Quota;
    ///
    /// let q = Quota::with_period(Duration::from_millis(250))?;
    /// assert_eq!((q.burst_size(), q.period()), (1, Duration::from_millis(250)));
    /// # Ok::<(), tower_mcp_auth::store::QuotaError>(())
    /// ```
    pub fn with_period(interval: Duration) -> Result<Self, QuotaError> {
        Self::new(1, interval)
    }

    /// Sets the burst size while keeping the emission interval (the sustained rate), so the
    /// period becomes `emission_interval × n`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_mcp_auth::store::Quota;
    ///
    /// // Still 10 per second sustained, but 50 may arrive at once.
    /// let q = Quota::per_second(10)?.burst(50)?;
    /// assert_eq!(q.emission_interval(), Duration::from_millis(100));
    /// assert_eq!(q.period(), Duration::from_secs(5));
    /// # Ok::<(), tower_mcp_auth::store::QuotaError>(())
    /// ```
    pub fn burst(self, n: u32) -> Result<Self, QuotaError> {
        if n == 0 {
            return Err(QuotaError::ZeroBurst);
        }
        let interval = self.period_ns / u64::from(self.burst);
        let period_ns = interval
            .checked_mul(u64::from(n))
            .ok_or(QuotaError::PeriodTooLong)?;
        Self::new(n, Duration::from_nanos(period_ns))
    }

    /// How many requests may arrive at once (the `limit` of every [`RateDecision`]).
    ///
    /// ```
    /// use tower_mcp_auth::store::Quota;
    /// assert_eq!(Quota::per_hour(7)?.burst_size(), 7);
    /// # Ok::<(), tower_mcp_auth::store::QuotaError>(())
    /// ```
    pub fn burst_size(&self) -> u32 {
        self.burst
    }

    /// The time an idle key takes to refill completely.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_mcp_auth::store::Quota;
    /// assert_eq!(Quota::per_minute(7)?.period(), Duration::from_secs(60));
    /// # Ok::<(), tower_mcp_auth::store::QuotaError>(())
    /// ```
    pub fn period(&self) -> Duration {
        Duration::from_nanos(self.period_ns)
    }

    /// The time for one cell to come back (`period / burst`, rounded down to whole ns).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_mcp_auth::store::Quota;
    /// assert_eq!(Quota::per_second(4)?.emission_interval(), Duration::from_millis(250));
    /// # Ok::<(), tower_mcp_auth::store::QuotaError>(())
    /// ```
    pub fn emission_interval(&self) -> Duration {
        Duration::from_nanos(self.period_ns / u64::from(self.burst))
    }

    /// GCRA parameters in nanoseconds (memory store).
    pub(crate) fn gcra_nanos(&self) -> Gcra {
        Gcra {
            interval: self.period_ns / u64::from(self.burst),
            tau: self.period_ns,
            burst: self.burst,
            tick_ns: 1,
        }
    }

    /// GCRA parameters in microseconds (Redis `TIME`, SQL server clocks). An emission interval
    /// under 1 µs (quotas above a million per second) is rounded up to 1 µs.
    #[allow(dead_code)] // used by the optional backends only
    pub(crate) fn gcra_micros(&self) -> Gcra {
        let interval = (self.period_ns / u64::from(self.burst) / 1_000).max(1);
        Gcra {
            interval,
            tau: (self.period_ns / 1_000).max(interval * u64::from(self.burst)),
            burst: self.burst,
            tick_ns: 1_000,
        }
    }

    /// Rejects a cost that can never fit, before any backend is asked.
    pub(crate) fn check_cost(&self, cost: u32) -> Result<(), StoreError> {
        if cost > self.burst {
            Err(StoreError::CostExceedsBurst {
                cost,
                burst: self.burst,
            })
        } else {
            Ok(())
        }
    }
}

/// The outcome of a GCRA check.
///
/// ```
/// use std::time::Duration;
/// use tower_mcp_auth::store::{MemoryStore, Quota, StateStore};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// let quota = Quota::per_minute(2)?;
/// let first = store.gcra("client-1", quota, 1).await?;
/// assert!(first.allowed);
/// assert_eq!((first.limit, first.remaining), (2, 1));
/// assert_eq!(first.retry_after, Duration::ZERO);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateDecision {
    /// Whether the request fits (and, for [`StateStore::gcra`](super::StateStore::gcra), was
    /// counted).
    pub allowed: bool,
    /// The quota's burst size (`RateLimit-Limit`).
    pub limit: u32,
    /// Requests of cost 1 that would still be allowed right now, after this one if it was
    /// allowed (`RateLimit-Remaining`).
    pub remaining: u32,
    /// When denied, how long until the same request would be allowed; zero when allowed.
    pub retry_after: Duration,
    /// How long until the key is back to a full bucket (`RateLimit-Reset`).
    pub reset_after: Duration,
}

/// GCRA parameters in one time unit (the "tick") shared with the backend's clock.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Gcra {
    pub(crate) interval: u64,
    pub(crate) tau: u64,
    pub(crate) burst: u32,
    tick_ns: u64,
}

/// A decision and, when it must be stored, the new TAT.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Step {
    pub(crate) decision: RateDecision,
    pub(crate) new_tat: Option<u64>,
}

impl Gcra {
    /// Decides a request of `cost` cells at `now`, given the stored TAT (if any).
    ///
    /// Saturating arithmetic: a corrupt or foreign TAT must never panic or wrap around.
    pub(crate) fn step(&self, tat: Option<u64>, now: u64, cost: u32) -> Step {
        let base = tat.unwrap_or(0).max(now);
        let used = base - now;
        let after = used.saturating_add(self.interval.saturating_mul(u64::from(cost)));
        let burst = u64::from(self.burst);
        if after <= self.tau {
            Step {
                decision: RateDecision {
                    allowed: true,
                    limit: self.burst,
                    remaining: ((self.tau - after) / self.interval).min(burst) as u32,
                    retry_after: Duration::ZERO,
                    reset_after: self.duration(after),
                },
                new_tat: (cost > 0).then(|| now + after),
            }
        } else {
            Step {
                decision: RateDecision {
                    allowed: false,
                    limit: self.burst,
                    remaining: (self.tau.saturating_sub(used) / self.interval).min(burst) as u32,
                    retry_after: self.duration(after - self.tau),
                    reset_after: self.duration(used),
                },
                new_tat: None,
            }
        }
    }

    fn duration(&self, ticks: u64) -> Duration {
        Duration::from_nanos(ticks.saturating_mul(self.tick_ns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn quota_validation() {
        assert_eq!(Quota::per_second(0), Err(QuotaError::ZeroBurst));
        assert_eq!(Quota::new(1, Duration::ZERO), Err(QuotaError::ZeroPeriod));
        assert_eq!(
            Quota::new(1, MAX_PERIOD + Duration::from_secs(1)),
            Err(QuotaError::PeriodTooLong)
        );
        assert_eq!(
            Quota::new(10, Duration::from_nanos(9)),
            Err(QuotaError::IntervalTooShort)
        );
        assert_eq!(
            Quota::per_second(1).unwrap().burst(0),
            Err(QuotaError::ZeroBurst)
        );
        assert!(Quota::new(u32::MAX, Duration::from_secs(60)).is_ok());
    }

    #[test]
    fn burst_then_deny_then_replenish() {
        let g = Quota::new(3, ms(300)).unwrap().gcra_nanos();
        let ns = |d: Duration| d.as_nanos() as u64;
        let mut tat = None;
        for (i, remaining) in [2, 1, 0].into_iter().enumerate() {
            let s = g.step(tat, 0, 1);
            assert!(s.decision.allowed);
            assert_eq!(s.decision.remaining, remaining);
            assert_eq!(s.decision.reset_after, ms(100 * (i as u64 + 1)));
            tat = s.new_tat;
        }
        let s = g.step(tat, 0, 1);
        assert!(!s.decision.allowed);
        assert_eq!(s.decision.retry_after, ms(100));
        assert_eq!(s.decision.reset_after, ms(300));
        assert_eq!(s.new_tat, None);
        // One interval later exactly one cell is back.
        let s = g.step(tat, ns(ms(100)), 1);
        assert!(s.decision.allowed);
        assert_eq!(s.decision.remaining, 0);
    }

    #[test]
    fn cost_zero_never_writes() {
        let g = Quota::per_second(2).unwrap().gcra_nanos();
        let s = g.step(None, 5, 0);
        assert!(s.decision.allowed);
        assert_eq!(s.decision.remaining, 2);
        assert_eq!(s.new_tat, None);
    }

    #[test]
    fn micros_keep_the_burst_reachable() {
        let g = Quota::per_second(3).unwrap().gcra_micros();
        assert_eq!(g.interval, 333_333);
        assert!(g.interval * 3 <= g.tau);
        let g = Quota::per_second(4_000_000).unwrap().gcra_micros();
        assert_eq!(g.interval, 1);
        assert_eq!(g.tau, 4_000_000);
    }

    #[test]
    fn corrupt_tat_saturates() {
        let g = Quota::per_second(2).unwrap().gcra_nanos();
        let s = g.step(Some(u64::MAX), 0, 2);
        assert!(!s.decision.allowed);
        assert_eq!(s.decision.remaining, 0);
    }

    #[test]
    fn cost_above_burst_is_an_error() {
        let q = Quota::per_second(2).unwrap();
        assert!(q.check_cost(2).is_ok());
        assert!(matches!(
            q.check_cost(3),
            Err(StoreError::CostExceedsBurst { cost: 3, burst: 2 })
        ));
    }
}
