//! One StateStore conformance suite, written once, run against every backend:
//! memory (always), Redis (`--features redis`), PostgreSQL (`--features postgres`) and a
//! SQLite temp file (`--features sqlite`).
//!
//! Redis and PostgreSQL come from `REDIS_URL` / `DATABASE_URL` (defaults: local servers). An
//! unreachable server skips its tests locally and fails them when `CI=true`.

use crate::store_common;

use std::sync::Arc;
use std::time::Duration;

use store_common::{run, Backend};
use tower_mcp_auth::store::{Quota, RateDecision, StateStore, StoreError};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// `actual` is at most `expected` and at most `slack` below it (time only moves forward).
#[track_caller]
fn assert_near(actual: Duration, expected: Duration, slack: Duration, what: &str) {
    assert!(
        actual <= expected && actual + slack >= expected,
        "{what}: {actual:?} not within {slack:?} below {expected:?}"
    );
}

#[track_caller]
fn allowed(d: &RateDecision) {
    assert!(d.allowed, "expected allowed, got {d:?}");
    assert_eq!(d.retry_after, Duration::ZERO, "{d:?}");
}

/// The cases, each a plain async function over any backend.
mod cases {
    use super::*;

    pub async fn gcra_burst_then_deny(b: Arc<Backend>) {
        let s = &b.store;
        // 5 at once, one back every 2 s.
        let q = Quota::new(5, Duration::from_secs(10)).unwrap();
        for i in 0..5u32 {
            let d = s.gcra("burst", q, 1).await.unwrap();
            allowed(&d);
            assert_eq!((d.limit, d.remaining), (5, 4 - i), "{}: {d:?}", b.name);
            let full = Duration::from_secs(2) * (i + 1);
            assert_near(d.reset_after, full, b.slack(), "reset_after");
        }
        let d = s.gcra("burst", q, 1).await.unwrap();
        assert!(!d.allowed, "{}: {d:?}", b.name);
        assert_eq!((d.limit, d.remaining), (5, 0));
        assert_near(
            d.retry_after,
            Duration::from_secs(2),
            b.slack(),
            "retry_after",
        );
        assert_near(
            d.reset_after,
            Duration::from_secs(10),
            b.slack(),
            "reset_after",
        );
        // A denial consumes nothing: the next one says the same.
        let again = s.gcra("burst", q, 1).await.unwrap();
        assert!(!again.allowed);
        assert_near(
            again.reset_after,
            Duration::from_secs(10),
            b.slack(),
            "reset_after",
        );
    }

    pub async fn gcra_replenishes_over_time(b: Arc<Backend>) {
        let s = &b.store;
        // 2 at once, one back every 200 ms.
        let q = Quota::new(2, ms(400)).unwrap();
        allowed(&s.gcra("refill", q, 1).await.unwrap());
        allowed(&s.gcra("refill", q, 1).await.unwrap());
        let d = s.gcra("refill", q, 1).await.unwrap();
        assert!(!d.allowed, "{}: {d:?}", b.name);
        assert!(d.retry_after <= ms(200), "{d:?}");

        b.advance(ms(250)).await;
        let d = s.gcra("refill", q, 1).await.unwrap();
        allowed(&d);
        assert_eq!(d.remaining, 0, "{}: {d:?}", b.name);
        assert!(!s.gcra("refill", q, 1).await.unwrap().allowed);

        // Long enough for the whole bucket.
        b.advance(ms(450)).await;
        let d = s.gcra("refill", q, 1).await.unwrap();
        allowed(&d);
        assert_eq!(d.remaining, 1, "{}: {d:?}", b.name);
    }

    pub async fn gcra_peek_does_not_consume(b: Arc<Backend>) {
        let s = &b.store;
        let q = Quota::new(3, Duration::from_secs(60)).unwrap();
        for _ in 0..3 {
            let d = s.gcra_peek("peek", q, 1).await.unwrap();
            allowed(&d);
            // The decision gcra would make: one consumed, two left.
            assert_eq!(d.remaining, 2, "{}: {d:?}", b.name);
        }
        assert_eq!(s.gcra("peek", q, 1).await.unwrap().remaining, 2);
        assert_eq!(s.gcra("peek", q, 2).await.unwrap().remaining, 0);
        let peeked = s.gcra_peek("peek", q, 1).await.unwrap();
        assert!(!peeked.allowed);
        assert_near(
            peeked.retry_after,
            Duration::from_secs(20),
            b.slack(),
            "retry_after",
        );
        let real = s.gcra("peek", q, 1).await.unwrap();
        assert!(!real.allowed);
        assert_near(
            real.retry_after,
            peeked.retry_after,
            b.slack(),
            "retry_after",
        );
    }

