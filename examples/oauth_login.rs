//! Log in with an OAuth / OIDC provider, then call a protected MCP endpoint with the session
//! cookie. Configured only by environment variables.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `MCP_AUTH_ADDR` | `127.0.0.1:8080` | bind address |
//! | `OAUTH_PROVIDER` | `github` | `github`, `google`, `microsoft` or `oidc` |
//! | `OAUTH_ISSUER` | — | `oidc`: the issuer (discovery at `{issuer}/.well-known/openid-configuration`); `google` / `microsoft`: overrides the issuer; `github`: the web base URL (GitHub Enterprise) |
//! | `OAUTH_GITHUB_API_URL` | `https://api.github.com` | `github` with `OAUTH_ISSUER`: the API base URL |
//! | `OAUTH_TENANT` | `common` | `microsoft`: the tenant |
//! | `OAUTH_CLIENT_ID`, `OAUTH_CLIENT_SECRET` | — | the app registered with the provider |
//! | `OAUTH_SCOPES` | the provider's defaults | space- or comma-separated |
//! | `OAUTH_REDIRECT_URI` | `http://<addr>/auth/oauth/callback` | registered with the provider, exactly |
//! | `STATE_SECRET` | — | HMAC secret for `state` (32+ bytes), the same on every instance |
//! | `STATE_TTL_SECS` | `300` | how long a login may take |
//! | `STATE_STORE` | `memory` | `memory`, `redis://…` (feature `redis`), `postgres://…` (feature `postgres`), `sqlite:path` (feature `sqlite`) |
//! | `SESSION_SECRET` | derived from `STATE_SECRET` | HS256 secret of the session JWT (32+ bytes) |
//! | `SESSION_TTL_SECS` | `3600` | session lifetime |
//! | `OAUTH_ALLOWED_USERS` | — | user ids allowed to log in (`github:583231`, `google:1098…`, `oidc:<issuer>:<sub>`; `GET /` shows yours) |
//! | `OAUTH_ALLOWED_EMAILS` | — | verified e-mail addresses allowed to log in |
//! | `OAUTH_ALLOWED_DOMAINS` | — | domains of verified e-mails allowed to log in (exact: no subdomains) |
//! | `OAUTH_GITHUB_ORGS` | — | `github`: active members of these organizations may log in (adds the `read:org` scope) |
//! | `OAUTH_ALLOWED_TENANTS` | — | `microsoft`: Entra tenant ids whose accounts may log in |
//! | `OAUTH_ALLOW_ANY_ACCOUNT` | `false` | `true`: anyone with an account at the provider may log in |
//!
//! Lists are comma- or space-separated; a login is allowed when it matches any of them.
//! **With none of them set, every login is refused** (`403 access_denied`, and a warning at
//! start-up): an OAuth login only proves who someone is, and "anyone with a GitHub account"
//! is rarely who should use your MCP server. `OAUTH_ALLOW_ANY_ACCOUNT=true` opens it
//! knowingly (also warned about).
//!
//! Routes: `GET /auth/oauth/<provider>/start` (302 to the provider), `GET /auth/oauth/callback`
//! (sets the session cookie, `__Host-mcp_session` - `mcp_session` on an `http://localhost`
//! redirect URI, where it cannot be `Secure` - then 302 to `/`), `POST /auth/logout` (clears the cookie,
//! then 303 to `/`), `GET /` (who is logged in, as JSON),
//! `POST /mcp` (protected: the session cookie or `Authorization: Bearer <session JWT>`),
//! `GET /health`.
//!
//! Two processes started with the same `STATE_SECRET` and a shared Redis `STATE_STORE`
//! complete a login that starts on one and returns to the other.
//!
//! ```sh
//! OAUTH_PROVIDER=github OAUTH_CLIENT_ID=... OAUTH_CLIENT_SECRET=... \
//! STATE_SECRET=$(openssl rand -hex 32) cargo run --example oauth_login --features oauth-client
//! # open http://127.0.0.1:8080/auth/oauth/github/start in a browser, then:
//! curl -s -X POST localhost:8080/mcp -H "Cookie: mcp_session=<from the browser>" \
//!   -H 'content-type: application/json' -d '{"jsonrpc":"2.0","id":1,"method":"tools/call"}'
//! ```

#[path = "common/mcp.rs"]
mod mcp;
#[path = "common/request_log.rs"]
mod request_log;

