//! An MCP server (rmcp, streamable HTTP at `POST /mcp`, tools `whoami` and `echo`) that is
//! its own OAuth 2.1 authorization server for MCP clients (Claude, Inspector, the SDKs) and
//! sends the person to an upstream provider (GitHub, Google, Microsoft, any OIDC) to log in.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `MCP_AUTH_ADDR` | `127.0.0.1:8080` | bind address |
//! | `PUBLIC_BASE_URL` | `http://<addr>` | external base URL; the issuer and the resource (`<base>/mcp`) derive from it |
//! | `OAUTH_PROVIDER` | — | upstream: `github`, `google`, `microsoft`, `oidc` |
//! | `OAUTH_ISSUER` | — | for `oidc`: the upstream issuer (discovery); for `microsoft`: the tenant (default `common`) |
//! | `OAUTH_CLIENT_ID`, `OAUTH_CLIENT_SECRET` | — | this server's client at the upstream |
//! | `OAUTH_SCOPES` | provider default | scopes asked of the upstream |
//! | `OAUTH_REDIRECT_URI` | `<base>/auth/oauth/callback` | the upstream callback |
//! | `MCP_SCOPES` | `mcp:tools` | scopes this server grants MCP clients (advertised in both metadata documents) |
//! | `STATE_SECRET` | — | HMAC secret for state (32+ bytes) |
//! | `STATE_STORE` | `memory` | `memory`, `redis://…`, `postgres://…`, `sqlite:…` (with the matching feature) |
//! | `TOKEN_SIGNING_KEY` | generated at start | PKCS#8 PEM (ES256 or Ed25519), the PEM text or a file path; instances sharing a store and this key accept each other's tokens |
//! | `ACCESS_TOKEN_TTL_SECS` / `REFRESH_TOKEN_TTL_SECS` | `3600` / `2592000` | lifetimes |
//! | `TOKEN_ENCRYPTION_KEY` | generated at start | base64 of 32 bytes: encrypts the upstream provider's tokens kept on the server for tool handlers (`OAuthClient::upstream_token(provider, identity.user_id)`); instances sharing a store need the same key |
//! | `CIMD_ALLOW_HTTP_LOOPBACK` | `false` | accept `http://127.0.0.1:<port>/…` client-id metadata URLs and fetch metadata documents from loopback addresses (local testing only; https from public addresses otherwise) |
//! | `CIMD_CA_FILE` | — | PEM file of extra certificate authorities trusted when fetching client-id metadata documents (a private CA, or a test's self-signed certificate) |
//!
//! Any account of the upstream may log in (the example's choice); restrict it with a
//! [`LoginPolicy`](tower_mcp_auth::oauth::LoginPolicy) or `AuthServerBuilder::authorize_user`.
//!
//! ```sh
//! OAUTH_PROVIDER=github OAUTH_CLIENT_ID=… OAUTH_CLIENT_SECRET=… \
//!   STATE_SECRET=$(openssl rand -hex 32) cargo run --features oauth-server,axum --example oauth_proxy
//! npx @modelcontextprotocol/inspector   # URL http://127.0.0.1:8080/mcp, then "Connect"
//! ```

#[path = "common/env.rs"]
mod env;
#[path = "common/request_log.rs"]
#[allow(dead_code)]
mod request_log;
#[path = "common/rmcp_tools.rs"]
mod rmcp_tools;

use std::time::Duration;

use axum::routing::get;
use axum::Router;
use tower_mcp_auth::oauth::server::{AuthServer, SigningKey};
use tower_mcp_auth::oauth::{EncryptionKey, OAuthClient, Provider};
use tower_mcp_auth::{bearer::CachedVerifier, EndpointPolicy, McpAuth};

use env::{env_bool, env_or, Error};

#[tokio::main]
async fn main() {
    request_log::init_tracing();
    if let Err(e) = run().await {
        eprintln!("oauth_proxy: {e}");
        std::process::exit(2);
    }
}

fn required(name: &str) -> Result<String, Error> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("{name} is required").into())
}

fn secs(name: &str, default: u64) -> Result<Duration, Error> {
    let text = env_or(name, &default.to_string());
    let n: u64 = text
        .parse()
        .map_err(|_| format!("{name}: not a number of seconds: {text:?}"))?;
    Ok(Duration::from_secs(n))
}

