//! The login flow against a local OIDC / GitHub-like provider: full login through to a
//! protected `POST /mcp` with the session cookie, every state error, PKCE, provider errors,
//! open-redirect refusal.
#![cfg(feature = "oauth-client")]

use crate::oauth_common;

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use oauth_common::*;
use serde_json::Value;
use tower_mcp_auth::oauth::{Expected, StartOptions, StateError};
use tower_mcp_auth::store::{MemoryStore, StateStore};
use tower_mcp_auth::TokenVerifier;

fn memory() -> Arc<dyn StateStore> {
    Arc::new(MemoryStore::new())
}

async fn oidc_app(provider: &LocalProvider) -> TestApp {
    let p = provider.oidc();
    serve_app(provider, memory(), |b| {
        b.provider(p)
            .allow_redirect("/")
            .allow_redirect("/dashboard")
    })
    .await
}

fn set_cookie_for<'a>(res: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
}

#[tokio::test]
async fn full_login_then_mcp_with_the_session_cookie() {
    let provider = LocalProvider::start().await;
    let app = oidc_app(&provider).await;
    let browser = Browser::new();

    // Not logged in: the MCP endpoint refuses, `/` says so.
    let res = browser.post_mcp(&app.base).await;
    assert_eq!(res.status(), 401);
    let home: Value = browser
        .get(&format!("{}/", app.base))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(home["logged_in"], false);

    let authorize = browser
        .start(&format!("{}/auth/oauth/oidc/start", app.base))
        .await;
    assert!(authorize.starts_with(&format!("{}/authorize?", provider.base)));
    assert_eq!(
        param(&authorize, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(param(&authorize, "code_challenge").unwrap().len(), 43);
    assert_eq!(
        param(&authorize, "redirect_uri").unwrap(),
        format!("{}/auth/oauth/callback", app.base)
    );
    assert!(param(&authorize, "nonce").is_some());
    assert!(param(&authorize, "scope")
        .unwrap()
        .split(' ')
        .any(|s| s == "openid"));

    let callback = browser.authorize(&authorize).await;
    let res = browser.get(&callback).await;
    assert_eq!(res.status(), 302);
    assert_eq!(location(&res), "/");
    assert_eq!(res.headers()["cache-control"], "no-store");
    let cookie = set_cookie_for(&res, "__Host-mcp_session").expect("session cookie");
    for attr in [
        "HttpOnly",
        "Secure",
        "SameSite=Lax",
        "Path=/",
        "Max-Age=3600",
    ] {
        assert!(cookie.contains(attr), "{attr} missing in {cookie}");
    }
    // `__Host-`: a browser takes it only Secure, Path=/ and host-only.
    assert!(!cookie.to_ascii_lowercase().contains("domain"), "{cookie}");
    // The flow's browser-binding cookie is cleared.
    assert!(browser
        .cookies
        .lock()
        .unwrap()
        .keys()
        .all(|k| !k.starts_with("mcp_oauth_")));

    // The session token is a JWT of this crate: sub = the provider's user id.
    let token = browser.cookies.lock().unwrap()["__Host-mcp_session"].clone();
    let identity = app.session.verifier().verify(&token).await.unwrap();
    let user_id = oidc_user_id(&provider, SUB);
    assert_eq!(identity.user_id(), Some(user_id.as_str()));
    assert_eq!(identity.claims().unwrap()["idp_sub"], SUB);
    assert_eq!(identity.claims().unwrap()["idp"], "oidc");
    assert_eq!(identity.claims().unwrap()["email"], "ada@example.com");

    let res = browser.post_mcp(&app.base).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user_id"], user_id);
    assert_eq!(body["method"], "bearer");
    let home: Value = browser
        .get(&format!("{}/", app.base))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(home["user_id"], user_id);

    // The same JWT as `Authorization: Bearer` works too; the header wins over the cookie.
    let res = no_redirects()
        .post(format!("{}/mcp", app.base))
        .bearer_auth(&token)
        .header("cookie", "__Host-mcp_session=garbage")
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Never from the query string.
    let res = no_redirects()
        .post(format!(
            "{}/mcp?access_token={token}&__Host-mcp_session={token}",
            app.base
        ))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(
        provider
            .state
            .counters
            .userinfo
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );

    // Logout is POST only (a GET from any page or prefetcher must not log anyone out)...
    let res = browser.get(&format!("{}/auth/logout", app.base)).await;
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["allow"], "POST");
    assert_eq!(browser.post_mcp(&app.base).await.status(), 200);
    // ... clears the session cookie and sends the browser home.
    let res = browser.post(&format!("{}/auth/logout", app.base)).await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/");
    assert_eq!(res.headers()["cache-control"], "no-store");
    let cleared = set_cookie_for(&res, "__Host-mcp_session").expect("cookie cleared");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert!(!browser
        .cookies
        .lock()
        .unwrap()
        .contains_key("__Host-mcp_session"));
    assert_eq!(browser.post_mcp(&app.base).await.status(), 401);
}

#[tokio::test]
async fn replayed_callback_is_refused() {
    let provider = LocalProvider::start().await;
    let app = oidc_app(&provider).await;
    let browser = Browser::new();
    let callback = browser
        .until_callback(&format!("{}/auth/oauth/oidc/start", app.base))
        .await;
    let cookies = browser.cookie_header();
    assert_eq!(browser.get(&callback).await.status(), 302);
    // A refresh of the callback page, with the flow cookie put back.
    let res = no_redirects()
        .get(&callback)
        .header("cookie", cookies)
        .send()
        .await
        .unwrap();
    let body = assert_oauth_error(res, 403, "invalid_state").await;
    assert_eq!(
        body["error_description"],
        "State was already used - possible replay attack"
    );
    assert_eq!(body["reason"], "already_used");
    assert_eq!(provider.code_grants(), 1);
}

#[tokio::test]
async fn forged_garbled_and_missing_states() {
    let provider = LocalProvider::start().await;
    let app = oidc_app(&provider).await;
    let browser = Browser::new();
    let callback = browser
        .until_callback(&format!("{}/auth/oauth/oidc/start", app.base))
        .await;
    let state = param(&callback, "state").unwrap();

    // Change the bound redirect target inside the payload, keep the signature.
    let (body, sig) = state.split_once('.').unwrap();
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).unwrap()).unwrap();
    payload["r"] = "https://evil.example/".into();
    let forged = format!("{}.{sig}", URL_SAFE_NO_PAD.encode(payload.to_string()));
    let mut flipped = state.clone().into_bytes();
    let last = flipped.len() - 2;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    for bad in [
        forged.as_str(),
        &flipped,
        "garbage",
        ".",
        "a.b",
        &"x".repeat(10_000),
        "%00%ff",
    ] {
        let res = browser.get(&with_param(&callback, "state", bad)).await;
        let body = assert_oauth_error(res, 403, "invalid_state").await;
        assert_eq!(
            body["error_description"],
            "Invalid state signature - possible CSRF attack"
        );
        assert_eq!(body["reason"], "invalid_signature");
    }
    // Signed by another deployment's secret.
    let other = oauth_common::LocalProvider::start().await;
    let p = other.oidc();
    let other_app = serve_app(&other, memory(), |b| {
        b.provider(p).state_signer(
            tower_mcp_auth::oauth::StateSigner::new("another-secret-another-secret-another")
                .unwrap(),
        )
    })
    .await;
    let foreign = Browser::new()
        .until_callback(&format!("{}/auth/oauth/oidc/start", other_app.base))
        .await;
    let res = browser
        .get(&with_param(
            &callback,
            "state",
            &param(&foreign, "state").unwrap(),
        ))
        .await;
    assert_eq!(
        assert_oauth_error(res, 403, "invalid_state").await["reason"],
        "invalid_signature"
    );

    // No state at all.
    let res = browser
        .get(&format!("{}/auth/oauth/callback?code=abc", app.base))
        .await;
    let body = assert_oauth_error(res, 400, "invalid_state").await;
    assert_eq!(body["reason"], "missing");
    // A repeated state.
    let res = browser.get(&format!("{callback}&state=x")).await;
    assert_oauth_error(res, 400, "invalid_request").await;
    // Huge parameters.
    let res = browser
        .get(&format!("{callback}&junk={}", "j".repeat(20_000)))
        .await;
    assert_oauth_error(res, 400, "invalid_request").await;

    // None of that consumed the real flow.
    let res = browser.get(&callback).await;
    assert_eq!(res.status(), 302);
}