use std::time::Duration;

use axum::extract::Extension;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tower_mcp_auth::oauth::{LoginPolicy, OAuthClient, Provider, SessionConfig};
use tower_mcp_auth::{
    bearer::{BearerLayer, BearerOutcome},
    EndpointPolicy, McpAuth,
};

type Error = Box<dyn std::error::Error>;

#[tokio::main]
async fn main() {
    request_log::init_tracing();
    if let Err(e) = run().await {
        eprintln!("oauth_login: {e}");
        std::process::exit(2);
    }
}

async fn run() -> Result<(), Error> {
    let addr = env_or("MCP_AUTH_ADDR", "127.0.0.1:8080");
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let local = listener.local_addr()?;
    let redirect_uri = std::env::var("OAUTH_REDIRECT_URI")
        .unwrap_or_else(|_| format!("http://{local}/auth/oauth/callback"));
    let provider = provider_from_env()?;
    let provider_name = provider.name().to_owned();

    let state_secret = std::env::var("STATE_SECRET")
        .map_err(|_| "STATE_SECRET is required (32+ bytes, the same on every instance)")?;
    let state_ttl = Duration::from_secs(env_or("STATE_TTL_SECS", "300").parse()?);
    let store_url = env_or("STATE_STORE", "memory");
    let store = tower_mcp_auth::store::connect(&store_url)
        .await
        .map_err(|e| format!("STATE_STORE: {e}"))?;

    // Without SESSION_SECRET, derive one from STATE_SECRET (never use one key for both).
    let session_secret = match std::env::var("SESSION_SECRET") {
        Ok(s) => s.into_bytes(),
        Err(_) => Sha256::new()
            .chain_update(b"tower-mcp-auth oauth_login session key\0")
            .chain_update(state_secret.as_bytes())
            .finalize()
            .to_vec(),
    };
    let mut session = SessionConfig::new(session_secret)?
        .ttl(Duration::from_secs(
            env_or("SESSION_TTL_SECS", "3600").parse()?,
        ))
        .scopes(["tools/call", "tools/list"]);
    let local_dev = redirect_uri.starts_with("http://127.0.0.1")
        || redirect_uri.starts_with("http://localhost")
        || redirect_uri.starts_with("http://[::1]");
    if local_dev {
        // Plain-http development on this machine: a `Secure` cookie would not come back.
        session = session.insecure_cookie_for_localhost();
    }

    let policy = login_policy_from_env()?;
    let oauth = OAuthClient::builder(redirect_uri.clone())
        .provider(provider)
        .login_policy(policy)
        .state_secret(&state_secret)
        .state_ttl(state_ttl)
        .store_shared(store)
        .session(session.clone())
        .build()
        .await?;

    let auth = McpAuth::builder()
        .bearer(session.verifier())
        .session_cookie(session.cookie_name())
        .endpoint("/mcp", EndpointPolicy::oauth_only())
        .default_policy(EndpointPolicy::open())
        .build()?;
    let start = oauth.start_path("{provider}");
    let login_path = oauth.start_path(&provider_name);
    let callback = oauth.callback_path().to_owned();
    let logout = oauth.logout_path().to_owned();
    // The policy layer consumes what the authenticators found; `/` is open but wants to know
    // who is logged in, so it identifies the session itself.
    let identify = BearerLayer::new(session.verifier()).session_cookie(session.cookie_name());
    let app = Router::new()
        .route(
            "/",
            get(move |o| whoami(o, login_path.clone())).layer(identify),
        )
        .route("/mcp", post(mcp::handle))
        .route("/health", get(|| async { "ok" }))
        .route_service(&start, oauth.routes())
        .route_service(&callback, oauth.routes())
        .route_service(&logout, oauth.routes());
    let app = request_log::with_auth_and_logging(app, auth);

    let state_store = store_url.split("://").next().unwrap_or("memory");
    tracing::info!(%local, provider = %provider_name, %redirect_uri, state_store, "oauth_login listening");
    axum::serve(listener, app).await?;
    Ok(())
}

