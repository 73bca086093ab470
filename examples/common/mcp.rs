//! A tiny MCP-style JSON-RPC handler for the examples (the `rmcp_server` example uses the
//! official SDK instead). It answers `initialize`, `tools/list` and `tools/call` for a
//! `whoami` tool, so the effect of each auth mode is visible in the reply.

use axum::extract::Extension;
use axum::Json;
use serde_json::{json, Value};
use tower_mcp_auth::Identity;

/// Handles one JSON-RPC request (or notification) posted to the MCP endpoint.
pub async fn handle(identity: Option<Extension<Identity>>, Json(req): Json<Value>) -> Json<Value> {
    let caller = match &identity {
        Some(Extension(id)) => json!({
            "method": id.method().as_str(),
            "name": id.name(),
            "user_id": id.user_id(),
            "role": id.role(),
            "issuer": id.issuer(),
            "permissions": id.permissions(),
            "scopes": id.scopes(),
        }),
        None => json!({"method": null}),
    };
    let id = req.get("id").cloned().unwrap_or(Value::Null);
    let result = match req.get("method").and_then(Value::as_str) {
        Some("initialize") => json!({
            "protocolVersion": "2025-06-18",
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "tower-mcp-auth-example", "version": env!("CARGO_PKG_VERSION")}
        }),
        Some("tools/list") => json!({"tools": [{
            "name": "whoami",
            "description": "Who the server thinks you are",
            "inputSchema": {"type": "object", "properties": {}}
        }]}),
        Some("tools/call") => json!({"content": [{"type": "text", "text": caller.to_string()}]}),
        Some(other) => {
            return Json(json!({"jsonrpc": "2.0", "id": id,
                "error": {"code": -32601, "message": format!("method not found: {other}")}}))
        }
        None => {
            return Json(json!({"jsonrpc": "2.0", "id": id,
                "error": {"code": -32600, "message": "invalid request"}}))
        }
    };
    Json(json!({"jsonrpc": "2.0", "id": id, "result": result, "caller": caller}))
}