#[tokio::test]
async fn expired_state() {
    let provider = LocalProvider::start().await;
    let p = provider.oidc();
    let app = serve_app(&provider, memory(), |b| {
        b.provider(p).state_ttl(Duration::from_secs(1))
    })
    .await;
    let browser = Browser::new();
    let callback = browser
        .until_callback(&format!("{}/auth/oauth/oidc/start", app.base))
        .await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let body = assert_oauth_error(browser.get(&callback).await, 400, "invalid_state").await;
    assert_eq!(body["error_description"], "State has expired");
    assert_eq!(body["reason"], "expired");
    assert_eq!(provider.code_grants(), 0);
}

#[tokio::test]
async fn state_from_an_instance_with_another_store_is_unknown() {
    // The multi-worker pitfall: same secret, separate in-memory stores.
    let provider = LocalProvider::start().await;
    let (p1, p2) = (provider.oidc(), provider.oidc());
    let a = serve_app(&provider, memory(), |b| b.provider(p1)).await;
    let b = serve_app(&provider, memory(), |b| b.provider(p2)).await;
    let browser = Browser::new();
    let callback = browser
        .until_callback(&format!("{}/auth/oauth/oidc/start", a.base))
        .await;
    let on_b = callback.replace(&a.base, &b.base);
    let body = assert_oauth_error(browser.get(&on_b).await, 400, "invalid_state").await;
    assert_eq!(body["reason"], "unknown");
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("STATE_STORE"));
    // Still unknown when retried (not "already used"), and A still completes it.
    let body = assert_oauth_error(browser.get(&on_b).await, 400, "invalid_state").await;
    assert_eq!(body["reason"], "unknown");
    assert_eq!(browser.get(&callback).await.status(), 302);
}

