//! API-key lifecycle through real routers: keys created, rotated and revoked in a
//! `KeyStore` reach two independent instances (each with its own registry and `KeySync`)
//! within the sync bound, on every backend: memory and SQLite (feature `sqlite`) always,
//! Redis and PostgreSQL when reachable (a failure in CI).

#![cfg(feature = "keys")]

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tower_mcp_auth::keys::{KeyStore, KeySync, KeysError, MemoryKeyStore};
use tower_mcp_auth::{ApiKeyRegistry, ApiKeySpec, EndpointPolicy, McpAuth};

use crate::common::*;

/// Sync interval of the instances under test.
const INTERVAL: Duration = Duration::from_millis(100);
/// How long a change may take to reach an instance before the test fails: far above the
/// documented bound (one interval plus one load), so a slow CI machine does not flake.
const PATIENCE: Duration = Duration::from_secs(15);

/// One server instance: its own registry, kept in step with `store`.
struct Instance {
    base: String,
    sync: KeySync,
}

async fn instance(store: Arc<dyn KeyStore>) -> Instance {
    let sync = KeySync::builder_shared(store, ApiKeyRegistry::builder().build())
        .interval(INTERVAL)
        .usage_flush_interval(Duration::from_secs(3600))
        .start()
        .await
        .expect("first load");
    let lookup = sync.key_lookup();
    let base = serve(|base| {
        routes().layer(
            McpAuth::builder()
                .api_keys(lookup)
                .public_base_url(base)
                .endpoint("/key", EndpointPolicy::api_key_only())
                .build()
                .unwrap(),
        )
    })
    .await;
    Instance { base, sync }
}