    pub async fn gcra_refund_gives_back_what_was_consumed(b: Arc<Backend>) {
        let s = &b.store;
        // 3 at once, one back every 20 s.
        let q = Quota::new(3, Duration::from_secs(60)).unwrap();
        // A refund on a key never used (a full bucket) changes nothing.
        s.gcra_refund("refund", q, 1).await.unwrap();
        assert_eq!(s.gcra_peek("refund", q, 1).await.unwrap().remaining, 2);
        for _ in 0..3 {
            allowed(&s.gcra("refund", q, 1).await.unwrap());
        }
        assert!(!s.gcra_peek("refund", q, 1).await.unwrap().allowed);
        // Two back: exactly two more are allowed, the third is not.
        s.gcra_refund("refund", q, 2).await.unwrap();
        let d = s.gcra_peek("refund", q, 1).await.unwrap();
        allowed(&d);
        assert_eq!(d.remaining, 1, "{}: {d:?}", b.name);
        allowed(&s.gcra("refund", q, 1).await.unwrap());
        allowed(&s.gcra("refund", q, 1).await.unwrap());
        assert!(!s.gcra("refund", q, 1).await.unwrap().allowed);
        // Never more than the burst, however much is refunded.
        for _ in 0..5 {
            s.gcra_refund("refund", q, 3).await.unwrap();
        }
        assert_eq!(s.gcra("refund", q, 3).await.unwrap().remaining, 0);
        assert!(!s.gcra("refund", q, 1).await.unwrap().allowed);
        // Cost 0 is a no-op, a cost above the burst an error; values are untouched.
        s.gcra_refund("refund", q, 0).await.unwrap();
        assert!(!s.gcra_peek("refund", q, 1).await.unwrap().allowed);
        assert!(matches!(
            s.gcra_refund("refund", q, 4).await,
            Err(StoreError::CostExceedsBurst { cost: 4, burst: 3 })
        ));
        s.put("refund", b"v".to_vec(), Duration::from_secs(60))
            .await
            .unwrap();
        s.gcra_refund("refund", q, 1).await.unwrap();
        assert_eq!(s.get("refund").await.unwrap(), Some(b"v".to_vec()));
    }

