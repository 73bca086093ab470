//! Who may log in (security item 8) and whose user a login is (item 7), through the real
//! login flow against the local fake provider: the login policy allows and refuses each kind
//! of allowlist, unverified e-mails are never copied nor trusted, GitHub organizations are
//! checked with the API, and the same `sub` from two providers is two users with two vaults.
#![cfg(feature = "oauth-client")]

use crate::oauth_common;

use std::sync::Arc;

use oauth_common::*;
use serde_json::{json, Value};
use tower_mcp_auth::oauth::{
    EncryptionKey, LoginPolicy, OAuthClient, OAuthConfigError, Provider, UpstreamError,
};
use tower_mcp_auth::store::{MemoryStore, StateStore};
use tower_mcp_auth::TokenVerifier;

fn memory() -> Arc<dyn StateStore> {
    Arc::new(MemoryStore::new())
}

fn set_cookies(res: &reqwest::Response) -> Vec<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// Logs in with `provider_name` and returns the session's claims (the callback must succeed).
async fn login_claims(app: &TestApp, browser: &Browser, provider_name: &str) -> Value {
    let res = browser
        .login(&format!("{}/auth/oauth/{provider_name}/start", app.base))
        .await;
    assert_eq!(res.status(), 302, "{}", res.text().await.unwrap());
    let token = browser.cookies.lock().unwrap()["__Host-mcp_session"].clone();
    let identity = app.session.verifier().verify(&token).await.unwrap();
    Value::Object(identity.claims().unwrap().clone())
}