async fn status(base: &str, key: &str) -> u16 {
    client()
        .post(format!("{base}/key"))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Waits until `key` gets `expected` on `instance`, or fails after [`PATIENCE`].
async fn eventually(instance: &Instance, key: &str, expected: u16, what: &str) {
    let start = Instant::now();
    loop {
        let got = status(&instance.base, key).await;
        if got == expected {
            return;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "{what}: still {got} on {} after {PATIENCE:?}",
            instance.base
        );
        tokio::time::sleep(INTERVAL / 2).await;
    }
}

/// The lifecycle, driven through `admin_a` / `admin_b` (two clients of one backend), served
/// by two instances.
async fn lifecycle(admin_a: Arc<dyn KeyStore>, admin_b: Arc<dyn KeyStore>) {
    let a = instance(Arc::clone(&admin_a)).await;
    let b = instance(Arc::clone(&admin_b)).await;
    let both = [&a, &b];

    // create: the plaintext once, only metadata listed.
    let spec = ApiKeySpec::new("alice ci")
        .user_id("alice")
        .permissions(["tools/call:*"]);
    let first = admin_a.create(spec).await.unwrap();
    for i in both {
        eventually(i, first.plaintext(), 200, "a created key is accepted").await;
    }
    let res = client()
        .post(format!("{}/key", b.base))
        .header("x-api-key", first.plaintext())
        .send()
        .await
        .unwrap();
    let who: serde_json::Value = res.json().await.unwrap();
    assert_eq!(who["name"], "alice ci");
    assert_eq!(who["user_id"], "alice");
    assert_eq!(who["permissions"], serde_json::json!(["tools/call:*"]));
    let listed = admin_b.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, first.info().id);
    assert!(!format!("{listed:?}").contains(first.plaintext()));

    // rotate with a grace period: old and new both work.
    let second = admin_b
        .rotate(&first.info().id, Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(second.info().name, "alice ci");
    for i in both {
        eventually(i, second.plaintext(), 200, "a rotated-in key is accepted").await;
        assert_eq!(
            status(&i.base, first.plaintext()).await,
            200,
            "in its grace period"
        );
    }

    // rotate with no grace: the replaced key stops at once.
    let third = admin_a
        .rotate(&second.info().id, Duration::ZERO)
        .await
        .unwrap();
    for i in both {
        eventually(i, third.plaintext(), 200, "the third key is accepted").await;
        let res = client()
            .post(format!("{}/key", i.base))
            .header("x-api-key", second.plaintext())
            .send()
            .await
            .unwrap();
        assert!(
            challenge(&res).is_none(),
            "api-key-only: no Bearer challenge"
        );
        assert_error(res, 401, "invalid_credentials").await;
    }

    // revoke on one instance's store: refused by both within the bound.
    admin_b.revoke(&third.info().id).await.unwrap();
    for i in both {
        eventually(i, third.plaintext(), 401, "a revoked key is refused").await;
    }
    let res = client()
        .post(format!("{}/key", a.base))
        .header("x-api-key", third.plaintext())
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "invalid_credentials").await;
    // The first key is still in its grace period, revocation of its successor aside.
    assert_eq!(status(&a.base, first.plaintext()).await, 200);

    // expiry: a key created already expired is never accepted; a live one beside it is.
    let expired = admin_a
        .create(ApiKeySpec::new("temp").expires_at(SystemTime::now() - Duration::from_secs(1)))
        .await
        .unwrap();
    let live = admin_a.create(ApiKeySpec::new("live")).await.unwrap();
    for i in both {
        eventually(i, live.plaintext(), 200, "a new key is accepted").await;
        let res = client()
            .post(format!("{}/key", i.base))
            .header("x-api-key", expired.plaintext())
            .send()
            .await
            .unwrap();
        assert_error(res, 401, "invalid_credentials").await;
    }

    // last used: written in one batch at the flush, not per request.
    let before = admin_a.list().await.unwrap();
    assert!(
        before.iter().all(|k| k.last_used_at.is_none()),
        "{before:?}"
    );
    assert!(a.sync.flush_usage().await.unwrap() >= 1);
    assert_eq!(a.sync.flush_usage().await.unwrap(), 0, "nothing used since");
    let after = admin_b.list().await.unwrap();
    let used = |id: &str| after.iter().find(|k| k.id == id).unwrap().last_used_at;
    assert!(used(&first.info().id).is_some());
    assert!(used(&live.info().id).is_some());
    assert!(
        used(&expired.info().id).is_none(),
        "refused keys are not 'used'"
    );

    // errors: unknown ids, rotating a revoked key.
    assert!(matches!(
        admin_a.revoke("key_0000000000000000").await,
        Err(KeysError::NotFound)
    ));
    assert!(matches!(
        admin_a.rotate("key_0000000000000000", Duration::ZERO).await,
        Err(KeysError::NotFound)
    ));
    assert!(matches!(
        admin_b.rotate(&third.info().id, Duration::ZERO).await,
        Err(KeysError::Revoked)
    ));
    admin_b
        .revoke(&third.info().id)
        .await
        .expect("revoking twice is fine");
    let listed = admin_a.list().await.unwrap();
    assert_eq!(listed.len(), 5);
    let third_info = listed.iter().find(|k| k.id == third.info().id).unwrap();
    assert!(third_info.revoked_at.is_some());
    let first_info = listed.iter().find(|k| k.id == first.info().id).unwrap();
    assert_eq!(
        first_info.rotated_to.as_deref(),
        Some(second.info().id.as_str())
    );
}

#[tokio::test]
async fn memory_key_store_lifecycle_across_two_instances() {
    let store = MemoryKeyStore::new();
    lifecycle(Arc::new(store.clone()), Arc::new(store)).await;
}

#[tokio::test]
async fn a_duplicate_id_or_hash_is_a_conflict() {
    use tower_mcp_auth::api_key::KeyHash;
    use tower_mcp_auth::keys::{KeyInfo, KeyRecord};
    let store = MemoryKeyStore::new();
    let record = KeyRecord::new(
        KeyInfo::new("key_1", "imported", SystemTime::now()),
        KeyHash::of("k1"),
    );
    store.insert(record.clone()).await.unwrap();
    let same_hash = KeyRecord::new(
        KeyInfo::new("key_2", "other", SystemTime::now()),
        KeyHash::of("k1"),
    );
    assert!(matches!(
        store.insert(same_hash).await,
        Err(KeysError::Conflict)
    ));
    assert!(matches!(
        store.insert(record).await,
        Err(KeysError::Conflict)
    ));
}

/// A store that can be switched off, to see what instances do during an outage.
struct Flaky {
    inner: MemoryKeyStore,
    down: std::sync::atomic::AtomicBool,
}

impl Flaky {
    fn check(&self) -> Result<(), KeysError> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            Err(KeysError::Store(
                tower_mcp_auth::store::StoreError::Timeout { backend: "flaky" },
            ))
        } else {
            Ok(())
        }
    }
}