    /// Concurrent reserve-then-refund pairs leave the bucket as full as before: the refund is
    /// atomic with concurrent `gcra` calls.
    pub async fn concurrent_reserve_and_refund_leave_the_bucket_full(b: Arc<Backend>) {
        let q = Quota::new(20, Duration::from_secs(3600)).unwrap();
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let b = Arc::clone(&b);
                tokio::spawn(async move {
                    let d = b.store.gcra("rr", q, 1).await.unwrap();
                    if d.allowed {
                        b.store.gcra_refund("rr", q, 1).await.unwrap();
                    }
                    d.allowed
                })
            })
            .collect();
        for task in tasks {
            assert!(task.await.unwrap(), "{}: within the burst", b.name);
        }
        let d = b.store.gcra_peek("rr", q, 20).await.unwrap();
        assert!(d.allowed, "{}: {d:?}", b.name);
    }

    pub async fn gcra_cost_above_burst_is_never_allowed(b: Arc<Backend>) {
        let s = &b.store;
        let q = Quota::new(3, Duration::from_secs(60)).unwrap();
        for result in [s.gcra("cost", q, 4).await, s.gcra_peek("cost", q, 4).await] {
            assert!(
                matches!(
                    result,
                    Err(StoreError::CostExceedsBurst { cost: 4, burst: 3 })
                ),
                "{}: {result:?}",
                b.name
            );
        }
        // Nothing was consumed: the whole burst is still there.
        let d = s.gcra("cost", q, 3).await.unwrap();
        allowed(&d);
        assert_eq!(d.remaining, 0);

        // A cost that fits the burst but not what is left waits for the missing cells.
        assert_eq!(s.gcra("cost2", q, 2).await.unwrap().remaining, 1);
        let d = s.gcra("cost2", q, 2).await.unwrap();
        assert!(!d.allowed);
        assert_eq!(d.remaining, 1);
        assert_near(
            d.retry_after,
            Duration::from_secs(20),
            b.slack(),
            "retry_after",
        );
    }

    pub async fn gcra_and_values_are_separate(b: Arc<Backend>) {
        let s = &b.store;
        let q = Quota::new(1, Duration::from_secs(60)).unwrap();
        s.put("shared", b"v".to_vec(), Duration::from_secs(60))
            .await
            .unwrap();
        allowed(&s.gcra("shared", q, 1).await.unwrap());
        assert_eq!(s.get("shared").await.unwrap(), Some(b"v".to_vec()));
        assert_eq!(s.take("shared").await.unwrap(), Some(b"v".to_vec()));
        assert!(!s.gcra("shared", q, 1).await.unwrap().allowed);
    }

    pub async fn gcra_on_odd_keys_keeps_one_bucket_each(b: Arc<Backend>) {
        let s = &b.store;
        let q = Quota::new(1, Duration::from_secs(60)).unwrap();
        // Braces are Cluster hash tags: each key still stays one bucket, in one slot.
        let keys = ["", "{", "}", "{}", "{tag}", "a}b{c", "ключ 🔑"];
        for key in keys {
            allowed(&s.gcra(key, q, 1).await.unwrap());
        }
        for key in keys {
            assert!(
                !s.gcra(key, q, 1).await.unwrap().allowed,
                "{}: {key:?}",
                b.name
            );
            s.gcra_refund(key, q, 1).await.unwrap();
            allowed(&s.gcra_peek(key, q, 1).await.unwrap());
        }
    }

    pub async fn insert_if_absent_only_once(b: Arc<Backend>) {
        let s = &b.store;
        let ttl = Duration::from_secs(60);
        assert!(s
            .insert_if_absent("once", b"first".to_vec(), ttl)
            .await
            .unwrap());
        assert!(!s
            .insert_if_absent("once", b"second".to_vec(), ttl)
            .await
            .unwrap());
        assert_eq!(s.get("once").await.unwrap(), Some(b"first".to_vec()));
    }

    pub async fn take_returns_once(b: Arc<Backend>) {
        let s = &b.store;
        assert!(s
            .insert_if_absent("take", b"state".to_vec(), Duration::from_secs(60))
            .await
            .unwrap());
        assert_eq!(s.take("take").await.unwrap(), Some(b"state".to_vec()));
        assert_eq!(s.take("take").await.unwrap(), None);
        assert_eq!(s.get("take").await.unwrap(), None);
        assert_eq!(s.take("never-there").await.unwrap(), None);
    }

    pub async fn values_expire(b: Arc<Backend>) {
        let s = &b.store;
        let ttl = ms(150);
        assert!(s
            .insert_if_absent("exp-a", b"a".to_vec(), ttl)
            .await
            .unwrap());
        s.put("exp-b", b"b".to_vec(), ttl).await.unwrap();
        s.put("exp-c", b"c".to_vec(), ttl).await.unwrap();
        s.put("exp-long", b"l".to_vec(), Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(s.get("exp-b").await.unwrap(), Some(b"b".to_vec()));

        b.advance(ms(300)).await;
        assert_eq!(s.get("exp-b").await.unwrap(), None, "{}", b.name);
        assert_eq!(s.take("exp-a").await.unwrap(), None, "{}", b.name);
        assert!(!s.delete("exp-c").await.unwrap(), "{}", b.name);
        // An expired value is absent: it can be inserted again.
        assert!(s
            .insert_if_absent("exp-b", b"b2".to_vec(), ttl)
            .await
            .unwrap());
        assert_eq!(s.get("exp-b").await.unwrap(), Some(b"b2".to_vec()));
        assert_eq!(s.get("exp-long").await.unwrap(), Some(b"l".to_vec()));
    }

    pub async fn put_overwrites_and_delete_removes(b: Arc<Backend>) {
        let s = &b.store;
        let ttl = Duration::from_secs(60);
        s.put("kv", b"v1".to_vec(), ttl).await.unwrap();
        s.put("kv", b"v2".to_vec(), ttl).await.unwrap();
        assert_eq!(s.get("kv").await.unwrap(), Some(b"v2".to_vec()));
        assert!(!s.insert_if_absent("kv", b"v3".to_vec(), ttl).await.unwrap());
        assert!(s.delete("kv").await.unwrap());
        assert_eq!(s.get("kv").await.unwrap(), None);
        assert!(!s.delete("kv").await.unwrap());
        assert!(!s.delete("never-there").await.unwrap());
        // Empty values and odd keys round-trip (braces matter to Redis hash tags).
        for key in ["", "{tag}", "a}b{c", "ключ 🔑", "x:y:z"] {
            s.put(key, Vec::new(), ttl).await.unwrap();
            assert_eq!(
                s.get(key).await.unwrap(),
                Some(Vec::new()),
                "{}: {key:?}",
                b.name
            );
            assert!(s.delete(key).await.unwrap());
        }
    }

    pub async fn zero_ttl_is_rejected(b: Arc<Backend>) {
        let s = &b.store;
        let put = s.put("z", b"v".to_vec(), Duration::ZERO).await;
        assert!(
            matches!(put, Err(StoreError::InvalidArgument(_))),
            "{put:?}"
        );
        let ins = s.insert_if_absent("z", b"v".to_vec(), Duration::ZERO).await;
        assert!(
            matches!(ins, Err(StoreError::InvalidArgument(_))),
            "{ins:?}"
        );
        assert_eq!(s.get("z").await.unwrap(), None);
    }

    pub async fn concurrent_take_has_one_winner(b: Arc<Backend>) {
        let s = &b.store;
        s.put("race", b"prize".to_vec(), Duration::from_secs(60))
            .await
            .unwrap();
        let barrier = Arc::new(tokio::sync::Barrier::new(64));
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let (s, barrier) = (Arc::clone(s), Arc::clone(&barrier));
                tokio::spawn(async move {
                    barrier.wait().await;
                    s.take("race").await.unwrap()
                })
            })
            .collect();
        let mut winners = 0;
        for task in tasks {
            if let Some(v) = task.await.unwrap() {
                assert_eq!(v, b"prize");
                winners += 1;
            }
        }
        assert_eq!(winners, 1, "{}", b.name);
    }

    pub async fn concurrent_gcra_admits_exactly_the_burst(b: Arc<Backend>) {
        let s = &b.store;
        let q = Quota::new(10, Duration::from_secs(3600)).unwrap();
        let barrier = Arc::new(tokio::sync::Barrier::new(64));
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let (s, barrier) = (Arc::clone(s), Arc::clone(&barrier));
                tokio::spawn(async move {
                    barrier.wait().await;
                    s.gcra("stampede", q, 1).await.unwrap().allowed
                })
            })
            .collect();
        let mut admitted = 0;
        for task in tasks {
            admitted += usize::from(task.await.unwrap());
        }
        assert_eq!(admitted, 10, "{}", b.name);
    }
}