/// The upstream provider from `OAUTH_PROVIDER` and friends.
fn provider() -> Result<Provider, Error> {
    let (id, secret) = (
        required("OAUTH_CLIENT_ID")?,
        required("OAUTH_CLIENT_SECRET")?,
    );
    let provider = match required("OAUTH_PROVIDER")?.as_str() {
        "github" => Provider::github(&id, &secret),
        "google" => Provider::google(&id, &secret),
        "microsoft" => Provider::microsoft(&env_or("OAUTH_ISSUER", "common"), &id, &secret),
        "oidc" => Provider::oidc("oidc", &required("OAUTH_ISSUER")?, &id, &secret),
        other => {
            return Err(
                format!("OAUTH_PROVIDER {other:?}: github, google, microsoft or oidc").into(),
            )
        }
    };
    Ok(match std::env::var("OAUTH_SCOPES") {
        Ok(scopes) if !scopes.trim().is_empty() => provider.scopes(scopes.split_whitespace()),
        _ => provider,
    })
}

/// `TOKEN_SIGNING_KEY`: PEM text, or the path of a PEM file; generated when unset.
fn signing_key() -> Result<SigningKey, Error> {
    match std::env::var("TOKEN_SIGNING_KEY") {
        Ok(v) if v.trim_start().starts_with("-----BEGIN") => Ok(SigningKey::from_pem(&v)?),
        Ok(path) if !path.is_empty() => Ok(SigningKey::from_pem(&std::fs::read_to_string(&path)?)?),
        _ => {
            tracing::warn!(
                "TOKEN_SIGNING_KEY not set: tokens stop verifying when this process ends"
            );
            Ok(SigningKey::generate_es256())
        }
    }
}

/// `TOKEN_ENCRYPTION_KEY` (base64 of 32 bytes), or a new key (tokens kept by this process
/// only).
fn encryption_key() -> Result<EncryptionKey, Error> {
    match std::env::var("TOKEN_ENCRYPTION_KEY") {
        Ok(text) if !text.is_empty() => Ok(EncryptionKey::from_base64(&text)?),
        _ => Ok(EncryptionKey::generate()),
    }
}

async fn run() -> Result<(), Error> {
    let addr = env_or("MCP_AUTH_ADDR", "127.0.0.1:8080");
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let bound = listener.local_addr()?;
    let base = env_or("PUBLIC_BASE_URL", &format!("http://{bound}"))
        .trim_end_matches('/')
        .to_owned();
    let store = tower_mcp_auth::store::connect(&env_or("STATE_STORE", "memory")).await?;
    let provider = provider()?;
    let provider_name = provider.name().to_owned();
    let oauth = OAuthClient::builder(env_or(
        "OAUTH_REDIRECT_URI",
        &format!("{base}/auth/oauth/callback"),
    ))
    .provider(provider)
    .state_secret(required("STATE_SECRET")?)
    .store_shared(store.clone())
    .allow_any_account()
    // The provider's tokens stay here, encrypted, never sent to MCP clients: a tool that
    // calls GitHub's API for the caller asks `oauth.upstream_token("github", user_id)`.
    .token_encryption_key(encryption_key()?)
    .keep_login_tokens()
    .build()
    .await?;
    let scopes = env_or("MCP_SCOPES", "mcp:tools");
    let server = AuthServer::builder(&base, oauth, provider_name)
        .scopes(scopes.split_whitespace())
        .signing_key(signing_key()?)
        .store_shared(store)
        .access_token_ttl(secs("ACCESS_TOKEN_TTL_SECS", 3600)?)
        .refresh_token_ttl(secs("REFRESH_TOKEN_TTL_SECS", 2_592_000)?)
        .allow_loopback_metadata_documents(env_bool("CIMD_ALLOW_HTTP_LOOPBACK", false)?);
    let server = match std::env::var("CIMD_CA_FILE") {
        Ok(file) if !file.is_empty() => server.metadata_document_roots(std::fs::read(&file)?),
        _ => server,
    }
    .build()?;

    // `/mcp` takes this server's tokens only; the 401 names the metadata document. An ES256
    // verification costs ~0.3 ms (benches/oauth_server.rs): cache verified tokens.
    let auth = McpAuth::builder()
        .bearer(CachedVerifier::new(server.verifier()))
        .public_base_url(&base)
        .endpoint("/mcp", EndpointPolicy::oauth_only())
        .default_policy(EndpointPolicy::open())
        .build()?;
    let app = Router::new()
        .route_service("/mcp", rmcp_tools::service(&base, bound)?)
        .route("/health", get(|| async { "ok" }))
        .fallback_service(server.clone())
        .layer(auth);
    tracing::info!(%base, issuer = server.issuer(), resource = server.resource(), "oauth_proxy listening");
    axum::serve(listener, app).await?;
    Ok(())
}
