//! The two tools of the rmcp examples (`rmcp_server`, `oauth_proxy`), written against rmcp's
//! `ServerHandler` directly: `whoami` answers a JSON object with the caller's `user_id`,
//! `issuer`, `method`, `name`, `permissions` and `scopes`, read from the [`Identity`] the auth
//! stack put in the HTTP request; `echo` returns its `text`.

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{json, Map, Value};
use tower_mcp_auth::Identity;

/// The MCP server: two tools, written against rmcp's `ServerHandler` directly.
#[derive(Clone)]
pub struct Tools;

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

/// The streamable HTTP service of [`Tools`], for `POST /mcp`.
///
/// rmcp refuses `Host` headers it does not know (DNS rebinding protection): allow the
/// loopback names, the bound address and the public URL's authority.
pub fn service(
    base: &str,
    bound: std::net::SocketAddr,
) -> Result<StreamableHttpService<Tools, LocalSessionManager>, String> {
    let public_authority: http::Uri = base
        .parse()
        .map_err(|e| format!("PUBLIC_BASE_URL {base:?}: {e}"))?;
    let mut hosts = vec!["localhost".to_owned(), "127.0.0.1".into(), "::1".into()];
    hosts.push(bound.to_string());
    if let Some(authority) = public_authority.authority() {
        hosts.push(authority.to_string());
    }
    Ok(StreamableHttpService::new(
        || Ok(Tools),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default().with_allowed_hosts(hosts),
    ))
}