/// Generates the tests of a backend fixture: one `#[tokio::test]` per case
/// (`conformance_suite!(memory)`), or one test running every case in turn on one local
/// Redis Cluster, started once and torn down at the end (`conformance_suite!(cluster redis_cluster)`).
macro_rules! conformance_suite {
    (@cases each $backend:ident: $($case:ident),* $(,)?) => {
        mod $backend {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    run(store_common::$backend().await, cases::$case).await;
                }
            )*
        }
    };
    (@cases cluster $backend:ident: $($case:ident),* $(,)?) => {
        mod $backend {
            use super::*;

            /// Three masters and three replicas started by the test: each case runs with
            /// its own key prefix, then the cluster is torn down.
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn every_case_on_a_local_cluster() {
                let Some(cluster) = store_common::RedisCluster::start().await else {
                    return;
                };
                $(
                    eprintln!("{}: {}", stringify!($backend), stringify!($case));
                    run(store_common::$backend(&cluster).await, cases::$case).await;
                )*
                cluster.stop();
            }
        }
    };
    (@list $how:ident $backend:ident) => {
        conformance_suite!(@cases $how $backend:
            gcra_burst_then_deny,
            gcra_replenishes_over_time,
            gcra_peek_does_not_consume,
            gcra_refund_gives_back_what_was_consumed,
            concurrent_reserve_and_refund_leave_the_bucket_full,
            gcra_cost_above_burst_is_never_allowed,
            gcra_and_values_are_separate,
            gcra_on_odd_keys_keeps_one_bucket_each,
            insert_if_absent_only_once,
            take_returns_once,
            values_expire,
            put_overwrites_and_delete_removes,
            zero_ttl_is_rejected,
            concurrent_take_has_one_winner,
            concurrent_gcra_admits_exactly_the_burst,
        );
    };
    (cluster $backend:ident) => {
        conformance_suite!(@list cluster $backend);
    };
    ($backend:ident) => {
        conformance_suite!(@list each $backend);
    };
}

conformance_suite!(memory);
#[cfg(feature = "redis")]
conformance_suite!(redis);
#[cfg(feature = "redis-cluster")]
conformance_suite!(cluster redis_cluster);
#[cfg(feature = "postgres")]
conformance_suite!(postgres);
#[cfg(feature = "sqlite")]
conformance_suite!(sqlite);

/// Memory-only: the cap holds under a flood of distinct keys.
mod memory_only {
    use super::*;
    use tower_mcp_auth::store::{ManualClock, MemoryStore};

    #[tokio::test]
    async fn cap_bounds_len_under_a_flood_of_keys() {
        let cap = 1_000;
        let store = MemoryStore::builder()
            .max_entries(cap)
            .clock(ManualClock::new())
            .build()
            .unwrap();
        let q = Quota::per_minute(10).unwrap();
        for i in 0..10 * cap {
            assert!(store.gcra(&format!("ip:{i}"), q, 1).await.unwrap().allowed);
            store
                .put(&format!("v:{i}"), vec![0; 16], Duration::from_secs(60))
                .await
                .unwrap();
            assert!(
                store.len() <= cap,
                "len {} > cap {cap} after {i}",
                store.len()
            );
        }
        // The newest keys survive: eviction drops the soonest to expire.
        assert_eq!(
            store.get(&format!("v:{}", 10 * cap - 1)).await.unwrap(),
            Some(vec![0; 16])
        );
    }

    #[test]
    fn answers_without_a_runtime_or_allocation_of_a_future() {
        let store = MemoryStore::new();
        let q = Quota::per_second(5).unwrap();
        let d = store
            .gcra("k", q, 1)
            .try_into_ready()
            .ok()
            .unwrap()
            .unwrap();
        assert!(d.allowed);
    }
}

#[cfg(feature = "redis")]
mod redis_only {
    use super::*;
    use store_common::{free_port, random_id, redis_cleanup, redis_url, unreachable, RedisServer};
    use tower_mcp_auth::store::RedisStore;

    async fn client(prefix: &str) -> Option<RedisStore> {
        match RedisStore::builder(redis_url())
            .prefix(prefix)
            .build()
            .await
        {
            Ok(store) => Some(store),
            Err(err) => {
                unreachable("Redis", "REDIS_URL", &err);
                None
            }
        }
    }

    #[tokio::test]
    async fn two_clients_on_one_prefix_share_a_quota() {
        let prefix = format!("tma-test:{}:", random_id());
        let (Some(a), Some(b)) = (client(&prefix).await, client(&prefix).await) else {
            return;
        };
        let q = Quota::new(3, Duration::from_secs(3600)).unwrap();
        let mut admitted = 0;
        for i in 0..8 {
            let store = if i % 2 == 0 { &a } else { &b };
            admitted += usize::from(store.gcra("shared", q, 1).await.unwrap().allowed);
        }
        // A different prefix is a different quota.
        let other_prefix = format!("tma-test:{}:", random_id());
        let other = client(&other_prefix).await.unwrap();
        let fresh = other.gcra("shared", q, 1).await.unwrap();
        redis_cleanup(prefix).await;
        redis_cleanup(other_prefix).await;
        assert_eq!(admitted, 3);
        assert!(fresh.allowed);
    }

