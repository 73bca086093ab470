//! StateStore benchmarks.
//!
//! * `memory_gcra/*`: one GCRA decision in `MemoryStore` on one key and spread over 100k keys,
//!   against the `governor` crate's keyed limiter (`DefaultKeyedRateLimiter<String>`, dashmap +
//!   quanta) in the same run.
//! * `memory_flood/*`: a decision for a never-seen key in a full store (insert + eviction).
//! * `redis_gcra/*` (feature `redis`, Redis at `REDIS_URL`): decisions per second from 32
//!   concurrent tokio tasks through `RedisStore`, against raw `EVALSHA` of the same script on
//!   a plain multiplexed connection. Skipped with a message if Redis is unreachable.
//! * memory per tracked key at 1M keys, printed before the timings: live heap bytes measured by
//!   a counting global allocator (requested sizes; the system allocator adds its own rounding,
//!   so the process RSS growth is printed too).
//!
//! ```text
//! cargo bench --bench store --features redis -- --warm-up-time 1 --measurement-time 3
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use criterion::{criterion_group, Criterion, Throughput};
use governor::{DefaultKeyedRateLimiter, RateLimiter};
use tower_mcp_auth::store::{MemoryStore, Quota, StateStore};

/// Live heap bytes (requested sizes) of the whole process.
static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: forwards every call to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A quota that never denies at benchmark speed: one cell back every 10 ms, but a burst of
/// a billion. Every call takes the allow-and-store path in both limiters. Keys are primed
/// [`PRIME`] cells ahead so they stay tracked (their bucket is not full again) for the whole
/// run: a key whose bucket is full is, by design, indistinguishable from an absent one.
fn ours_quota() -> Quota {
    Quota::with_period(Duration::from_millis(10))
        .and_then(|q| q.burst(1_000_000_000))
        .expect("valid quota")
}

fn governor_quota() -> governor::Quota {
    governor::Quota::with_period(Duration::from_millis(10))
        .expect("non-zero period")
        .allow_burst(NonZeroU32::new(1_000_000_000).expect("non-zero"))
}

/// Cells consumed when priming a key: 10,000 x 10 ms = 100 s of headroom.
const PRIME: u32 = 10_000;

/// The quota for the memory-per-key measurement: an ordinary 100 per hour.
fn per_hour_quota() -> (Quota, governor::Quota) {
    (
        Quota::per_hour(100).expect("valid quota"),
        governor::Quota::per_hour(NonZeroU32::new(100).expect("non-zero")),
    )
}

/// What a rate-limit layer reads first, as governor's `check_key(..).is_ok()`.
#[inline(always)]
fn allowed(
    d: tower_mcp_auth::Deferred<
        Result<tower_mcp_auth::store::RateDecision, tower_mcp_auth::store::StoreError>,
    >,
) -> bool {
    matches!(d.try_into_ready(), Ok(Ok(d)) if d.allowed)
}

fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("user:{i:07}")).collect()
}

fn memory_gcra(c: &mut Criterion) {
    let store = MemoryStore::new();
    let limiter: DefaultKeyedRateLimiter<String> = RateLimiter::keyed(governor_quota());
    let q = ours_quota();

    let mut group = c.benchmark_group("memory_gcra");
    group.throughput(Throughput::Elements(1));

    let one = "user:0000001".to_owned();
    let prime = NonZeroU32::new(PRIME).expect("non-zero");
    let _ = store.gcra(&one, q, PRIME).try_into_ready();
    let _ = limiter.check_key_n(&one, prime);
    group.bench_function("1_key/tower_mcp_auth", |b| {
        b.iter(|| black_box(allowed(store.gcra(black_box(&one), q, 1))))
    });
    group.bench_function("1_key/governor", |b| {
        b.iter(|| black_box(limiter.check_key(black_box(&one)).is_ok()))
    });

    let keys = keys(100_000);
    for k in &keys {
        let _ = store.gcra(k, q, PRIME).try_into_ready();
        let _ = limiter.check_key_n(k, prime);
    }
    let mut i = 0;
    group.bench_function("100k_keys/tower_mcp_auth", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            black_box(allowed(store.gcra(black_box(&keys[i]), q, 1)))
        })
    });
    let mut i = 0;
    group.bench_function("100k_keys/governor", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            black_box(limiter.check_key(black_box(&keys[i])).is_ok())
        })
    });
    group.finish();
}