impl KeyStore for Flaky {
    fn insert(
        &self,
        record: tower_mcp_auth::keys::KeyRecord,
    ) -> tower_mcp_auth::keys::KeysResult<()> {
        self.inner.insert(record)
    }
    fn load(&self) -> tower_mcp_auth::keys::KeysResult<Vec<tower_mcp_auth::keys::KeyRecord>> {
        match self.check() {
            Ok(()) => self.inner.load(),
            Err(e) => tower_mcp_auth::Deferred::ready(Err(e)),
        }
    }
    fn revision(&self) -> tower_mcp_auth::keys::KeysResult<u64> {
        match self.check() {
            Ok(()) => self.inner.revision(),
            Err(e) => tower_mcp_auth::Deferred::ready(Err(e)),
        }
    }
    fn revoke_at(&self, id: &str, at: SystemTime) -> tower_mcp_auth::keys::KeysResult<()> {
        self.inner.revoke_at(id, at)
    }
    fn replace(
        &self,
        old_id: &str,
        successor: tower_mcp_auth::keys::KeyRecord,
        deadline: SystemTime,
    ) -> tower_mcp_auth::keys::KeysResult<tower_mcp_auth::keys::KeyInfo> {
        self.inner.replace(old_id, successor, deadline)
    }
    fn record_use(&self, used: Vec<(String, SystemTime)>) -> tower_mcp_auth::keys::KeysResult<()> {
        match self.check() {
            Ok(()) => self.inner.record_use(used),
            Err(e) => tower_mcp_auth::Deferred::ready(Err(e)),
        }
    }
}

