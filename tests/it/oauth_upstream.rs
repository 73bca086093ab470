//! Upstream tokens: connecting an upstream as a logged-in user, encrypted storage, refresh
//! before expiry (single-flight in one process and across instances), revoked refresh tokens.
#![cfg(feature = "oauth-client")]

use crate::oauth_common;

use std::sync::Arc;

use oauth_common::*;
use tower_mcp_auth::oauth::{EncryptionKey, OAuthClientBuilder, UpstreamError};
use tower_mcp_auth::store::{MemoryStore, StateStore};

fn with_upstream(
    p: tower_mcp_auth::oauth::Provider,
    key: EncryptionKey,
) -> impl FnOnce(OAuthClientBuilder) -> OAuthClientBuilder {
    move |b| {
        b.provider(p)
            .upstream("tools", "oidc")
            .token_encryption_key(key)
    }
}

/// Logs in, then connects the `tools` upstream through the routes.
async fn connect(app: &TestApp) -> Browser {
    let browser = Browser::new();
    assert_eq!(
        browser
            .login(&format!("{}/auth/oauth/oidc/start", app.base))
            .await
            .status(),
        302
    );
    let res = browser
        .login(&format!(
            "{}/auth/oauth/oidc/start?upstream=tools",
            app.base
        ))
        .await;
    assert_eq!(res.status(), 302, "{}", res.text().await.unwrap());
    assert_eq!(location(&res), "/");
    browser
}

#[tokio::test]
async fn connect_an_upstream_and_refresh_it_single_flight() {
    let provider = LocalProvider::start().await;
    let user = oidc_user_id(&provider, SUB);
    provider.behave(|b| b.expires_in = 3600);
    let store: Arc<MemoryStore> = Arc::new(MemoryStore::new());
    let shared: Arc<dyn StateStore> = store.clone();
    let app = serve_app(
        &provider,
        shared.clone(),
        with_upstream(provider.oidc(), EncryptionKey::generate()),
    )
    .await;

    // Not connected yet.
    assert!(matches!(
        app.client.upstream_token("tools", &user).await,
        Err(UpstreamError::NotConnected { .. })
    ));
    let _browser = connect(&app).await;
    let first = app.client.upstream_token("tools", &user).await.unwrap();
    assert!(first.access_token().starts_with("at-"));
    assert!(first.has_refresh_token());
    assert_eq!(
        provider.refresh_grants(),
        0,
        "a fresh token is not refreshed"
    );

    // Stored encrypted: no token text in the store.
    let vault = app.client.vault().unwrap();
    assert_eq!(
        vault.load("tools", &user).await.unwrap().as_ref(),
        Some(&first)
    );

    // Make it expire within the refresh window: 16 concurrent callers, one refresh.
    let near = tower_mcp_auth::oauth::UpstreamToken::new(first.access_token())
        .refresh_token(refresh_secret_of(vault, &user).await)
        .expires_in(std::time::Duration::from_secs(10));
    vault.save("tools", &user, &near).await.unwrap();
    let calls = (0..16).map(|_| {
        let client = app.client.clone();
        {
            let user = user.clone();
            tokio::spawn(async move { client.upstream_token("tools", &user).await })
        }
    });
    let mut tokens = Vec::new();
    for call in calls {
        tokens.push(call.await.unwrap().unwrap());
    }
    assert_eq!(provider.refresh_grants(), 1);
    assert!(tokens
        .iter()
        .all(|t| t.access_token() == tokens[0].access_token()));
    assert_ne!(tokens[0].access_token(), first.access_token());
}

async fn refresh_secret_of(vault: &tower_mcp_auth::oauth::TokenVault, user: &str) -> String {
    let token = vault.load("tools", user).await.unwrap().unwrap();
    token.refresh_token_secret().unwrap().to_owned()
}