    #[tokio::test]
    async fn keys_use_the_prefix_and_a_hash_tag() {
        let prefix = format!("tma-test:{}:", random_id());
        let Some(store) = client(&prefix).await else {
            return;
        };
        let q = Quota::per_minute(5).unwrap();
        store.gcra("user:1", q, 1).await.unwrap();
        store
            .put("user:1", b"v".to_vec(), Duration::from_secs(60))
            .await
            .unwrap();
        let client = ::redis::Client::open(redis_url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let gcra_key = format!("{prefix}gcra:{{user:1}}");
        let kv_key = format!("{prefix}kv:{{user:1}}");
        let exists: (bool, bool) = ::redis::pipe()
            .cmd("EXISTS")
            .arg(&gcra_key)
            .cmd("EXISTS")
            .arg(&kv_key)
            .query_async(&mut conn)
            .await
            .unwrap();
        // GCRA keys carry a TTL: they vanish once the bucket is full again.
        let pttl: i64 = ::redis::cmd("PTTL")
            .arg(&gcra_key)
            .query_async(&mut conn)
            .await
            .unwrap();
        redis_cleanup(prefix).await;
        assert_eq!(exists, (true, true));
        assert!(pttl > 0 && pttl <= 12_000, "pttl {pttl}");
    }

    #[tokio::test]
    async fn foreign_data_in_a_gcra_key_is_corrupt_not_a_panic() {
        let prefix = format!("tma-test:{}:", random_id());
        let Some(store) = client(&prefix).await else {
            return;
        };
        let client = ::redis::Client::open(redis_url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let _: () = ::redis::cmd("SET")
            .arg(format!("{prefix}gcra:{{bad}}"))
            .arg("not a number")
            .query_async(&mut conn)
            .await
            .unwrap();
        let _: () = ::redis::cmd("HSET")
            .arg(format!("{prefix}gcra:{{hash}}"))
            .arg("f")
            .arg("v")
            .query_async(&mut conn)
            .await
            .unwrap();
        let q = Quota::per_minute(5).unwrap();
        let bad = store.gcra("bad", q, 1).await;
        let hash = store.gcra("hash", q, 1).await;
        redis_cleanup(prefix).await;
        assert!(matches!(bad, Err(StoreError::Corrupt { .. })), "{bad:?}");
        assert!(matches!(hash, Err(StoreError::Corrupt { .. })), "{hash:?}");
    }

    /// Kills the store's Redis and starts it again: while it is down the store fails fast
    /// with `Unavailable`, afterwards it recovers on its own. Needs `redis-server` in PATH
    /// (installed wherever the shared Redis runs): a skip locally without it, a failure in CI.
    #[tokio::test]
    async fn reconnects_after_a_redis_restart() {
        let Some(mut server) = RedisServer::start(free_port(), &[]).await else {
            return;
        };
        let store = RedisStore::connect(&server.url()).await.unwrap();
        let q = Quota::per_hour(100).unwrap();
        assert!(store.gcra("k", q, 1).await.unwrap().allowed);

        server.kill();
        let down = store.gcra("k", q, 1).await.unwrap_err();
        assert!(down.is_unavailable(), "{down:?}");

        server.restart().await;
        let mut recovered = false;
        for _ in 0..50 {
            tokio::time::sleep(ms(100)).await;
            if store.gcra("k", q, 1).await.is_ok() {
                recovered = true;
                break;
            }
        }
        assert!(recovered, "no reconnection within 5 s");
    }

    #[tokio::test]
    async fn unreachable_server_is_unavailable() {
        let err = RedisStore::builder("redis://127.0.0.1:1")
            .connection_timeout(Duration::from_millis(500))
            .build()
            .await
            .unwrap_err();
        assert!(err.is_unavailable(), "{err:?}");
        let err = RedisStore::connect("not a url").await.unwrap_err();
        assert!(matches!(err, StoreError::Config(_)), "{err:?}");
        assert!(!err.to_string().contains("not a url"));
    }
}

/// Redis Cluster only: the ways to name a cluster, and a master failover under traffic.
#[cfg(feature = "redis-cluster")]
mod redis_cluster_only {
    use super::*;
    use crate::common::{assert_error, client, registry, routes, serve, ALICE_KEY};
    use std::time::Instant;
    use store_common::{random_id, RedisCluster};
    use tower_mcp_auth::rate_limit::{FailMode, RateLimitLayer};
    use tower_mcp_auth::store::RedisStore;
    use tower_mcp_auth::{EndpointPolicy, McpAuth};

    #[tokio::test]
    async fn bad_cluster_urls_are_config_errors_and_a_dead_cluster_is_unavailable() {
        for url in [
            "redis+cluster://",
            "redis+cluster://:secret@127.0.0.1:1,,127.0.0.1:2",
        ] {
            let err = RedisStore::connect(url).await.unwrap_err();
            assert!(matches!(err, StoreError::Config(_)), "{err:?}");
            assert!(!err.to_string().contains("secret"), "{err}");
        }
        let err = RedisStore::builder("redis+cluster://:secret@127.0.0.1:1")
            .connection_timeout(ms(300))
            .response_timeout(ms(300))
            .build()
            .await
            .unwrap_err();
        assert!(err.is_unavailable(), "{err:?}");
        assert!(!format!("{err:?}").contains("secret"), "{err:?}");
        let err = RedisStore::cluster_builder(Vec::<String>::new())
            .build()
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Config(_)), "{err:?}");
    }