#[tokio::test]
async fn callback_from_another_browser_is_refused() {
    let provider = LocalProvider::start().await;
    let app = oidc_app(&provider).await;
    // The attacker runs the flow and sends the victim the callback URL (login CSRF).
    let attacker = Browser::new();
    let callback = attacker
        .until_callback(&format!("{}/auth/oauth/oidc/start", app.base))
        .await;
    let victim = Browser::new();
    let body = assert_oauth_error(victim.get(&callback).await, 403, "invalid_state").await;
    // The binding cookie is HttpOnly, Lax, and only sent to the callback route.
    let res = no_redirects()
        .get(format!("{}/auth/oauth/oidc/start", app.base))
        .send()
        .await
        .unwrap();
    let flow = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(flow.starts_with("mcp_oauth_"), "{flow}");
    for attr in [
        "HttpOnly",
        "SameSite=Lax",
        "Path=/auth/oauth/callback",
        "Max-Age=300",
    ] {
        assert!(flow.contains(attr), "{attr} missing in {flow}");
    }
    assert_eq!(body["reason"], "browser_mismatch");
    assert!(victim.cookies.lock().unwrap().is_empty());
}

#[tokio::test]
async fn gateway_and_user_mismatch() {
    let provider = LocalProvider::start().await;
    let p = provider.oidc();
    let app = serve_app(&provider, memory(), |b| {
        b.provider(p)
            .upstream("gw-a", "oidc")
            .upstream("gw-b", "oidc")
            .token_encryption_key(tower_mcp_auth::oauth::EncryptionKey::generate())
    })
    .await;
    let started = app
        .client
        .start(
            "oidc",
            StartOptions::default().upstream("gw-a").user("alice"),
        )
        .await
        .unwrap();
    let browser = Browser::new();
    let flow_cookie = started
        .cookie()
        .unwrap()
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let callback = browser.authorize(started.url()).await;
    let request = || {
        http::Request::get(callback.as_str())
            .header("cookie", flow_cookie.as_str())
            .body(())
            .unwrap()
            .into_parts()
            .0
    };
    let err = app
        .client
        .callback_expecting(&request(), &Expected::default().upstream("gw-b"))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "State parameter gateway mismatch");
    assert!(matches!(
        err,
        tower_mcp_auth::oauth::OAuthError::State(StateError::Mismatch("gateway"))
    ));
    let err = app
        .client
        .callback_expecting(&request(), &Expected::default().user("mallory"))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "State parameter user mismatch");
    // Neither consumed it: the right expectations complete the flow.
    let outcome = app
        .client
        .callback_expecting(
            &request(),
            &Expected::default().upstream("gw-a").user("alice"),
        )
        .await
        .unwrap();
    assert!(matches!(
        outcome,
        tower_mcp_auth::oauth::CallbackOutcome::Upstream { .. }
    ));
    assert!(app.client.upstream_token("gw-a", "alice").await.is_ok());
}

