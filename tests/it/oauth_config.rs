//! `OAuthClientBuilder::build` refuses unsafe or broken configurations with a clear error.
#![cfg(feature = "oauth-client")]

use crate::oauth_common;

use oauth_common::*;
use tower_mcp_auth::oauth::{
    EncryptionKey, OAuthClient, OAuthClientBuilder, OAuthConfigError, Provider, SessionConfig,
};

async fn build(b: OAuthClientBuilder) -> Result<OAuthClient, OAuthConfigError> {
    b.build().await
}

fn base(provider: &LocalProvider, redirect: &str) -> OAuthClientBuilder {
    OAuthClient::builder(redirect)
        .state_secret(STATE_SECRET)
        .provider(provider.oidc())
        // These tests are about the other settings; sessions need a login policy
        // (tests/it/oauth_authorize.rs).
        .allow_any_account()
}

#[tokio::test]
async fn unsafe_or_broken_configurations_are_refused() {
    let provider = LocalProvider::start().await;
    let ok = "http://127.0.0.1:9/auth/oauth/callback";

    let err = build(OAuthClient::builder(ok).provider(provider.oidc()))
        .await
        .unwrap_err();
    assert!(matches!(err, OAuthConfigError::MissingStateSecret), "{err}");
    let err = build(
        OAuthClient::builder(ok)
            .state_secret("short")
            .provider(provider.oidc()),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, OAuthConfigError::WeakSecret { .. }), "{err}");

    for bad in [
        "http://mcp.example.com/auth/oauth/callback",
        "/auth/oauth/callback",
        "https://mcp.example.com/cb?x=1",
        "https://mcp.example.com/cb#frag",
        "ftp://mcp.example.com/cb",
    ] {
        let err = build(base(&provider, bad)).await.unwrap_err();
        assert!(
            matches!(err, OAuthConfigError::RedirectUri(_)),
            "{bad}: {err}"
        );
    }

    // `Secure` can only be dropped for a localhost redirect URI.
    let insecure = SessionConfig::new(SESSION_SECRET)
        .unwrap()
        .insecure_cookie_for_localhost();
    let err = build(
        OAuthClient::builder("https://mcp.example.com/auth/oauth/callback")
            .state_secret(STATE_SECRET)
            .provider(Provider::github("id", "secret"))
            .session(insecure.clone()),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, OAuthConfigError::Session(_)), "{err}");
    assert!(build(base(&provider, ok).session(insecure)).await.is_ok());
    let err = build(
        base(&provider, ok).session(
            SessionConfig::new(SESSION_SECRET)
                .unwrap()
                .with_cookie_name("a b"),
        ),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, OAuthConfigError::Session(_)), "{err}");

    for target in [
        "//evil.example",
        "http://evil.example/",
        "javascript:x",
        "/a\\b",
    ] {
        let err = build(base(&provider, ok).allow_redirect(target))
            .await
            .unwrap_err();
        assert!(
            matches!(err, OAuthConfigError::RedirectTarget(_)),
            "{target}: {err}"
        );
    }
    for path in [
        "auth/{provider}",
        "/auth/start",
        "/auth/x{provider}/start",
        "/a/{provider}/{provider}",
    ] {
        let err = build(base(&provider, ok).start_path(path))
            .await
            .unwrap_err();
        assert!(
            matches!(err, OAuthConfigError::StartPath(_)),
            "{path}: {err}"
        );
    }
    for path in [
        "auth/logout",
        "/logout?next=/",
        "/auth/oauth/callback",
        "/auth/oauth/github/start",
    ] {
        let err = build(base(&provider, ok).logout_path(path))
            .await
            .unwrap_err();
        assert!(
            matches!(err, OAuthConfigError::LogoutPath(_)),
            "{path}: {err}"
        );
    }

    let err = build(base(&provider, ok).provider(provider.oidc()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, OAuthConfigError::DuplicateProvider(_)),
        "{err}"
    );
    let err = build(OAuthClient::builder(ok).state_secret(STATE_SECRET))
        .await
        .unwrap_err();
    assert!(matches!(err, OAuthConfigError::NoProviders), "{err}");
    let err = build(base(&provider, ok).upstream("tools", "oidc"))
        .await
        .unwrap_err();
    assert!(matches!(err, OAuthConfigError::Upstream { .. }), "{err}");
    let err = build(
        base(&provider, ok)
            .upstream("tools", "nope")
            .token_encryption_key(EncryptionKey::generate()),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, OAuthConfigError::Upstream { .. }), "{err}");
    // Keeping login tokens needs the vault's key, and the provider's name for its upstream.
    let err = build(base(&provider, ok).keep_login_tokens())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("needs token_encryption_key"),
        "{err}"
    );
    let err = build(
        base(&provider, ok)
            .provider(Provider::github("id", "secret"))
            .upstream("oidc", "github")
            .keep_login_tokens()
            .token_encryption_key(EncryptionKey::generate()),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, OAuthConfigError::Upstream { .. }), "{err}");
    assert!(build(
        base(&provider, ok)
            .keep_login_tokens()
            .token_encryption_key(EncryptionKey::generate())
    )
    .await
    .is_ok());
}

#[tokio::test]
async fn providers_that_cannot_be_set_up_are_refused() {
    let provider = LocalProvider::start().await;
    let ok = "http://127.0.0.1:9/auth/oauth/callback";
    let builder = |p: Provider| {
        OAuthClient::builder(ok)
            .state_secret(STATE_SECRET)
            .provider(p)
    };

    // The discovery document names another issuer.
    let p = Provider::oidc(
        "x",
        &format!("{}/", provider.base),
        CLIENT_ID,
        CLIENT_SECRET,
    );
    assert!(
        build(builder(p)).await.is_ok(),
        "a trailing slash is the same issuer"
    );
    let p = Provider::oidc(
        "x",
        &format!("{}/realms/other", provider.base),
        CLIENT_ID,
        CLIENT_SECRET,
    );
    let err = build(builder(p)).await.unwrap_err();
    assert!(matches!(err, OAuthConfigError::Provider { .. }), "{err}");
    // Nobody listens there.
    let p = Provider::oidc("x", "http://127.0.0.1:9", CLIENT_ID, CLIENT_SECRET);
    let err = build(builder(p)).await.unwrap_err();
    assert!(err.to_string().contains("discovery"), "{err}");
    // Plain http is for localhost only.
    let p = Provider::oidc("x", "http://sso.example.com", CLIENT_ID, CLIENT_SECRET);
    let err = build(builder(p)).await.unwrap_err();
    assert!(err.to_string().contains("https"), "{err}");
    let p =
        Provider::github("id", "secret").github_urls("http://github.example.com", &provider.base);
    let err = build(builder(p)).await.unwrap_err();
    assert!(err.to_string().contains("https"), "{err}");
    // Names are path segments.
    let p = provider.oidc().rename("a/b");
    let err = build(builder(p)).await.unwrap_err();
    assert!(matches!(err, OAuthConfigError::Provider { .. }), "{err}");
    // Debug output never shows a secret.
    let debug = format!("{:?}", Provider::github("id", "very-secret-value"));
    assert!(!debug.contains("very-secret-value"), "{debug}");
    let client = build(builder(provider.oidc())).await.unwrap();
    let debug = format!("{client:?}");
    assert!(
        !debug.contains(CLIENT_SECRET) && !debug.contains(STATE_SECRET),
        "{debug}"
    );
}