    /// A `redis+cluster://` URL, a seed list and `store::connect` reach one cluster: stores
    /// on one prefix share a quota, whichever way they were built.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn url_seed_list_and_connect_share_one_cluster() {
        let Some(cluster) = RedisCluster::start().await else {
            return;
        };
        let prefix = format!("tma-test:{}:", random_id());
        let by_url = RedisStore::builder(cluster.url())
            .prefix(&prefix)
            .build()
            .await
            .unwrap();
        let by_seeds = RedisStore::cluster_builder(cluster.seeds()[3..].to_vec())
            .prefix(&prefix)
            .build()
            .await
            .unwrap();
        let by_connect = tower_mcp_auth::store::connect(&cluster.url())
            .await
            .unwrap();
        assert!(by_url.is_cluster() && by_seeds.is_cluster());
        assert!(format!("{by_url:?}").contains("cluster: true"));
        let q = Quota::new(4, Duration::from_secs(3600)).unwrap();
        let mut admitted = 0;
        for i in 0..9 {
            let store = if i % 2 == 0 { &by_url } else { &by_seeds };
            admitted += usize::from(store.gcra("shared", q, 1).await.unwrap().allowed);
        }
        assert_eq!(admitted, 4);
        // `connect` uses the default prefix: its own quota.
        assert!(by_connect.gcra("shared", q, 1).await.unwrap().allowed);
        cluster.stop();
    }

    /// What one probe saw.
    #[derive(Default, Debug)]
    struct Seen {
        probes: u32,
        /// fail-open app: served without `RateLimit-*` headers (not limited).
        open_unlimited: u32,
        /// fail-closed app: 503 `temporarily_unavailable`.
        closed_503: u32,
        /// store errors on the killed master's slot.
        same_slot_errors: u32,
        /// reads of a key on another master, every 20 ms meanwhile: answered / failed.
        other_slot_ok: u32,
        other_slot_errors: u32,
    }

    /// A master is killed under traffic; its replica takes over and the same store (the
    /// application is not restarted) recovers, with the data written before the kill. Two
    /// apps on that store show what clients see meanwhile: fail-open serves every request
    /// unlimited, fail-closed answers 503 `temporarily_unavailable`; nothing else (no 500).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_killed_master_fails_over_and_the_store_recovers() {
        let Some(mut cluster) = RedisCluster::start().await else {
            return;
        };
        let prefix = format!("tma-test:{}:", random_id());
        let store: Arc<dyn StateStore> = Arc::new(
            RedisStore::builder(cluster.url())
                .prefix(&prefix)
                .response_timeout(ms(500))
                .connection_timeout(ms(500))
                .build()
                .await
                .unwrap(),
        );
        // A cell comes back every 43 minutes: what was consumed stays consumed in this test.
        let limit = 1_000;
        let q = Quota::new(limit, Duration::from_secs(30 * 24 * 3600)).unwrap();
        let app = |mode: FailMode| {
            let store = Arc::clone(&store);
            move |_: &str| {
                let auth = McpAuth::builder()
                    .api_keys(registry())
                    .default_policy(EndpointPolicy::api_key_only())
                    .rate_limit(RateLimitLayer::from_shared(store, q).fail_mode(mode))
                    .build()
                    .unwrap();
                routes().layer(auth)
            }
        };
        let open = serve(app(FailMode::Open)).await;
        let closed = serve(app(FailMode::Closed)).await;
        let post = |base: &str| {
            client()
                .post(format!("{base}/mcp"))
                .header("x-api-key", ALICE_KEY)
                .send()
        };
        let remaining = |res: &reqwest::Response| -> Option<u64> {
            res.headers()
                .get("ratelimit-remaining")?
                .to_str()
                .ok()?
                .parse()
                .ok()
        };
        // Both apps count alice in one bucket; find the master holding it.
        assert_eq!(post(&open).await.unwrap().status(), 200);
        assert_eq!(post(&closed).await.unwrap().status(), 200);
        let (victim, bucket) = cluster.find_key(&format!("{prefix}*")).await.unwrap();
        let slot = cluster.slot(&bucket).await;
        // A value on the victim's slot and one on another master's.
        let mut same = None;
        let mut other = None;
        for i in 0.. {
            let key = format!("flow-{i}");
            let on = cluster
                .master_of_slot(cluster.slot(&format!("{prefix}kv:{{{key}}}")).await)
                .await;
            match on.map(|n| n.port) {
                Some(p) if p == victim && same.is_none() => same = Some(key),
                Some(p) if p != victim && other.is_none() => other = Some(key),
                _ => {}
            }
            if same.is_some() && other.is_some() {
                break;
            }
        }
        let (same, other) = (same.unwrap(), other.unwrap());
        let ttl = Duration::from_secs(600);
        store.put(&same, b"same".to_vec(), ttl).await.unwrap();
        store.put(&other, b"other".to_vec(), ttl).await.unwrap();
        cluster.wait_replicated(victim).await;

        cluster.kill(victim);
        let killed = Instant::now();
        let mut seen = Seen::default();
        // Meanwhile, a key on a surviving master is read every 20 ms.
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let other_reads = {
            let (store, done, other) = (Arc::clone(&store), Arc::clone(&done), other.clone());
            tokio::spawn(async move {
                let (mut ok, mut failed) = (0, 0);
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    match store.get(&other).await {
                        Ok(v) => {
                            assert_eq!(v.as_deref(), Some(&b"other"[..]));
                            ok += 1;
                        }
                        Err(e) => {
                            assert!(e.is_unavailable(), "{e:?}");
                            failed += 1;
                        }
                    }
                    tokio::time::sleep(ms(20)).await;
                }
                (ok, failed)
            })
        };
        let mut recovered = None;
        while killed.elapsed() < Duration::from_secs(60) {
            seen.probes += 1;
            let res = post(&open).await.unwrap();
            assert_eq!(res.status(), 200, "fail-open never refuses");
            seen.open_unlimited += u32::from(remaining(&res).is_none());
            let res = post(&closed).await.unwrap();
            let closed_ok = match res.status().as_u16() {
                200 => true,
                503 => {
                    assert!(res.headers().get("ratelimit-remaining").is_none());
                    assert_error(res, 503, "temporarily_unavailable").await;
                    seen.closed_503 += 1;
                    false
                }
                other => panic!("fail-closed answered {other} during the failover"),
            };
            let same_ok = match store.get(&same).await {
                Ok(v) => {
                    assert_eq!(
                        v.as_deref(),
                        Some(&b"same"[..]),
                        "replicated before the kill"
                    );
                    true
                }
                Err(e) => {
                    assert!(e.is_unavailable(), "{e:?}");
                    seen.same_slot_errors += 1;
                    false
                }
            };
            if closed_ok && same_ok {
                recovered = Some(killed.elapsed());
                break;
            }
            tokio::time::sleep(ms(100)).await;
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        (seen.other_slot_ok, seen.other_slot_errors) = other_reads.await.unwrap();
        let recovered = recovered.expect("the store recovers within 60 s of the kill");
        // The replica took over the slot, and nothing written before the kill was lost.
        let new_master = cluster
            .master_of_slot(slot)
            .await
            .expect("a master for the slot");
        assert_ne!(new_master.port, victim);
        assert_eq!(store.take(&same).await.unwrap(), Some(b"same".to_vec()));
        assert_eq!(store.take(&same).await.unwrap(), None);
        assert_eq!(store.get(&other).await.unwrap(), Some(b"other".to_vec()));
        let res = post(&open).await.unwrap();
        let left = remaining(&res).expect("limited again");
        assert!(
            left <= u64::from(limit) - 3,
            "the bucket survived the failover: {left}"
        );
        // The first probe went to the dead master: clients did see the outage.
        assert!(seen.closed_503 >= 1 && seen.open_unlimited >= 1, "{seen:?}");
        eprintln!("failover: recovered {recovered:?} after the kill; {seen:?}");
        cluster.wait_healthy(Duration::from_secs(30)).await;
        cluster.stop();
    }
}

