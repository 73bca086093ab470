//! Time sources for [`MemoryStore`](super::MemoryStore): the real monotonic clock and a
//! manual clock for tests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// A monotonic time source, in nanoseconds since an arbitrary fixed origin.
///
/// The memory store only compares and subtracts readings, so the origin does not matter;
/// readings should not go backwards (a reading a little behind the previous one is
/// tolerated: GCRA takes the later of the stored time and now).
///
/// ```
/// use tower_mcp_auth::store::{Clock, SystemClock};
///
/// let a = SystemClock.now_nanos();
/// let b = SystemClock.now_nanos();
/// assert!(b >= a);
/// ```
pub trait Clock: Send + Sync + 'static {
    /// The current reading.
    fn now_nanos(&self) -> u64;
}

/// The process's monotonic clock, counted from the first reading in the process.
///
/// Reads the CPU's invariant time-stamp counter through [`quanta`](https://docs.rs/quanta)
/// (calibrated once against the OS monotonic clock, the same source `governor` uses), about
/// 10 ns a reading instead of 25 ns for `Instant::now`; where no invariant TSC exists, quanta
/// falls back to the OS monotonic clock. The first reading in the process calibrates the
/// counter (typically about a millisecond, at most 200 ms); [`MemoryStore`] takes that
/// reading when it is built, not on the first request.
///
/// [`MemoryStore`]: super::MemoryStore
///
/// ```
/// use tower_mcp_auth::store::{MemoryStore, SystemClock};
///
/// let store = MemoryStore::builder().clock(SystemClock).build()?;
/// # Ok::<(), tower_mcp_auth::store::StoreError>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

struct Origin {
    clock: quanta::Clock,
    raw: u64,
}

impl Clock for SystemClock {
    #[inline]
    fn now_nanos(&self) -> u64 {
        static ORIGIN: OnceLock<Origin> = OnceLock::new();
        let origin = ORIGIN.get_or_init(|| {
            let clock = quanta::Clock::new();
            let raw = clock.raw();
            Origin { clock, raw }
        });
        // Saturates at 0 if another core's counter reads a hair behind the origin; the stores
        // tolerate readings that step back by that much.
        origin.clock.delta_as_nanos(origin.raw, origin.clock.raw())
    }
}

/// A clock that only moves when told to. Clones share the same time.
///
/// ```
/// use std::time::Duration;
/// use tower_mcp_auth::store::{Clock, ManualClock};
///
/// let clock = ManualClock::new();
/// let view = clock.clone();
/// clock.advance(Duration::from_millis(5));
/// assert_eq!(view.now_nanos(), 5_000_000);
/// ```
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock reading zero.
    ///
    /// ```
    /// use tower_mcp_auth::store::{Clock, ManualClock};
    /// assert_eq!(ManualClock::new().now_nanos(), 0);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock (and every clone of it) forward by `by`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_mcp_auth::store::{Clock, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// clock.advance(Duration::from_secs(1));
    /// assert_eq!(clock.now_nanos(), 1_000_000_000);
    /// ```
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        // fetch_update never fails with a closure that always returns Some.
        let _ = self
            .nanos
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                Some(n.saturating_add(by))
            });
    }
}

impl Clock for ManualClock {
    #[inline]
    fn now_nanos(&self) -> u64 {
        self.nanos.load(Ordering::SeqCst)
    }
}