/// The cost of a decision for a never-seen key when the store is full: every call inserts,
/// and eviction (batched, 1/16 of a shard at a time) runs on the way. governor has no cap,
/// so there is nothing to compare against; the key formatting is included in the figure.
fn memory_flood(c: &mut Criterion) {
    let cap = 100_000;
    let store = MemoryStore::builder()
        .max_entries(cap)
        .build()
        .expect("valid store");
    let (q, _) = per_hour_quota();
    for i in 0..cap {
        let _ = store.gcra(&format!("warm:{i}"), q, 1).try_into_ready();
    }
    let mut group = c.benchmark_group("memory_flood");
    group.throughput(Throughput::Elements(1));
    let mut i = 0u64;
    let mut key = String::with_capacity(32);
    group.bench_function("new_key_at_cap/tower_mcp_auth", |b| {
        b.iter(|| {
            use std::fmt::Write;
            i += 1;
            key.clear();
            let _ = write!(key, "flood:{i}");
            black_box(allowed(store.gcra(&key, q, 1)))
        })
    });
    group.finish();
    assert!(store.len() <= cap);
}

#[cfg(feature = "redis")]
mod redis_bench {
    use std::sync::Arc;
    use std::time::Instant;

    use super::*;
    use tower_mcp_auth::store::RedisStore;

    const TASKS: u64 = 32;
    const KEYS: usize = 1_000;
    const GCRA_LUA: &str = include_str!("../src/store/redis/gcra.lua");

    pub(super) fn redis_gcra(c: &mut Criterion) {
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let prefix = format!("tma-bench:{}:", std::process::id());
        let setup = rt.block_on(async {
            let store = RedisStore::builder(&url).prefix(&prefix).build().await?;
            let client = ::redis::Client::open(url.as_str())
                .map_err(|e| tower_mcp_auth::store::StoreError::Config(e.to_string().into()))?;
            let conn = client
                .get_multiplexed_async_connection()
                .await
                .map_err(|e| tower_mcp_auth::store::StoreError::Config(e.to_string().into()))?;
            Ok::<_, tower_mcp_auth::store::StoreError>((store, conn))
        });
        let (store, conn) = match setup {
            Ok(v) => v,
            Err(err) => {
                eprintln!("SKIPPED redis_gcra: Redis unreachable at REDIS_URL: {err}");
                return;
            }
        };
        let store = Arc::new(store);
        let q = ours_quota();
        let names: Arc<Vec<String>> = Arc::new(keys(KEYS));
        // The raw client gets its keys pre-formatted, in the store's layout.
        let raw_keys: Arc<Vec<String>> = Arc::new(
            names
                .iter()
                .map(|k| format!("{prefix}raw:{{{k}}}"))
                .collect(),
        );
        let sha: String = rt
            .block_on(
                ::redis::cmd("SCRIPT")
                    .arg("LOAD")
                    .arg(GCRA_LUA)
                    .query_async(&mut conn.clone()),
            )
            .expect("SCRIPT LOAD");
        // The same never-denying quota, in the script's microseconds.
        let interval_us = 10_000u64;
        let tau_us = interval_us * 1_000_000_000;

        let mut group = c.benchmark_group("redis_gcra");
        group.throughput(Throughput::Elements(1));
        group.bench_function("32_tasks/RedisStore", |b| {
            b.iter_custom(|iters| {
                rt.block_on(run_tasks(iters, |task, n| {
                    let (store, names) = (Arc::clone(&store), Arc::clone(&names));
                    async move {
                        for j in 0..n {
                            let key = &names[(task as usize * 31 + j as usize) % KEYS];
                            let d = store.gcra(key, q, 1).await.expect("redis gcra");
                            black_box(d);
                        }
                    }
                }))
            })
        });
        group.bench_function("32_tasks/raw_evalsha", |b| {
            b.iter_custom(|iters| {
                rt.block_on(run_tasks(iters, |task, n| {
                    let (mut conn, keys, sha) = (conn.clone(), Arc::clone(&raw_keys), sha.clone());
                    async move {
                        for j in 0..n {
                            let key = &keys[(task as usize * 31 + j as usize) % KEYS];
                            let r: (i64, i64, i64) = ::redis::cmd("EVALSHA")
                                .arg(&sha)
                                .arg(1)
                                .arg(key)
                                .arg(interval_us)
                                .arg(tau_us)
                                .arg(1)
                                .arg("1")
                                .query_async(&mut conn)
                                .await
                                .expect("EVALSHA");
                            black_box(r);
                        }
                    }
                }))
            })
        });
        group.finish();

        rt.block_on(async {
            let mut conn = conn.clone();
            let keys: Vec<String> = ::redis::cmd("KEYS")
                .arg(format!("{prefix}*"))
                .query_async(&mut conn)
                .await
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: Result<u64, _> = ::redis::cmd("DEL").arg(keys).query_async(&mut conn).await;
            }
        });
    }

    /// Runs `iters` operations split over [`TASKS`] tasks; returns the wall time.
    async fn run_tasks<F, Fut>(iters: u64, task: F) -> Duration
    where
        F: Fn(u64, u64) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let per_task = iters.div_ceil(TASKS);
        let start = Instant::now();
        let handles: Vec<_> = (0..TASKS)
            .map(|t| tokio::spawn(task(t, per_task)))
            .collect();
        for h in handles {
            h.await.expect("bench task");
        }
        // Normalise to exactly `iters` operations.
        start
            .elapsed()
            .mul_f64(iters as f64 / (per_task * TASKS) as f64)
    }
}