/// A SQL store built with a 100 ms `purge_interval`: one expired and one live value, a wait,
/// then the store is dropped and an already-expired row inserted behind its back. Returns the
/// row counts after the sweep and after the drop (1 and 2 when the sweep works and stops).
#[cfg(any(feature = "postgres", feature = "sqlite"))]
async fn sweep_then_drop(
    store: impl StateStore,
    rows: impl AsyncFn() -> i64,
    insert_expired_row: impl AsyncFnOnce(),
) -> (i64, i64) {
    store.put("short", b"s".to_vec(), ms(20)).await.unwrap();
    store
        .put("long", b"l".to_vec(), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(rows().await, 2);
    tokio::time::sleep(ms(400)).await;
    let swept = rows().await;
    drop(store);
    insert_expired_row().await;
    tokio::time::sleep(ms(400)).await;
    (swept, rows().await)
}

#[cfg(feature = "postgres")]
mod postgres_only {
    use super::*;
    use store_common::{drop_schema, postgres_store};
    use tower_mcp_auth::store::PostgresStore;

    #[tokio::test]
    async fn purge_expired_removes_dead_rows_only() {
        let Some((store, schema)) = postgres_store().await else {
            return;
        };
        store.put("short", b"s".to_vec(), ms(50)).await.unwrap();
        store
            .put("long", b"l".to_vec(), Duration::from_secs(60))
            .await
            .unwrap();
        store
            .gcra("rate", Quota::new(10, ms(100)).unwrap(), 1)
            .await
            .unwrap();
        store
            .gcra("rate-long", Quota::per_hour(10).unwrap(), 1)
            .await
            .unwrap();
        tokio::time::sleep(ms(150)).await;
        let purged = store.purge_expired().await;
        let long = store.get("long").await;
        let again = store.purge_expired().await;
        drop_schema(&store.pool().clone(), &schema).await;
        assert_eq!(purged.unwrap(), 2);
        assert_eq!(long.unwrap(), Some(b"l".to_vec()));
        assert_eq!(again.unwrap(), 0);
    }

    #[tokio::test]
    async fn built_store_sweeps_expired_rows_until_dropped() {
        let schema = format!("tma_test_{}", store_common::random_id());
        let built = PostgresStore::builder(store_common::database_url())
            .schema(&schema)
            .max_connections(2)
            .purge_interval(Some(ms(100)))
            .build()
            .await;
        let store = match built {
            Ok(store) => store,
            Err(err) => {
                store_common::unreachable("PostgreSQL", "DATABASE_URL", &err);
                return;
            }
        };
        let pool = store.pool().clone();
        let (swept, after_drop) = sweep_then_drop(
            store,
            async || {
                sqlx::query_scalar("SELECT count(*) FROM mcp_auth_kv")
                    .fetch_one(&pool)
                    .await
                    .unwrap()
            },
            async || {
                sqlx::query(
                    "INSERT INTO mcp_auth_kv (key, value, expires_at) VALUES ('dead', '\\x00', 0)",
                )
                .execute(&pool)
                .await
                .unwrap();
            },
        )
        .await;
        drop_schema(&pool, &schema).await;
        assert_eq!(swept, 1, "the expired value is swept, the live one kept");
        assert_eq!(after_drop, 2, "no sweep after the store was dropped");
    }

    #[tokio::test]
    async fn migrate_is_idempotent() {
        let Some((store, schema)) = postgres_store().await else {
            return;
        };
        let first = store.migrate().await;
        let second = store.migrate().await;
        let versions: Result<Vec<i64>, _> =
            sqlx::query_scalar("SELECT version FROM tower_mcp_auth_migrations")
                .fetch_all(store.pool())
                .await;
        drop_schema(&store.pool().clone(), &schema).await;
        first.unwrap();
        second.unwrap();
        assert_eq!(versions.unwrap(), vec![1, 2]);
    }

    #[tokio::test]
    async fn a_blocked_database_times_out() {
        let Some((store, schema)) = postgres_store().await else {
            return;
        };
        let q = Quota::per_hour(100).unwrap();
        store.gcra("locked", q, 1).await.unwrap();
        let impatient =
            PostgresStore::from_pool(store.pool().clone()).with_operation_timeout(ms(300));
        // Another session holds the key's row lock.
        let mut tx = store.pool().begin().await.unwrap();
        sqlx::query("SELECT tat FROM mcp_auth_gcra WHERE key = 'locked' FOR UPDATE")
            .execute(&mut *tx)
            .await
            .unwrap();
        let blocked = impatient.gcra("locked", q, 1).await;
        tx.rollback().await.unwrap();
        let after = store.gcra("locked", q, 1).await;
        drop_schema(&store.pool().clone(), &schema).await;
        assert!(
            matches!(
                blocked,
                Err(StoreError::Timeout {
                    backend: "postgres"
                })
            ),
            "{blocked:?}"
        );
        assert!(after.unwrap().allowed);
    }

    #[tokio::test]
    async fn bad_configuration_never_echoes_the_url() {
        let err = PostgresStore::connect("postgres://user:hunter2@[::1")
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Config(_)), "{err:?}");
        assert!(!format!("{err} {err:?}").contains("hunter2"));
        let err = PostgresStore::builder("postgres://postgres@127.0.0.1/test")
            .schema("Robert'); DROP TABLE students;--")
            .build()
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Config(_)), "{err:?}");
    }

    #[tokio::test]
    async fn unreachable_server_is_unavailable() {
        let err = PostgresStore::builder("postgres://postgres@127.0.0.1:1/test")
            .acquire_timeout(Duration::from_secs(2))
            .build()
            .await
            .unwrap_err();
        assert!(err.is_unavailable(), "{err:?}");
    }
}