#[tokio::test]
async fn single_flight_across_two_instances_sharing_a_store() {
    let provider = LocalProvider::start().await;
    let user = oidc_user_id(&provider, SUB);
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    let key = EncryptionKey::generate();
    let a = serve_app(
        &provider,
        store.clone(),
        with_upstream(provider.oidc(), key.clone()),
    )
    .await;
    let b = serve_app(
        &provider,
        store.clone(),
        with_upstream(provider.oidc(), key),
    )
    .await;
    let _browser = connect(&a).await;
    let vault = a.client.vault().unwrap();
    let t = vault.load("tools", &user).await.unwrap().unwrap();
    let rt = refresh_secret_of(vault, &user).await;
    vault
        .save(
            "tools",
            &user,
            &tower_mcp_auth::oauth::UpstreamToken::new(t.access_token())
                .refresh_token(rt)
                .expires_in(std::time::Duration::ZERO),
        )
        .await
        .unwrap();
    let mut calls = Vec::new();
    for i in 0..8 {
        let client = if i % 2 == 0 {
            a.client.clone()
        } else {
            b.client.clone()
        };
        let user = user.clone();
        calls.push(tokio::spawn(async move {
            client.upstream_token("tools", &user).await
        }));
    }
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(
        provider.refresh_grants(),
        1,
        "one refresh across both instances"
    );
}

#[tokio::test]
async fn revoked_refresh_token_is_a_clear_error() {
    let provider = LocalProvider::start().await;
    let user = oidc_user_id(&provider, SUB);
    provider.behave(|b| b.expires_in = 1);
    let app = serve_app(
        &provider,
        Arc::new(MemoryStore::new()),
        with_upstream(provider.oidc(), EncryptionKey::generate()),
    )
    .await;
    let _browser = connect(&app).await;
    // expires_in = 1 s is inside the 60 s refresh window: every call refreshes.
    let t1 = app.client.upstream_token("tools", &user).await.unwrap();
    assert_eq!(provider.refresh_grants(), 1);
    let t2 = app.client.upstream_token("tools", &user).await.unwrap();
    assert_eq!(provider.refresh_grants(), 2);
    assert_ne!(t1.access_token(), t2.access_token());

    provider.revoke_refresh_tokens();
    let err = app.client.upstream_token("tools", &user).await.unwrap_err();
    assert!(matches!(err, UpstreamError::Revoked { .. }), "{err:?}");
    assert!(err.to_string().contains("invalid_grant"));
    let res = err.to_response();
    assert_eq!(res.status(), 403);
    assert!(res.headers().get("location").is_none());
    // The dead token was removed: the user has to connect again.
    assert!(matches!(
        app.client.upstream_token("tools", &user).await,
        Err(UpstreamError::NotConnected { .. })
    ));
}

#[tokio::test]
async fn github_tokens_have_no_refresh_and_upstream_needs_a_login() {
    let provider = LocalProvider::start().await;
    let p = provider.github();
    let app = serve_app(&provider, Arc::new(MemoryStore::new()), move |b| {
        b.provider(p)
            .upstream("gh", "github")
            .token_encryption_key(EncryptionKey::generate())
    })
    .await;
    // Starting an upstream flow without a session: 401, not a redirect.
    let anonymous = Browser::new();
    let res = anonymous
        .get(&format!("{}/auth/oauth/github/start?upstream=gh", app.base))
        .await;
    assert_oauth_error(res, 401, "authentication_required").await;
    // An upstream of another provider is unknown here.
    let browser = Browser::new();
    browser
        .login(&format!("{}/auth/oauth/github/start", app.base))
        .await;
    let res = browser
        .get(&format!(
            "{}/auth/oauth/github/start?upstream=nope",
            app.base
        ))
        .await;
    assert_oauth_error(res, 404, "not_found").await;
    let res = browser
        .login(&format!("{}/auth/oauth/github/start?upstream=gh", app.base))
        .await;
    assert_eq!(res.status(), 302);
    let user = github_user_id(&provider, GITHUB_ID);
    let token = app.client.upstream_token("gh", &user).await.unwrap();
    assert!(!token.has_refresh_token());
    assert!(
        token.expires_at().is_none(),
        "GitHub OAuth-app tokens do not expire"
    );
    assert_eq!(provider.refresh_grants(), 0);
}