/// The `user_id` the protected endpoint sees for this browser.
async fn mcp_user(app: &TestApp, browser: &Browser) -> String {
    let res = browser.post_mcp(&app.base).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    body["user_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn same_sub_from_two_oidc_providers_is_two_users_with_two_vault_entries() {
    let a = LocalProvider::start().await;
    let b = LocalProvider::start().await;
    let (pa, pb) = (a.oidc().rename("a"), b.oidc().rename("b"));
    let app = serve_app(&a, memory(), |builder| {
        builder
            .provider(pa)
            .provider(pb)
            .upstream("tools", "a")
            .token_encryption_key(EncryptionKey::generate())
    })
    .await;
    b.register(&format!("{}/auth/oauth/callback", app.base));

    let alice = Browser::new();
    let claims_a = login_claims(&app, &alice, "a").await;
    let mallory = Browser::new();
    let claims_b = login_claims(&app, &mallory, "b").await;
    // Both providers say `sub = user-1234`.
    assert_eq!(claims_a["idp_sub"], SUB, "{claims_a}");
    assert_eq!(claims_b["idp_sub"], SUB, "{claims_b}");
    let (user_a, user_b) = (mcp_user(&app, &alice).await, mcp_user(&app, &mallory).await);
    assert_ne!(user_a, user_b);
    assert_eq!(user_a, oidc_user_id(&a, SUB));
    assert_eq!(user_b, oidc_user_id(&b, SUB));

    // Alice connects the upstream; Mallory (same `sub` at another issuer) gets nothing.
    let res = alice
        .login(&format!("{}/auth/oauth/a/start?upstream=tools", app.base))
        .await;
    assert_eq!(res.status(), 302, "{}", res.text().await.unwrap());
    assert!(app.client.upstream_token("tools", &user_a).await.is_ok());
    assert!(matches!(
        app.client.upstream_token("tools", &user_b).await,
        Err(UpstreamError::NotConnected { .. })
    ));
    assert!(matches!(
        app.client.upstream_token("tools", SUB).await,
        Err(UpstreamError::NotConnected { .. })
    ));
    let vault = app.client.vault().unwrap();
    assert!(vault.load("tools", &user_a).await.unwrap().is_some());
    assert!(vault.load("tools", &user_b).await.unwrap().is_none());
}

#[tokio::test]
async fn github_id_and_oidc_sub_with_the_same_value_are_two_users() {
    let provider = LocalProvider::start().await;
    provider.behave(|b| b.sub = GITHUB_ID.to_string());
    let (oidc, github) = (provider.oidc(), provider.github());
    let app = serve_app(&provider, memory(), |b| b.provider(oidc).provider(github)).await;
    let (one, two) = (Browser::new(), Browser::new());
    let via_github = login_claims(&app, &one, "github").await;
    let via_oidc = login_claims(&app, &two, "oidc").await;
    assert_eq!(via_github["idp_sub"], via_oidc["idp_sub"]);
    assert_ne!(via_github["sub"], via_oidc["sub"]);
    assert_eq!(via_github["sub"], github_user_id(&provider, GITHUB_ID));
    assert_eq!(
        mcp_user(&app, &one).await,
        github_user_id(&provider, GITHUB_ID)
    );
}

#[tokio::test]
async fn unverified_oidc_email_is_not_copied() {
    for verified in [Some(json!(false)), None, Some(json!("false"))] {
        let provider = LocalProvider::start().await;
        provider.behave(|b| b.email_verified = verified.clone());
        let p = provider.oidc();
        let app = serve_app(&provider, memory(), |b| b.provider(p)).await;
        let claims = login_claims(&app, &Browser::new(), "oidc").await;
        assert!(claims.get("email").is_none(), "{verified:?}: {claims}");
    }
    // Verified: copied.
    let provider = LocalProvider::start().await;
    let p = provider.oidc();
    let app = serve_app(&provider, memory(), |b| b.provider(p)).await;
    let claims = login_claims(&app, &Browser::new(), "oidc").await;
    assert_eq!(claims["email"], "ada@example.com");
}

#[tokio::test]
async fn github_email_comes_from_the_verified_primary_address_only() {
    let provider = LocalProvider::start().await;
    let p = provider.github();
    let app = serve_app(&provider, memory(), |b| b.provider(p)).await;
    // `/user` says `ceo@example.com` (a profile field anyone can type); `/user/emails` has the
    // verified primary address.
    let claims = login_claims(&app, &Browser::new(), "github").await;
    assert_eq!(claims["email"], "octocat@example.com", "{claims}");

    provider.behave(|b| {
        b.github_emails = Some(json!([
            {"email": "octocat@example.com", "primary": true, "verified": false},
            {"email": "other@example.com", "primary": false, "verified": true},
        ]))
    });
    let claims = login_claims(&app, &Browser::new(), "github").await;
    assert!(claims.get("email").is_none(), "{claims}");

    // Without the `user:email` grant the endpoint is refused: no e-mail, still a login.
    provider.behave(|b| b.github_emails = None);
    let claims = login_claims(&app, &Browser::new(), "github").await;
    assert!(claims.get("email").is_none(), "{claims}");
}

/// An app whose only provider is `p`, with `policy`.
async fn app_with(provider: &LocalProvider, p: Provider, policy: LoginPolicy) -> TestApp {
    serve_app(provider, memory(), |b| b.provider(p).login_policy(policy)).await
}

/// A refused login: 403 `access_denied` JSON naming nobody, no cookie at all, no session.
async fn assert_refused(app: &TestApp, browser: &Browser, res: reqwest::Response) {
    assert!(set_cookies(&res).is_empty(), "{:?}", set_cookies(&res));
    let body = assert_oauth_error(res, 403, "access_denied").await;
    let description = body["error_description"].as_str().unwrap();
    assert!(description.contains("not allowed"), "{description}");
    for secret in ["@", SUB, "4242", "at-", "tid-"] {
        assert!(!description.contains(secret), "{description}");
    }
    assert!(!browser
        .cookies
        .lock()
        .unwrap()
        .contains_key("__Host-mcp_session"));
    assert_eq!(browser.post_mcp(&app.base).await.status(), 401);
}

async fn login(app: &TestApp, browser: &Browser, name: &str) -> reqwest::Response {
    browser
        .login(&format!("{}/auth/oauth/{name}/start", app.base))
        .await
}

#[tokio::test]
async fn email_allowlist_allows_and_refuses_with_json_or_html() {
    let provider = LocalProvider::start().await;
    let allowed = app_with(
        &provider,
        provider.oidc(),
        LoginPolicy::new().allow_emails(["ADA@example.com"]),
    )
    .await;
    let claims = login_claims(&allowed, &Browser::new(), "oidc").await;
    assert_eq!(claims["email"], "ada@example.com");

    let refused = app_with(
        &provider,
        provider.oidc(),
        LoginPolicy::new().allow_emails(["bob@example.com"]),
    )
    .await;
    let browser = Browser::new();
    let res = login(&refused, &browser, "oidc").await;
    assert_refused(&refused, &browser, res).await;

    // A browser gets the small HTML page, with the same status and no cookie.
    let browser = Browser {
        accept_html: true,
        ..Browser::new()
    };
    let res = login(&refused, &browser, "oidc").await;
    assert_eq!(res.status(), 403);
    assert!(set_cookies(&res).is_empty());
    assert_eq!(res.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(
        res.headers()["content-security-policy"],
        "default-src 'none'; form-action 'self'; frame-ancestors 'none'"
    );
    assert!(res.headers().get("location").is_none());
    let page = res.text().await.unwrap();
    assert!(page.contains("not allowed"), "{page}");
    assert!(!page.contains("ada@"), "{page}");
}

#[tokio::test]
async fn unverified_email_is_neither_allowed_nor_used_for_domains() {
    let provider = LocalProvider::start().await;
    let policy = LoginPolicy::new()
        .allow_emails(["ada@example.com"])
        .allow_email_domains(["example.com"]);
    let app = app_with(&provider, provider.oidc(), policy).await;
    let res = login(&app, &Browser::new(), "oidc").await;
    assert_eq!(res.status(), 302);
    for verified in [Some(json!(false)), None] {
        provider.behave(|b| b.email_verified = verified.clone());
        let browser = Browser::new();
        let res = login(&app, &browser, "oidc").await;
        assert_refused(&app, &browser, res).await;
    }
}

#[tokio::test]
async fn domain_allowlist_compares_the_domain_exactly() {
    let provider = LocalProvider::start().await;
    let app = app_with(
        &provider,
        provider.oidc(),
        LoginPolicy::new().allow_email_domains(["Example.COM"]),
    )
    .await;
    for email in ["ada@example.com", "Ada@EXAMPLE.com"] {
        provider.behave(|b| b.email = Some(email.into()));
        let res = login(&app, &Browser::new(), "oidc").await;
        assert_eq!(res.status(), 302, "{email}");
    }
    for email in [
        "ada@evil-example.com",
        "ada@example.com.evil.io",
        "ada@sub.example.com",
        "example.com@evil.io",
        "ada@example.com@evil.io",
    ] {
        provider.behave(|b| b.email = Some(email.into()));
        let browser = Browser::new();
        let res = login(&app, &browser, "oidc").await;
        assert_refused(&app, &browser, res).await;
    }
}

#[tokio::test]
async fn user_allowlist_uses_namespaced_ids() {
    let provider = LocalProvider::start().await;
    let me = oidc_user_id(&provider, SUB);
    let app = app_with(
        &provider,
        provider.oidc(),
        LoginPolicy::new().allow_users([&me]),
    )
    .await;
    let res = login(&app, &Browser::new(), "oidc").await;
    assert_eq!(res.status(), 302);

    // GitHub user 4242 is allowed; an OIDC user whose `sub` is "4242" is not that user.
    provider.behave(|b| b.sub = GITHUB_ID.to_string());
    let policy = LoginPolicy::new().allow_users([github_user_id(&provider, GITHUB_ID)]);
    let (oidc, github) = (provider.oidc(), provider.github());
    let app = serve_app(&provider, memory(), |b| {
        b.provider(oidc).provider(github).login_policy(policy)
    })
    .await;
    assert_eq!(login(&app, &Browser::new(), "github").await.status(), 302);
    let browser = Browser::new();
    let res = login(&app, &browser, "oidc").await;
    assert_refused(&app, &browser, res).await;
}

#[tokio::test]
async fn github_org_membership_is_checked_with_the_api() {
    let provider = LocalProvider::start().await;
    let app = app_with(
        &provider,
        provider.github(),
        LoginPolicy::new().allow_github_orgs(["Acme", "other-org"]),
    )
    .await;
    // The scope to read memberships is asked for.
    let browser = Browser::new();
    let authorize = browser
        .start(&format!("{}/auth/oauth/github/start", app.base))
        .await;
    let scope = param(&authorize, "scope").unwrap();
    assert!(scope.split(' ').any(|s| s == "read:org"), "{scope}");

    // Not a member.
    let res = browser.get(&browser.authorize(&authorize).await).await;
    assert_refused(&app, &browser, res).await;
    // An invitation not yet accepted is not a membership.
    provider.behave(|b| b.github_orgs = vec![("acme".into(), "pending".into())]);
    let browser = Browser::new();
    let res = login(&app, &browser, "github").await;
    assert_refused(&app, &browser, res).await;
    // An active member.
    provider.behave(|b| b.github_orgs = vec![("acme".into(), "active".into())]);
    let claims = login_claims(&app, &Browser::new(), "github").await;
    assert_eq!(claims["sub"], github_user_id(&provider, GITHUB_ID));
    assert!(
        provider
            .state
            .counters
            .org_lookups
            .load(std::sync::atomic::Ordering::SeqCst)
            >= 3
    );
    // A membership in an org that is not listed does not count.
    provider.behave(|b| b.github_orgs = vec![("acme-evil".into(), "active".into())]);
    let browser = Browser::new();
    let res = login(&app, &browser, "github").await;
    assert_refused(&app, &browser, res).await;
}

#[tokio::test]
async fn microsoft_tenant_allowlist() {
    let provider = LocalProvider::start().await;
    provider.behave(|b| b.microsoft_tenant = Some("tid-123".into()));
    let entra =
        || Provider::microsoft("common", CLIENT_ID, CLIENT_SECRET).issuer(provider.base.clone());
    let app = app_with(
        &provider,
        entra(),
        LoginPolicy::new().allow_tenants(["TID-123"]),
    )
    .await;
    let claims = login_claims(&app, &Browser::new(), "microsoft").await;
    assert_eq!(claims["sub"], format!("microsoft:tid-123:{SUB}"));

    let app = app_with(
        &provider,
        entra(),
        LoginPolicy::new().allow_tenants(["tid-999"]),
    )
    .await;
    let browser = Browser::new();
    let res = login(&app, &browser, "microsoft").await;
    assert_refused(&app, &browser, res).await;
}

#[tokio::test]
async fn microsoft_email_counts_only_with_xms_edov() {
    let provider = LocalProvider::start().await;
    provider.behave(|b| {
        b.microsoft_tenant = Some("tid-123".into());
        b.email_verified = None;
    });
    let entra =
        Provider::microsoft("common", CLIENT_ID, CLIENT_SECRET).issuer(provider.base.clone());
    let app = app_with(
        &provider,
        entra,
        LoginPolicy::new().allow_email_domains(["example.com"]),
    )
    .await;
    // Entra's `email` alone is any text a user or admin set: not copied, not trusted.
    let browser = Browser::new();
    let res = login(&app, &browser, "microsoft").await;
    assert_refused(&app, &browser, res).await;
    provider.behave(|b| b.xms_edov = Some(json!(true)));
    let claims = login_claims(&app, &Browser::new(), "microsoft").await;
    assert_eq!(claims["email"], "ada@example.com");
}

#[tokio::test]
async fn claim_allowlist() {
    let provider = LocalProvider::start().await;
    provider.behave(|b| {
        b.extra_claims
            .insert("groups".into(), json!(["staff", "mcp-users"]));
    });
    let app = app_with(
        &provider,
        provider.oidc(),
        LoginPolicy::new().allow_claim("groups", ["mcp-users"]),
    )
    .await;
    assert_eq!(login(&app, &Browser::new(), "oidc").await.status(), 302);
    let app = app_with(
        &provider,
        provider.oidc(),
        LoginPolicy::new().allow_claim("groups", ["admins"]),
    )
    .await;
    let browser = Browser::new();
    let res = login(&app, &browser, "oidc").await;
    assert_refused(&app, &browser, res).await;
}

#[tokio::test]
async fn async_check_allows_and_refuses() {
    let provider = LocalProvider::start().await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let policy = LoginPolicy::new().allow_if(move |user| {
        let log = Arc::clone(&log);
        async move {
            // A lookup elsewhere.
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            log.lock().unwrap().push(user.user_id.clone());
            user.email.as_deref() == Some("ada@example.com")
        }
    });
    let app = app_with(&provider, provider.oidc(), policy).await;
    assert_eq!(login(&app, &Browser::new(), "oidc").await.status(), 302);
    assert_eq!(*seen.lock().unwrap(), vec![oidc_user_id(&provider, SUB)]);
    provider.behave(|b| b.email_verified = Some(json!(false)));
    let browser = Browser::new();
    let res = login(&app, &browser, "oidc").await;
    assert_refused(&app, &browser, res).await;
}

#[tokio::test]
async fn sessions_need_a_login_policy_and_bad_entries_fail_the_build() {
    let build = |policy: Option<LoginPolicy>| async move {
        let mut b = OAuthClient::builder("http://127.0.0.1:1/auth/oauth/callback")
            .provider(Provider::github(CLIENT_ID, CLIENT_SECRET))
            .state_secret(STATE_SECRET)
            .session(session_config());
        if let Some(p) = policy {
            b = b.login_policy(p);
        }
        b.build().await
    };
    assert!(matches!(
        build(None).await,
        Err(OAuthConfigError::NoLoginPolicy)
    ));
    assert!(matches!(
        build(Some(
            LoginPolicy::new().allow_email_domains(["*.example.com"])
        ))
        .await,
        Err(OAuthConfigError::LoginPolicy(_))
    ));
    assert!(build(Some(LoginPolicy::new().allow_github_orgs(["acme"])))
        .await
        .is_ok());
    // Without sessions the app decides from `CallbackOutcome::Login` itself.
    assert!(
        OAuthClient::builder("http://127.0.0.1:1/auth/oauth/callback")
            .provider(Provider::github(CLIENT_ID, CLIENT_SECRET))
            .state_secret(STATE_SECRET)
            .build()
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_configured_namespace_names_the_users_and_cannot_take_a_built_in_one() {
    let provider = LocalProvider::start().await;
    let p = provider.oidc().subject_namespace("corp-sso");
    let app = serve_app(&provider, memory(), |b| b.provider(p)).await;
    let claims = login_claims(&app, &Browser::new(), "oidc").await;
    assert_eq!(claims["sub"], format!("corp-sso:{SUB}"));
    for bad in ["github", "OIDC", "a:b", "", "has space"] {
        let res = OAuthClient::builder("http://127.0.0.1:1/auth/oauth/callback")
            .provider(provider.oidc().subject_namespace(bad))
            .state_secret(STATE_SECRET)
            .build()
            .await;
        assert!(
            matches!(res, Err(OAuthConfigError::Provider { .. })),
            "{bad:?}"
        );
    }
}