#[cfg(feature = "sqlite")]
mod sqlite_only {
    use super::*;
    use store_common::{remove_sqlite_files, sqlite_path};
    use tower_mcp_auth::store::SqliteStore;

    #[tokio::test]
    async fn wal_mode_purge_and_shared_file() {
        let path = sqlite_path();
        let a = SqliteStore::open(&path).await.unwrap();
        let b = SqliteStore::open(&path).await.unwrap(); // migrates again: a no-op
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(a.pool())
            .await
            .unwrap();
        assert_eq!(mode, "wal");

        // Two stores on one file share quotas and values.
        let q = Quota::new(2, Duration::from_secs(3600)).unwrap();
        assert!(a.gcra("k", q, 1).await.unwrap().allowed);
        assert!(b.gcra("k", q, 1).await.unwrap().allowed);
        assert!(!a.gcra("k", q, 1).await.unwrap().allowed);
        a.put("v", b"x".to_vec(), Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(b.take("v").await.unwrap(), Some(b"x".to_vec()));

        a.put("short", b"s".to_vec(), ms(20)).await.unwrap();
        a.gcra("rate", Quota::new(10, ms(50)).unwrap(), 1)
            .await
            .unwrap();
        tokio::time::sleep(ms(100)).await;
        assert_eq!(a.purge_expired().await.unwrap(), 2);
        assert_eq!(a.purge_expired().await.unwrap(), 0);

        a.pool().close().await;
        b.pool().close().await;
        remove_sqlite_files(&path);
    }

    #[tokio::test]
    async fn built_store_sweeps_expired_rows_until_dropped() {
        let path = sqlite_path();
        let store = SqliteStore::builder(&path)
            .purge_interval(Some(ms(100)))
            .build()
            .await
            .unwrap();
        let pool = store.pool().clone();
        let (swept, after_drop) = sweep_then_drop(
            store,
            async || {
                sqlx::query_scalar("SELECT count(*) FROM mcp_auth_kv")
                    .fetch_one(&pool)
                    .await
                    .unwrap()
            },
            async || {
                sqlx::query(
                    "INSERT INTO mcp_auth_kv (key, value, expires_at) VALUES ('dead', x'00', 0)",
                )
                .execute(&pool)
                .await
                .unwrap();
            },
        )
        .await;
        assert_eq!(swept, 1, "the expired value is swept, the live one kept");
        assert_eq!(after_drop, 2, "no sweep after the store was dropped");
        pool.close().await;
        remove_sqlite_files(&path);
    }
}