/// `GET /`: who the session cookie (or bearer token) says is logged in.
async fn whoami(outcome: Option<Extension<BearerOutcome>>, login: String) -> Json<Value> {
    Json(match outcome {
        Some(Extension(BearerOutcome::Verified(id))) => {
            let claim = |k: &str| id.claims().and_then(|c| c.get(k)).cloned();
            json!({
                "logged_in": true,
                "user_id": id.user_id(),
                "provider": claim("idp"),
                "name": claim("name"),
                "email": claim("email"),
            })
        }
        _ => json!({"logged_in": false, "login": login}),
    })
}

fn provider_from_env() -> Result<Provider, Error> {
    let kind = env_or("OAUTH_PROVIDER", "github");
    let id = std::env::var("OAUTH_CLIENT_ID").map_err(|_| "OAUTH_CLIENT_ID is required")?;
    let secret = std::env::var("OAUTH_CLIENT_SECRET").unwrap_or_default();
    let issuer = std::env::var("OAUTH_ISSUER").ok();
    let mut provider = match kind.as_str() {
        "github" => {
            let p = Provider::github(&id, &secret);
            match &issuer {
                Some(web) => {
                    let api = env_or("OAUTH_GITHUB_API_URL", "https://api.github.com");
                    p.github_urls(web, &api)
                }
                None => p,
            }
        }
        "google" => Provider::google(&id, &secret),
        "microsoft" => Provider::microsoft(&env_or("OAUTH_TENANT", "common"), &id, &secret),
        "oidc" => {
            let issuer = issuer
                .clone()
                .ok_or("OAUTH_PROVIDER=oidc needs OAUTH_ISSUER")?;
            Provider::oidc("oidc", &issuer, &id, &secret)
        }
        other => {
            return Err(format!(
                "OAUTH_PROVIDER must be github, google, microsoft or oidc, got {other:?}"
            )
            .into())
        }
    };
    if let (Some(issuer), "google" | "microsoft") = (&issuer, kind.as_str()) {
        provider = provider.issuer(issuer.clone());
    }
    if let Ok(scopes) = std::env::var("OAUTH_SCOPES") {
        provider = provider.scopes(
            scopes
                .split([' ', ','])
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        );
    }
    Ok(provider)
}

/// Who may log in, from `OAUTH_ALLOWED_*`, `OAUTH_GITHUB_ORGS`, `OAUTH_ALLOW_ANY_ACCOUNT`.
fn login_policy_from_env() -> Result<LoginPolicy, Error> {
    let list = |name: &str| -> Vec<String> {
        std::env::var(name)
            .unwrap_or_default()
            .split([',', ' '])
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let users = list("OAUTH_ALLOWED_USERS");
    let emails = list("OAUTH_ALLOWED_EMAILS");
    let domains = list("OAUTH_ALLOWED_DOMAINS");
    let orgs = list("OAUTH_GITHUB_ORGS");
    let tenants = list("OAUTH_ALLOWED_TENANTS");
    let any = matches!(
        env_or("OAUTH_ALLOW_ANY_ACCOUNT", "false").as_str(),
        "1" | "true" | "yes"
    );
    let restricted = [&users, &emails, &domains, &orgs, &tenants]
        .iter()
        .any(|l| !l.is_empty());
    if any && restricted {
        return Err("OAUTH_ALLOW_ANY_ACCOUNT=true contradicts the OAUTH_ALLOWED_* lists: set one or the other".into());
    }
    if any {
        tracing::warn!("OAUTH_ALLOW_ANY_ACCOUNT=true: ANYONE with an account at the provider can log in and call /mcp");
        return Ok(LoginPolicy::any_account());
    }
    if !restricted {
        tracing::warn!(
            "no OAUTH_ALLOWED_USERS / OAUTH_ALLOWED_EMAILS / OAUTH_ALLOWED_DOMAINS / OAUTH_GITHUB_ORGS / OAUTH_ALLOWED_TENANTS set: EVERY LOGIN WILL BE REFUSED (403). Set one (or OAUTH_ALLOW_ANY_ACCOUNT=true to let anyone in)"
        );
    }
    let mut policy = LoginPolicy::new();
    if !users.is_empty() {
        policy = policy.allow_users(users);
    }
    if !emails.is_empty() {
        policy = policy.allow_emails(emails);
    }
    if !domains.is_empty() {
        policy = policy.allow_email_domains(domains);
    }
    if !orgs.is_empty() {
        policy = policy.allow_github_orgs(orgs);
    }
    if !tenants.is_empty() {
        policy = policy.allow_tenants(tenants);
    }
    Ok(policy)
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}