#[tokio::test]
async fn pkce_mismatch_is_invalid_grant() {
    let provider = LocalProvider::start().await;
    let app = oidc_app(&provider).await;
    let browser = Browser::new();
    let authorize = browser
        .start(&format!("{}/auth/oauth/oidc/start", app.base))
        .await;
    // Someone swaps the challenge on the way to the provider: the verifier kept with the
    // state no longer matches, and the provider (which checks it) refuses the code.
    let other = tower_mcp_auth::oauth::PkceVerifier::generate().challenge();
    let tampered = with_param(&authorize, "code_challenge", &other);
    let callback = browser.authorize(&tampered).await;
    let body = assert_oauth_error(browser.get(&callback).await, 400, "invalid_grant").await;
    assert!(body["error_description"].as_str().unwrap().contains("PKCE"));
    assert_eq!(provider.code_grants(), 0);
    assert!(!browser
        .cookies
        .lock()
        .unwrap()
        .contains_key("__Host-mcp_session"));
}

#[tokio::test]
async fn provider_errors_are_clear_and_never_500_or_a_loop() {
    let provider = LocalProvider::start().await;
    let p = provider.oidc();
    let app = serve_app(&provider, memory(), |b| {
        b.provider(p).http_timeout(Duration::from_millis(500))
    })
    .await;
    let start = format!("{}/auth/oauth/oidc/start", app.base);

    // access_denied, as JSON and as a page.
    provider.behave(|b| b.deny = true);
    let browser = Browser::new();
    let body = assert_oauth_error(browser.login(&start).await, 403, "access_denied").await;
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("access_denied"));
    provider.behave(|b| b.deny = true);
    let html = Browser {
        accept_html: true,
        ..Browser::new()
    };
    let res = html.login(&start).await;
    assert_eq!(res.status(), 403);
    assert!(res.headers().get("location").is_none());
    assert_eq!(res.headers()["content-type"], "text/html; charset=utf-8");
    let page = res.text().await.unwrap();
    assert!(
        page.contains("Sign-in failed") && page.contains("access_denied"),
        "{page}"
    );
    assert!(
        !page.contains("http-equiv"),
        "no automatic redirect: {page}"
    );

    // A provider that hangs: 504, not a 500.
    provider.behave(|b| b.token_delay = Some(Duration::from_secs(2)));
    let res = Browser::new().login(&start).await;
    assert_oauth_error(res, 504, "provider_timeout").await;
    provider.behave(|b| b.token_delay = None);

    // id_tokens with the wrong nonce or audience.
    provider.behave(|b| b.wrong_nonce = true);
    let body =
        assert_oauth_error(Browser::new().login(&start).await, 502, "invalid_id_token").await;
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("nonce"));
    provider.behave(|b| {
        b.wrong_nonce = false;
        b.wrong_audience = true;
    });
    assert_oauth_error(Browser::new().login(&start).await, 502, "invalid_id_token").await;
    provider.behave(|b| b.wrong_audience = false);

    // Unknown provider and wrong method.
    let res = Browser::new()
        .get(&format!("{}/auth/oauth/nope/start", app.base))
        .await;
    assert_oauth_error(res, 404, "not_found").await;
    let res = no_redirects()
        .post(format!("{}/auth/oauth/callback", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);

    // And it all still works afterwards.
    assert_eq!(Browser::new().login(&start).await.status(), 302);
}

