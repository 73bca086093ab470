//! An MCP server built with the official Rust SDK (`rmcp`, streamable HTTP at `/mcp`) behind
//! the tower-mcp-auth stack, configured by the same environment variables as `four_modes`.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `MCP_AUTH_ADDR` | `127.0.0.1:8080` | bind address |
//! | `PUBLIC_BASE_URL` | `http://<bound address>` | the URL clients use (challenges, metadata, allowed `Host`) |
//! | `ENABLE_API_KEY_AUTH` | `true` | accept API keys on `/mcp` |
//! | `ENABLE_OAUTH` | `false` | accept bearer tokens on `/mcp` (Bearer challenge on 401) |
//! | `MCP_API_KEYS` | — | `{"<key>": {"name", "userId"?, "role"?, "permissions"?, "expiresAt"?}}` |
//! | `USE_QUERY_PARAM_AUTH` | `true` | also read `api_key` / `apikey` from the query |
//! | `JWT_SECRET` | — | HS256 secret (32+ bytes) for bearer tokens |
//! | `JWT_ISSUER`, `JWT_AUDIENCE` | unset | checked when set |
//! | `OAUTH_ISSUER` | unset | authorization server: its discovery document gives the JWKS (feature `jwks`); listed in `authorization_servers` |
//! | `JWKS_URL` | unset | verify tokens with this JWK set instead (feature `jwks`) |
//! | `OAUTH_AUDIENCE` | the resource URL | audience tokens must carry (RFC 8707) |
//! | `OAUTH_SCOPES` | unset | space-separated scopes required, advertised in `scopes_supported` and the challenge |
//! | `MCP_SCOPE_PERMISSIONS` | each `OAUTH_SCOPES` scope grants `*` | what token scopes grant, a JSON object scope → [permission, ...]: `{"mcp:tools": ["tools/list", "tools/call:*"], "repo:read": ["tools/call:search_*"]}`; a scope also gets the entries of its `:` children (`repo` those of `repo:read`) |
//! | `FAILED_AUTH_LIMIT`, `FAILED_AUTH_WINDOW_SECS` | `20`, `60` | failed-auth lockout per client IP |
//! | `TRUSTED_PROXIES` | none | proxy addresses / CIDRs whose `CLIENT_IP_HEADER` gives the client IP |
//! | `CLIENT_IP_HEADER` | `X-Forwarded-For` | the one header read from trusted proxies: `X-Forwarded-For`, `Forwarded` or a single-address header (`CF-Connecting-IP`, `X-Real-IP`) |
//! | `ALLOWED_ORIGINS` | loopback | browser origins allowed besides `http(s)://localhost`, `127.0.0.1`, `[::1]` (any port); other `Origin`s get 403 `invalid_origin`; `off` disables the check |
//! | `STATE_STORE` | `memory` | where the lockout and the quota are counted: `memory`, `redis://…`, `redis+cluster://h1:p1,h2:p2`, `postgres://…`, `sqlite:path` (with the matching feature) |
//! | `MEMORY_STORE_MAX_ENTRIES` | `1000000` | with `STATE_STORE=memory`: the most keys the store holds (lockout and quota buckets) |
//! | `RATE_LIMIT`, `RATE_LIMIT_WINDOW_SECS` | unset, `60` | a quota per caller (issuer and user): `RATE_LIMIT` requests per window, `RateLimit-*` headers, 429 past it |
//! | `MCP_TOOL_PERMISSIONS` | `false` | opt-in per-tool permissions: `tools/call` needs `tools/call:<tool>` (an API key's permission, or granted by `MCP_SCOPE_PERMISSIONS`; a token scope counts only literally: `tools/call`, `tools/call:<tool>`); `tools/list` shows only callable tools |
//!
//! Out of the box every authenticated caller (holding `OAUTH_SCOPES`, when set) lists and
//! calls every tool: a standard identity provider's token (`scope: "openid mcp:tools"`) works
//! as is. Token scopes are never wildcards: a scope `*` from the identity provider is just a
//! name. With `MCP_TOOL_PERMISSIONS=true`, what each caller may call comes from its API key's
//! `permissions` and, for tokens, `MCP_SCOPE_PERMISSIONS`; a refused call gets a 403 whose
//! challenge names the scope that grants it (step-up).
//!
//! Tools: `whoami` answers a JSON object with the caller's `user_id`, `issuer`, `method`,
//! `name`, `permissions` and `scopes`, read from the [`Identity`] the auth stack put in the HTTP request (rmcp
//! hands the request's `http::request::Parts` to tool handlers); `echo` returns its `text`.
//!
//! ```sh
//! MCP_API_KEYS='{"k-alice":{"name":"Alice","userId":"alice","permissions":["*"]},"k-echo":{"name":"Echo only","permissions":["tools/call:echo"]}}' \
//!   MCP_TOOL_PERMISSIONS=true cargo run --example rmcp_server
//! npx @modelcontextprotocol/inspector   # URL http://127.0.0.1:8080/mcp, header X-API-Key: k-alice
//! ```
//!
//! Or by hand (streamable HTTP needs both media types in `Accept`):
//!
//! ```sh
//! curl -si localhost:8080/mcp -H 'X-API-Key: k-echo' -H 'content-type: application/json' \
//!   -H 'accept: application/json, text/event-stream' \
//!   -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"curl","version":"0"}}}'
//! ```

