//! A server configured only by environment variables, for trying the four auth modes from a
//! shell.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `MCP_AUTH_ADDR` | `127.0.0.1:8080` | bind address |
//! | `ENABLE_API_KEY_AUTH` | `true` | accept API keys on `/mcp` and `/users/alice/mcp` |
//! | `ENABLE_OAUTH` | `false` | accept bearer tokens there (Bearer challenge on 401) |
//! | `MCP_API_KEYS` | — | `{"<key>": {"name", "userId"?, "role"?, "permissions"?, "expiresAt"?}}` |
//! | `USE_QUERY_PARAM_AUTH` | `true` | also read `api_key` / `apikey` from the query |
//! | `JWT_SECRET` | — | HS256 secret (32+ bytes) for bearer tokens |
//! | `JWT_ISSUER`, `JWT_AUDIENCE` | unset | checked when set |
//! | `OAUTH_ISSUER` | unset | authorization server: its discovery document gives the JWKS (feature `jwks`); listed in `authorization_servers` |
//! | `JWKS_URL` | unset | verify tokens with this JWK set instead (feature `jwks`) |
//! | `OAUTH_AUDIENCE` | the resource URL | audience tokens must carry (RFC 8707) |
//! | `OAUTH_SCOPES` | unset | space-separated scopes required, advertised in `scopes_supported` and the challenge |
//! | `MCP_SCOPE_PERMISSIONS` | each `OAUTH_SCOPES` scope grants `*` | what token scopes grant (JSON object scope → [permission, ...]), seen by the handlers as `permissions` |
//! | `PUBLIC_BASE_URL` | `http://<bound address>` | the externally visible base URL (challenges, metadata `resource`) |
//! | `FAILED_AUTH_LIMIT`, `FAILED_AUTH_WINDOW_SECS` | `20`, `60` | failed-auth lockout per client IP |
//! | `TRUSTED_PROXIES` | none | proxy addresses / CIDRs whose `CLIENT_IP_HEADER` gives the client IP |
//! | `CLIENT_IP_HEADER` | `X-Forwarded-For` | the one header read from trusted proxies: `X-Forwarded-For`, `Forwarded` or a single-address header (`CF-Connecting-IP`, `X-Real-IP`) |
//! | `ALLOWED_ORIGINS` | loopback | browser origins allowed besides `http(s)://localhost`, `127.0.0.1`, `[::1]` (any port); other `Origin`s get 403 `invalid_origin`; `off` disables the check |
//! | `STATE_STORE` | `memory` | where the lockout is counted: `memory`, `redis://…` (feature `redis`), `redis+cluster://h1:p1,h2:p2` (feature `redis-cluster`), `postgres://…` (feature `postgres`), `sqlite:path` (feature `sqlite`) |
//! | `MEMORY_STORE_MAX_ENTRIES` | `1000000` | with `STATE_STORE=memory`: the most keys the store holds (one per locked-out client IP) |
//!
//! Routes: `POST /mcp` (public endpoint), `POST /users/alice/mcp` (private to the local user
//! `alice`: API keys with `"userId": "alice"`, HS256 tokens without `iss`; a token of an
//! identity provider whose `sub` is `alice` is another user), `GET /health` (always open) and, with OAuth on,
//! `GET /.well-known/oauth-protected-resource/mcp` (RFC 9728).
//!
//! ```sh
//! MCP_API_KEYS='{"k-alice":{"name":"Alice","userId":"alice","permissions":["*"]},"k-pub":{"name":"Shared"}}' \
//!   cargo run --example four_modes
//! curl -si -X POST localhost:8080/mcp -H 'content-type: application/json' -d '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
//! curl -s  -X POST localhost:8080/users/alice/mcp -H 'X-API-Key: k-pub' -H 'content-type: application/json' -d '{}'
//! ```

#[path = "common/client_addr.rs"]
mod client_addr;
#[path = "common/env.rs"]
mod env;
#[path = "common/mcp.rs"]
mod mcp;
#[path = "common/request_log.rs"]
mod request_log;

use std::net::SocketAddr;

use axum::routing::{get, get_service, post};
use axum::Router;
use env::{env_or, AuthEnv, Error};
use tower_mcp_auth::metadata::{metadata_path, resource_url, WELL_KNOWN_PREFIX};
use tower_mcp_auth::EndpointPolicy;

#[tokio::main]
async fn main() -> Result<(), Error> {
    request_log::init_tracing();
    if let Err(e) = run().await {
        eprintln!("four_modes: {e}");
        std::process::exit(2);
    }
    Ok(())
}

async fn run() -> Result<(), Error> {
    let addr = env_or("MCP_AUTH_ADDR", "127.0.0.1:8080");
    let auth_env = AuthEnv::from_env()?;
    let (lockout, state_store) = env::lockout_from_env().await?;

    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let bound = listener.local_addr()?;
    let base = env_or("PUBLIC_BASE_URL", &format!("http://{bound}"));
    let base = base.trim_end_matches('/').to_owned();
    let private_path = "/users/alice/mcp";

    let mode = auth_env.mode();
    let auth = auth_env
        .builder(&base, &resource_url(&base, "/mcp"))
        .await?
        .endpoint("/health", EndpointPolicy::open())
        .endpoint("/.well-known/{*path}", EndpointPolicy::open())
        .endpoint("/mcp", mode.clone())
        .endpoint(private_path, mode.private_to("alice"))
        .failed_auth_limit(lockout);
    let mut app = Router::new()
        .route("/mcp", post(mcp::handle))
        .route(private_path, post(mcp::handle))
        .route("/health", get(|| async { "ok" }));
    if auth_env.oauth {
        for path in ["/mcp", private_path] {
            let doc = auth_env.metadata(&resource_url(&base, path));
            app = app.route(&metadata_path(path), get_service(doc.into_service()));
        }
        // Clients also try the root well-known URL: it describes the main resource, `/mcp`.
        let doc = auth_env.metadata(&resource_url(&base, "/mcp"));
        app = app.route(WELL_KNOWN_PREFIX, get_service(doc.into_service()));
    }
    // client address → outer log → (lockout → auth) → inner log → handlers: the lockout sees
    // each refusal's `AuthFailure`, and its own 429s are logged too.
    let app = request_log::inner(app).layer(auth.build()?);
    let app = client_addr::with_client_addr(request_log::outer(app));

    tracing::info!(
        %base,
        api_keys = auth_env.api_keys,
        oauth = auth_env.oauth,
        query = auth_env.query,
        state_store,
        "four_modes listening"
    );
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