#[tokio::test]
async fn open_redirects_are_refused() {
    let provider = LocalProvider::start().await;
    let app = oidc_app(&provider).await;
    let start = format!("{}/auth/oauth/oidc/start", app.base);
    for target in [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
        "/dashboard/../admin",
        "/dashboardx",
        "javascript:alert(1)",
    ] {
        let url = format!(
            "{start}?redirect_to={}",
            form_urlencoded::byte_serialize(target.as_bytes()).collect::<String>()
        );
        let res = Browser::new().get(&url).await;
        let body = assert_oauth_error(res, 400, "invalid_request").await;
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("redirect target"),
            "{target}"
        );
    }
    assert_eq!(
        provider
            .state
            .counters
            .authorizations
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    let res = Browser::new()
        .login(&format!("{start}?redirect_to=%2Fdashboard"))
        .await;
    assert_eq!(res.status(), 302);
    assert_eq!(location(&res), "/dashboard");
}

#[tokio::test]
async fn github_style_provider() {
    let provider = LocalProvider::start().await;
    let p = provider.github();
    let app = serve_app(&provider, memory(), |b| b.provider(p)).await;
    let browser = Browser::new();
    let authorize = browser
        .start(&format!("{}/auth/oauth/github/start", app.base))
        .await;
    assert!(authorize.starts_with(&format!("{}/login/oauth/authorize?", provider.base)));
    assert!(param(&authorize, "nonce").is_none());
    assert_eq!(
        param(&authorize, "scope").as_deref(),
        Some("read:user user:email")
    );
    let callback = browser.authorize(&authorize).await;
    let res = browser.get(&callback).await;
    assert_eq!(res.status(), 302, "{}", res.text().await.unwrap());
    let body: Value = browser.post_mcp(&app.base).await.json().await.unwrap();
    assert_eq!(body["user_id"], github_user_id(&provider, GITHUB_ID));
    assert_eq!(body["idp"], "github");

    // GitHub reports token errors with HTTP 200: a reused code is still invalid_grant.
    let again = Browser::new();
    let callback = again
        .until_callback(&format!("{}/auth/oauth/github/start", app.base))
        .await;
    let code = param(&callback, "code").unwrap();
    assert_eq!(again.get(&callback).await.status(), 302);
    let fresh = again
        .until_callback(&format!("{}/auth/oauth/github/start", app.base))
        .await;
    let reused = with_param(&fresh, "code", &code);
    assert_oauth_error(again.get(&reused).await, 400, "invalid_grant").await;
}

#[tokio::test]
async fn microsoft_multi_tenant_issuer_is_checked_per_tenant() {
    let provider = LocalProvider::start().await;
    provider.behave(|b| b.microsoft_tenant = Some("tid-123".into()));
    // `common` has a `{tenantid}` issuer template; the local provider stands in for
    // login.microsoftonline.com.
    let p = tower_mcp_auth::oauth::Provider::microsoft("common", CLIENT_ID, CLIENT_SECRET)
        .issuer(provider.base.clone());
    let app = serve_app(&provider, memory(), |b| b.provider(p)).await;
    let browser = Browser::new();
    let authorize = browser
        .start(&format!("{}/auth/oauth/microsoft/start", app.base))
        .await;
    assert!(param(&authorize, "scope")
        .unwrap()
        .contains("offline_access"));
    let callback = browser.authorize(&authorize).await;
    assert_eq!(
        param(&callback, "iss").unwrap(),
        format!("{}/tid-123/v2.0", provider.base)
    );
    let res = browser.get(&callback).await;
    assert_eq!(res.status(), 302, "{}", res.text().await.unwrap());
    let body: Value = browser.post_mcp(&app.base).await.json().await.unwrap();
    // Namespaced by the token's tenant.
    assert_eq!(body["user_id"], format!("microsoft:tid-123:{SUB}"));
    assert_eq!(body["idp"], "microsoft");
}

#[tokio::test]
async fn a_callback_naming_another_issuer_is_refused() {
    // RFC 9207: the `iss` callback parameter names the provider that answered; another one
    // means a mix-up attack.
    let provider = LocalProvider::start().await;
    let app = oidc_app(&provider).await;
    let browser = Browser::new();
    let callback = browser
        .until_callback(&format!("{}/auth/oauth/oidc/start", app.base))
        .await;
    let mixed = with_param(&callback, "iss", "https://evil.example");
    let body = assert_oauth_error(browser.get(&mixed).await, 403, "invalid_state").await;
    assert_eq!(body["reason"], "provider_mismatch");
    assert_eq!(browser.get(&callback).await.status(), 302);
}