/// While the store is unreachable, instances keep the keys they loaded; usage is kept for
/// the next flush; changes arrive once it is back.
#[tokio::test]
async fn instances_keep_their_keys_while_the_store_is_down() {
    use std::sync::atomic::Ordering;
    let store = Arc::new(Flaky {
        inner: MemoryKeyStore::new(),
        down: Default::default(),
    });
    let key = store.create(ApiKeySpec::new("ci")).await.unwrap();
    let server = instance(store.clone()).await;
    assert_eq!(status(&server.base, key.plaintext()).await, 200);

    store.down.store(true, Ordering::SeqCst);
    assert!(server.sync.sync_now().await.is_err());
    store.revoke(&key.info().id).await.unwrap(); // written, but not readable yet
    assert_eq!(
        status(&server.base, key.plaintext()).await,
        200,
        "last loaded keys serve"
    );
    assert!(server.sync.flush_usage().await.is_err());

    store.down.store(false, Ordering::SeqCst);
    eventually(
        &server,
        key.plaintext(),
        401,
        "the revoke arrives once the store is back",
    )
    .await;
    assert_eq!(
        server.sync.flush_usage().await.unwrap(),
        1,
        "usage kept across the outage"
    );
    assert!(store.list().await.unwrap()[0].last_used_at.is_some());
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_key_store_lifecycle_across_two_instances() {
    let pair = crate::two_clients::sqlite().await;
    let (a, b) = (&pair.a, &pair.b);
    lifecycle(Arc::new(a.clone()), Arc::new(b.clone())).await;

    // A row deleted behind the store's back (by a DBA) is unknown everywhere after the next
    // change: the sync removes the keys it no longer finds.
    let server = instance(Arc::new(b.clone())).await;
    let doomed = a.create(ApiKeySpec::new("doomed")).await.unwrap();
    eventually(&server, doomed.plaintext(), 200, "a new key is accepted").await;
    sqlx::query("DELETE FROM mcp_auth_api_keys WHERE id = ?1")
        .bind(&doomed.info().id)
        .execute(a.pool())
        .await
        .unwrap();
    a.create(ApiKeySpec::new("bump the revision"))
        .await
        .unwrap();
    eventually(&server, doomed.plaintext(), 401, "a deleted key is refused").await;
    drop(server);
    pair.cleanup().await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_key_store_lifecycle_across_two_instances() {
    let Some(pair) = crate::two_clients::postgres().await else {
        return;
    };
    lifecycle(Arc::new(pair.a.clone()), Arc::new(pair.b.clone())).await;
    pair.cleanup().await;
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_key_store_lifecycle_across_two_instances() {
    let Some(pair) = crate::two_clients::redis().await else {
        return;
    };
    lifecycle(Arc::new(pair.a.clone()), Arc::new(pair.b.clone())).await;
    pair.cleanup().await;
}

/// `examples/keys.rs` run as a process against a SQLite file that a server instance syncs
/// from: create, list, rotate and revoke reach the server; errors exit non-zero and never
/// print a key.
#[cfg(feature = "sqlite")]
#[tokio::test]
async fn the_keys_cli_manages_the_keys_a_server_accepts() {
    use tower_mcp_auth::store::SqliteStore;
    let path = crate::store_common::sqlite_path();
    let url = format!("sqlite:{}", path.display());
    let server_store = SqliteStore::open(&path).await.unwrap();
    let server = instance(Arc::new(server_store.clone())).await;

    let cli = |args: &[&str]| crate::example_process::run("keys", args, &[("KEY_STORE_URL", &url)]);
    let json = |out: &std::process::Output| -> serde_json::Value {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };

    let Some(out) = cli(&[
        "--json",
        "create",
        "--user",
        "alice",
        "--permissions",
        "tools/call:*,tools/list",
    ]) else {
        return;
    };
    let created = json(&out);
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["user_id"], "alice");
    assert_eq!(
        created["permissions"],
        serde_json::json!(["tools/call:*", "tools/list"])
    );
    eventually(&server, &key, 200, "a key created by the CLI is accepted").await;

    // --store wins over the environment; human output names the key once.
    let out = crate::example_process::run("keys", &["--store", &url, "list"], &[]).unwrap();
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success());
    assert!(table.contains(&id) && table.contains("active"), "{table}");
    assert!(!table.contains(&key), "list never shows a key");

    let rotated = json(&cli(&["--json", "rotate", &id, "--grace", "0"]).unwrap());
    let new_key = rotated["key"].as_str().unwrap().to_owned();
    let new_id = rotated["id"].as_str().unwrap().to_owned();
    eventually(&server, &new_key, 200, "the rotated-in key is accepted").await;
    eventually(
        &server,
        &key,
        401,
        "the rotated-out key (no grace) is refused",
    )
    .await;

    let revoked = json(&cli(&["--json", "revoke", &new_id]).unwrap());
    assert_eq!(revoked["revoked"], new_id.as_str());
    eventually(
        &server,
        &new_key,
        401,
        "a key revoked by the CLI is refused",
    )
    .await;

    let listed = json(&cli(&["--json", "list"]).unwrap());
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed
        .iter()
        .all(|k| k["usable"] == false && k.get("key").is_none()));
    assert_eq!(listed[0]["rotated_to"], new_id.as_str());

    // Options: name, role, expiry (whole seconds in the JSON output).
    let out = cli(&[
        "--json",
        "create",
        "--user",
        "bob",
        "--name",
        "bob laptop",
        "--role",
        "admin",
        "--expires-in",
        "30d",
    ]);
    let bob = json(&out.unwrap());
    assert_eq!(
        (bob["name"].as_str(), bob["role"].as_str()),
        (Some("bob laptop"), Some("admin"))
    );
    let expires = bob["expires_at"].as_u64().unwrap();
    let in_30_days = now() + 30 * 86_400;
    assert!(
        expires <= in_30_days && expires + 3600 > in_30_days,
        "{bob}"
    );
    eventually(
        &server,
        bob["key"].as_str().unwrap(),
        200,
        "a key with an expiry",
    )
    .await;

    // Errors: unknown id (1), bad arguments (2), no store (2); never a key in the output.
    let out = cli(&["revoke", "key_0000000000000000"]).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no API key with this id"));
    assert_eq!(cli(&["create"]).unwrap().status.code(), Some(2));
    assert_eq!(
        cli(&["rotate", &id, "--grace", "soon"])
            .unwrap()
            .status
            .code(),
        Some(2)
    );
    let out = crate::example_process::run("keys", &["list"], &[]).unwrap();
    assert_eq!(out.status.code(), Some(2));
    for out in [cli(&["list"]).unwrap(), cli(&["rotate", &new_id]).unwrap()] {
        let all = [out.stdout, out.stderr].concat();
        let all = String::from_utf8_lossy(&all);
        assert!(!all.contains(&key) && !all.contains(&new_key), "{all}");
    }

    drop(server);
    server_store.pool().close().await;
    crate::store_common::remove_sqlite_files(&path);
}
