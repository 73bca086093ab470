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
//! | `STATE_STORE` | `memory` | where the lockout is counted: `memory`, `redis://…`, `postgres://…`, `sqlite:path` (with the matching feature) |
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

use std::sync::Arc;

use axum::routing::{get, get_service};
use axum::Router;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{json, Map, Value};
use tower_mcp_auth::metadata::{metadata_paths, resource_url};
use tower_mcp_auth::{Identity, McpRules};

use env::{env_bool, env_or, AuthEnv, Error};

/// The MCP server: two tools, written against rmcp's `ServerHandler` directly.
#[derive(Clone)]
struct Tools;

fn tools() -> Vec<Tool> {
    let schema = |properties: Value, required: &[&str]| -> Arc<Map<String, Value>> {
        let mut schema = Map::new();
        schema.insert("type".into(), "object".into());
        schema.insert("properties".into(), properties);
        schema.insert("required".into(), json!(required));
        Arc::new(schema)
    };
    vec![
        Tool::new(
            "whoami",
            "Who the server thinks you are: user_id and auth method from your credential",
            schema(json!({}), &[]),
        ),
        Tool::new(
            "echo",
            "Returns the text it is given",
            schema(json!({"text": {"type": "string"}}), &["text"]),
        ),
    ]
}

/// The caller, as the auth stack decided: rmcp puts the HTTP request's parts in the request
/// context, and `EndpointPolicyLayer` put the `Identity` in their extensions.
fn caller(context: &RequestContext<RoleServer>) -> Option<Identity> {
    context
        .extensions
        .get::<http::request::Parts>()?
        .extensions
        .get::<Identity>()
        .cloned()
}

impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build()).with_server_info(
            Implementation::new("tower-mcp-auth-rmcp-example", env!("CARGO_PKG_VERSION")),
        )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(tools()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        tools().into_iter().find(|t| t.name == name)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let text = match &*request.name {
            "whoami" => {
                let identity = caller(&context);
                json!({
                    "user_id": identity.as_ref().and_then(|i| i.user_id()),
                    "issuer": identity.as_ref().and_then(|i| i.issuer()),
                    "scopes": identity.as_ref().map(|i| i.scopes()),
                    "method": identity.as_ref().map(|i| i.method().as_str()),
                    "name": identity.as_ref().map(|i| i.name()),
                    "permissions": identity.as_ref().map(|i| i.permissions()),
                })
                .to_string()
            }
            "echo" => match request.arguments.as_ref().and_then(|a| a.get("text")) {
                Some(Value::String(text)) => text.clone(),
                _ => {
                    return Err(ErrorData::invalid_params(
                        "echo needs a string argument `text`",
                        None,
                    ))
                }
            },
            other => {
                return Err(ErrorData::invalid_params(
                    format!("unknown tool {other}"),
                    None,
                ))
            }
        };
        Ok(CallToolResult::success(vec![ContentBlock::text(text)]).into())
    }
}

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
    let (lockout, state_store) = env::lockout_from_env().await?;

    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let bound = listener.local_addr()?;
    let base = env_or("PUBLIC_BASE_URL", &format!("http://{bound}"));
    let base = base.trim_end_matches('/').to_owned();

    // rmcp refuses `Host` headers it does not know (DNS rebinding protection): allow the
    // loopback names, the bound address and the public URL's authority.
    let public_authority: http::Uri = base
        .parse()
        .map_err(|e| format!("PUBLIC_BASE_URL {base:?}: {e}"))?;
    let mut hosts = vec!["localhost".to_owned(), "127.0.0.1".into(), "::1".into()];
    hosts.push(bound.to_string());
    if let Some(authority) = public_authority.authority() {
        hosts.push(authority.to_string());
    }
    let mcp = StreamableHttpService::new(
        || Ok(Tools),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default().with_allowed_hosts(hosts),
    );

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
