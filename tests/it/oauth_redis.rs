//! Two router instances, each with its own Redis client, sharing one Redis: a login started
//! on one completes on the other, and of two racing callbacks exactly one succeeds.
//!
//! Redis at `REDIS_URL` (default `redis://127.0.0.1:6379`); unreachable is a skip locally and
//! a failure when `CI=true`. Each test uses its own random key prefix and deletes it.
#![cfg(all(feature = "oauth-client", feature = "redis"))]

use crate::oauth_common;
use crate::store_common;

use std::sync::Arc;

use oauth_common::*;
use serde_json::Value;
use tower_mcp_auth::store::{RedisStore, StateStore};

/// Two separate Redis clients on one prefix, or `None` (skip) when Redis is unreachable.
async fn two_clients() -> Option<(Arc<dyn StateStore>, Arc<dyn StateStore>, String)> {
    let prefix = format!("tma-oauth-test:{}:", store_common::random_id());
    let mut stores = Vec::new();
    for _ in 0..2 {
        match RedisStore::builder(store_common::redis_url())
            .prefix(&prefix)
            .build()
            .await
        {
            Ok(store) => stores.push(Arc::new(store) as Arc<dyn StateStore>),
            Err(err) => {
                store_common::unreachable("Redis", "REDIS_URL", &err);
                return None;
            }
        }
    }
    let b = stores.pop()?;
    let a = stores.pop()?;
    Some((a, b, prefix))
}

/// Instances A and B behind one public callback URL (A's).
async fn pair(
    provider: &LocalProvider,
    a: Arc<dyn StateStore>,
    b: Arc<dyn StateStore>,
) -> (TestApp, TestApp) {
    let app_a = serve_app(provider, a, |x| x.provider(provider.oidc())).await;
    let shared_redirect = format!("{}/auth/oauth/callback", app_a.base);
    let app_b = serve_app_at(provider, b, Some(shared_redirect), |x| {
        x.provider(provider.oidc())
    })
    .await;
    (app_a, app_b)
}

#[tokio::test]
async fn login_started_on_one_instance_completes_on_the_other() {
    let Some((a, b, prefix)) = two_clients().await else {
        return;
    };
    let provider = LocalProvider::start().await;
    let (app_a, app_b) = pair(&provider, a, b).await;
    let browser = Browser::new();
    let callback = browser
        .until_callback(&format!("{}/auth/oauth/oidc/start", app_a.base))
        .await;
    let on_b = callback.replace(&app_a.base, &app_b.base);
    let flow_cookies = browser.cookie_header();
    let res = browser.get(&on_b).await;
    assert_eq!(res.status(), 302, "{}", res.text().await.unwrap());
    // The session works on either instance.
    for base in [&app_a.base, &app_b.base] {
        let body: Value = browser.post_mcp(base).await.json().await.unwrap();
        assert_eq!(body["user_id"], oidc_user_id(&provider, SUB));
    }
    // And the state is gone for both (replayed with the flow cookie put back).
    let res = no_redirects()
        .get(&callback)
        .header("cookie", flow_cookies)
        .send()
        .await
        .unwrap();
    let body = assert_oauth_error(res, 403, "invalid_state").await;
    assert_eq!(body["reason"], "already_used");
    store_common::redis_cleanup(prefix).await;
}

#[tokio::test]
async fn racing_callbacks_on_two_instances_give_exactly_one_success() {
    let Some((a, b, prefix)) = two_clients().await else {
        return;
    };
    let provider = LocalProvider::start().await;
    let (app_a, app_b) = pair(&provider, a, b).await;
    for round in 0..10 {
        let browser = Browser::new();
        let callback = browser
            .until_callback(&format!("{}/auth/oauth/oidc/start", app_a.base))
            .await;
        let on_b = callback.replace(&app_a.base, &app_b.base);
        let cookies = browser.cookie_header();
        let send = |url: String| {
            let cookies = cookies.clone();
            tokio::spawn(async move {
                no_redirects()
                    .get(url)
                    .header("cookie", cookies)
                    .send()
                    .await
                    .unwrap()
            })
        };
        let (ra, rb) = (send(callback.clone()), send(on_b));
        let (ra, rb) = (ra.await.unwrap(), rb.await.unwrap());
        let mut statuses = [ra.status().as_u16(), rb.status().as_u16()];
        statuses.sort_unstable();
        assert_eq!(statuses, [302, 403], "round {round}");
        let loser = if ra.status() == 403 { ra } else { rb };
        let body = assert_oauth_error(loser, 403, "invalid_state").await;
        assert_eq!(
            body["error_description"],
            "State was already used - possible replay attack"
        );
    }
    assert_eq!(provider.code_grants(), 10, "one code exchange per flow");
    store_common::redis_cleanup(prefix).await;
}
