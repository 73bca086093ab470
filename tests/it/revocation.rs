//! Token revocation through real routers: a `jti` denylist and per-subject kill-switches in
//! the shared `StateStore`, enforced by two independent instances (each with its own
//! `Revocations` snapshot and token cache) within the refresh bound, on the memory store
//! and, with their features, SQLite, Redis and PostgreSQL.

#![cfg(feature = "revocation")]

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;
use tower_mcp_auth::bearer::{CachedVerifier, Revocations};
use tower_mcp_auth::store::{MemoryStore, StateStore};
use tower_mcp_auth::{EndpointPolicy, JwtVerifier, McpAuth};

use crate::common::*;

const REFRESH: Duration = Duration::from_millis(100);
/// Far above the documented bound (one refresh), so a slow CI machine does not flake.
const PATIENCE: Duration = Duration::from_secs(15);

struct Instance {
    base: String,
    revocations: Revocations,
}

async fn instance(store: Arc<dyn StateStore>, prefix: &str) -> Instance {
    let revocations = Revocations::builder(store)
        .key_prefix(prefix)
        .refresh(REFRESH)
        .max_token_lifetime(Duration::from_secs(7200))
        .start()
        .await
        .expect("first load");
    let jwt = JwtVerifier::hs256(SECRET).build().unwrap();
    let verifier = revocations.verifier(CachedVerifier::new(jwt));
    let base = serve(|base| {
        routes().layer(
            McpAuth::builder()
                .bearer(verifier)
                .public_base_url(base)
                .endpoint("/oauth", EndpointPolicy::oauth_only())
                .build()
                .unwrap(),
        )
    })
    .await;
    Instance { base, revocations }
}

async fn send(i: &Instance, token: &str) -> reqwest::Response {
    client()
        .post(format!("{}/oauth", i.base))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap()
}

async fn eventually(i: &Instance, token: &str, expected: u16, what: &str) {
    let start = Instant::now();
    loop {
        let got = send(i, token).await.status().as_u16();
        if got == expected {
            return;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "{what}: still {got} after {PATIENCE:?}"
        );
        tokio::time::sleep(REFRESH / 2).await;
    }
}

/// The documented 401 for a revoked token: `invalid_token`, the RFC 6750 challenge, the
/// revocation reason, and never the token in the body.
async fn assert_revoked(i: &Instance, token: &str) {
    let res = send(i, token).await;
    let challenge = challenge(&res).expect("a Bearer challenge");
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
    assert!(challenge.contains("revoked"), "{challenge}");
    let body = assert_error(res, 401, "invalid_token").await;
    assert_eq!(
        body["error_description"],
        "The access token has been revoked"
    );
    assert!(!body.to_string().contains(token));
}

fn jwt(sub: &str, jti: &str, iat: Option<u64>) -> String {
    let mut claims = json!({"sub": sub, "exp": now() + 3600, "jti": jti});
    if let Some(iat) = iat {
        claims["iat"] = json!(iat);
    }
    hs256(&claims)
}

async fn across_two_instances(store_a: Arc<dyn StateStore>, store_b: Arc<dyn StateStore>) {
    let prefix = format!("rev-test:{}:", crate::store_common::random_id());
    let a = instance(store_a, &prefix).await;
    let b = instance(store_b, &prefix).await;
    let both = [&a, &b];
    assert!(a.revocations.is_empty());

    // Accepted (and cached) everywhere first.
    let t1 = jwt("alice", "jti-1", Some(now() - 60));
    let t2 = jwt("alice", "jti-2", Some(now() - 60));
    let bob = jwt("bob", "jti-3", Some(now() - 60));
    for i in both {
        for t in [&t1, &t2, &bob] {
            assert_eq!(send(i, t).await.status(), 200);
        }
    }

    // By jti: at once on the revoking instance (a cache hit), within the bound on the other.
    a.revocations.revoke_jti("jti-1").await.unwrap();
    assert_revoked(&a, &t1).await;
    eventually(&b, &t1, 401, "a revoked jti").await;
    assert_revoked(&b, &t1).await;
    for i in both {
        assert_eq!(send(i, &t2).await.status(), 200, "other jtis still pass");
    }

    // Kill-switch: every token of alice issued up to now, from the other instance.
    b.revocations
        .revoke_subject_before(None, "alice", SystemTime::now())
        .await
        .unwrap();
    eventually(&a, &t2, 401, "a token issued before the cut-off").await;
    let no_iat = jwt("alice", "jti-4", None);
    let later = jwt("alice", "jti-5", Some(now() + 2));
    for i in both {
        assert_revoked(i, &t2).await;
        assert_revoked(i, &no_iat).await;
        assert_eq!(
            send(i, &later).await.status(),
            200,
            "issued after the cut-off"
        );
        assert_eq!(send(i, &bob).await.status(), 200, "another subject");
    }

    // Concurrent revocations on both instances are both kept (the writers' lock).
    let (x, y) = (
        jwt("carol", "jti-x", Some(now())),
        jwt("dave", "jti-y", Some(now())),
    );
    let (rx, ry) = tokio::join!(
        a.revocations.revoke_jti("jti-x"),
        b.revocations.revoke_jti("jti-y")
    );
    rx.unwrap();
    ry.unwrap();
    for i in both {
        eventually(i, &x, 401, "a concurrently revoked jti").await;
        eventually(i, &y, 401, "the other concurrently revoked jti").await;
    }
}