#[cfg(feature = "redis")]
fn redis_gcra(c: &mut Criterion) {
    redis_bench::redis_gcra(c);
}

#[cfg(not(feature = "redis"))]
fn redis_gcra(_: &mut Criterion) {
    eprintln!("SKIPPED redis_gcra: build with --features redis");
}

/// Live heap bytes per tracked key after `n` distinct keys, for both limiters.
fn memory_per_key(n: usize) {
    let (q, gq) = per_hour_quota();
    let before = LIVE.load(Ordering::Relaxed);
    let rss_before = rss_bytes();
    let store = MemoryStore::builder()
        .max_entries(2 * n)
        .build()
        .expect("valid store");
    for i in 0..n {
        // The key string is dropped right after the call: only what the store keeps counts.
        let _ = store.gcra(&format!("user:{i:07}"), q, 1).try_into_ready();
    }
    let ours = LIVE.load(Ordering::Relaxed) - before;
    let rss_ours = rss_bytes().saturating_sub(rss_before);
    assert_eq!(store.len(), n);

    let before = LIVE.load(Ordering::Relaxed);
    let limiter: DefaultKeyedRateLimiter<String> = RateLimiter::keyed(gq);
    for i in 0..n {
        let _ = limiter.check_key(&format!("user:{i:07}"));
    }
    let theirs = LIVE.load(Ordering::Relaxed) - before;
    assert_eq!(limiter.len(), n);

    println!(
        "memory per tracked GCRA key at {n} keys (12-byte keys): tower_mcp_auth {:.1} B heap \
         ({:.1} B RSS growth), governor {:.1} B heap",
        ours as f64 / n as f64,
        rss_ours as f64 / n as f64,
        theirs as f64 / n as f64,
    );
    drop((store, limiter));
}

/// Resident set size from /proc (0 where unavailable).
fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}

criterion_group!(benches, memory_gcra, memory_flood, redis_gcra);

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: keep that run short.
    let full = std::env::args().any(|a| a == "--bench");
    memory_per_key(if full { 1_000_000 } else { 10_000 });
    benches();
    Criterion::default().configure_from_args().final_summary();
}