#[path = "common/client_addr.rs"]
mod client_addr;
#[path = "common/env.rs"]
mod env;
#[path = "common/request_log.rs"]
mod request_log;
#[path = "common/rmcp_tools.rs"]
mod rmcp_tools;

use axum::routing::{get, get_service};
use axum::Router;
use tower_mcp_auth::metadata::{metadata_paths, resource_url};
use tower_mcp_auth::McpRules;

use env::{env_bool, env_or, AuthEnv, Error};

#[tokio::main]
async fn main() {
    request_log::init_tracing();
    if let Err(e) = run().await {
        eprintln!("rmcp_server: {e}");
        std::process::exit(2);
    }
}

async fn run() -> Result<(), Error> {
    let addr = env_or("MCP_AUTH_ADDR", "127.0.0.1:8080");
    let auth_env = AuthEnv::from_env()?;
    let tool_permissions = env_bool("MCP_TOOL_PERMISSIONS", false)?;
    let (lockout, quota, state_store) = env::limits_from_env().await?;

    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let bound = listener.local_addr()?;
    let base = env_or("PUBLIC_BASE_URL", &format!("http://{bound}"));
    let base = base.trim_end_matches('/').to_owned();

    let mcp = rmcp_tools::service(&base, bound)?;

    let mut app = Router::new()
        .route_service("/mcp", mcp)
        .route("/health", get(|| async { "ok" }));
    let resource = resource_url(&base, "/mcp");
    if auth_env.oauth {
        let doc = auth_env.metadata(&resource);
        // Clients try the path-inserted URL and the root; an api-key-only `/mcp` serves none.
        let doc = doc.into_service();
        for path in metadata_paths("/mcp") {
            app = app.route(&path, get_service(doc.clone()));
        }
    }

    // `/mcp` gets the configured mode; `/health` and the metadata document stay open.
    let auth = auth_env
        .builder(&base, &resource)
        .await?
        .endpoint("/mcp", auth_env.mode())
        .failed_auth_limit(lockout);
    let auth = match quota {
        Some(quota) => auth.rate_limit(quota),
        None => auth,
    };
    let app = if tool_permissions {
        let rules = McpRules::new()
            .public(["tools/list"])
            .filter_tools_list(true)
            .path("/mcp");
        request_log::outer(request_log::inner(app).layer(auth.mcp_permissions(rules).build()?))
    } else {
        request_log::outer(request_log::inner(app).layer(auth.build()?))
    };

    let app = client_addr::with_client_addr(app);

    tracing::info!(%base, api_keys = auth_env.api_keys, oauth = auth_env.oauth, tool_permissions, state_store, "rmcp_server listening");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .await?;
    Ok(())
}