#[tokio::test]
async fn revocations_reach_two_instances_on_the_memory_store() {
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    across_two_instances(Arc::clone(&store), store).await;
}

#[tokio::test]
async fn a_new_instance_loads_the_current_list() {
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    let a = instance(Arc::clone(&store), "r:").await;
    a.revocations.revoke_jti("jti-1").await.unwrap();
    let b = instance(store, "r:").await;
    assert!(!b.revocations.is_empty());
    assert_revoked(&b, &jwt("alice", "jti-1", Some(now()))).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn revocations_reach_two_instances_on_sqlite() {
    let pair = crate::two_clients::sqlite().await;
    across_two_instances(Arc::new(pair.a.clone()), Arc::new(pair.b.clone())).await;
    pair.cleanup().await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn revocations_reach_two_instances_on_postgres() {
    let Some(pair) = crate::two_clients::postgres().await else {
        return;
    };
    across_two_instances(Arc::new(pair.a.clone()), Arc::new(pair.b.clone())).await;
    pair.cleanup().await;
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn revocations_reach_two_instances_on_redis() {
    let Some(pair) = crate::two_clients::redis().await else {
        return;
    };
    across_two_instances(Arc::new(pair.a.clone()), Arc::new(pair.b.clone())).await;
    pair.cleanup().await;
}

/// A `StateStore` that can be switched off.
struct Flaky {
    inner: MemoryStore,
    down: std::sync::atomic::AtomicBool,
}

impl Flaky {
    fn guard<T: Send + 'static>(
        &self,
        op: impl FnOnce() -> tower_mcp_auth::store::StoreResult<T>,
    ) -> tower_mcp_auth::store::StoreResult<T> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            tower_mcp_auth::Deferred::ready(Err(tower_mcp_auth::store::StoreError::Timeout {
                backend: "flaky",
            }))
        } else {
            op()
        }
    }
}

impl StateStore for Flaky {
    fn decide(
        &self,
        key: &str,
        quota: tower_mcp_auth::store::Quota,
        cost: u32,
        peek: bool,
    ) -> tower_mcp_auth::store::StoreResult<tower_mcp_auth::store::RateDecision> {
        self.guard(|| self.inner.decide(key, quota, cost, peek))
    }
    fn gcra_release(
        &self,
        key: &str,
        quota: tower_mcp_auth::store::Quota,
        cost: u32,
    ) -> tower_mcp_auth::store::StoreResult<()> {
        self.guard(|| self.inner.gcra_release(key, quota, cost))
    }
    fn insert_if_absent(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> tower_mcp_auth::store::StoreResult<bool> {
        self.guard(|| self.inner.insert_if_absent(key, value, ttl))
    }
    fn take(&self, key: &str) -> tower_mcp_auth::store::StoreResult<Option<Vec<u8>>> {
        self.guard(|| self.inner.take(key))
    }
    fn get(&self, key: &str) -> tower_mcp_auth::store::StoreResult<Option<Vec<u8>>> {
        self.guard(|| self.inner.get(key))
    }
    fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> tower_mcp_auth::store::StoreResult<()> {
        self.guard(|| self.inner.put(key, value, ttl))
    }
    fn delete(&self, key: &str) -> tower_mcp_auth::store::StoreResult<bool> {
        self.guard(|| self.inner.delete(key))
    }
}

/// While the store is unreachable the last snapshot stays in force and a new revocation
/// fails loudly; a list lost by the store (a restart without persistence) is rebuilt from an
/// instance's snapshot at its next revocation.
#[tokio::test]
async fn the_snapshot_outlives_a_store_outage_and_rebuilds_a_lost_list() {
    use std::sync::atomic::Ordering;
    let flaky = Arc::new(Flaky {
        inner: MemoryStore::new(),
        down: Default::default(),
    });
    let a = instance(flaky.clone(), "r:").await;
    let old = jwt("alice", "jti-old", Some(now()));
    a.revocations.revoke_jti("jti-old").await.unwrap();

    flaky.down.store(true, Ordering::SeqCst);
    assert!(a.revocations.refresh_now().await.is_err());
    assert_revoked(&a, &old).await;
    assert!(a.revocations.revoke_jti("jti-new").await.is_err());
    flaky.down.store(false, Ordering::SeqCst);
    let new = jwt("alice", "jti-new", Some(now()));
    assert_eq!(
        send(&a, &new).await.status(),
        200,
        "a failed revocation revokes nothing"
    );

    // The store loses everything; the next revocation writes back what `a` knew.
    assert!(flaky.inner.delete("r:list").await.unwrap());
    flaky.inner.delete("r:gen").await.unwrap();
    a.revocations.refresh_now().await.unwrap();
    assert_revoked(&a, &old).await;
    a.revocations.revoke_jti("jti-new").await.unwrap();
    let b = instance(flaky, "r:").await;
    assert_revoked(&b, &old).await;
    assert_revoked(&b, &new).await;
}
