//! `tools/list` filtering: dropping the tools an identity may not call from the responses to
//! its `tools/list` requests.
//!
//! The filter knows the ids of the `tools/list` requests in the body it let through, and
//! rewrites only the responses with those ids (a response carries its request's id), so
//! nothing else the server says is ever touched.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

use crate::identity::Identity;

use super::layer::McpConfig;

/// What [`ToolsFilter::apply`] did to one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Applied {
    /// Not a response to a pending `tools/list`.
    NoMatch,
    /// A response to one, left as is (an error, or every tool allowed).
    Unchanged,
    /// Tools were removed.
    Rewritten,
    /// A response to a request already answered with an error (its list could not be
    /// filtered): it must not reach the client.
    Drop,
}

impl Applied {
    fn max(self, other: Applied) -> Applied {
        match (self, other) {
            (Applied::Drop, _) | (_, Applied::Drop) => Applied::Drop,
            (Applied::Rewritten, _) | (_, Applied::Rewritten) => Applied::Rewritten,
            (Applied::Unchanged, _) | (_, Applied::Unchanged) => Applied::Unchanged,
            _ => Applied::NoMatch,
        }
    }
}

/// The pending `tools/list` requests of one HTTP request, and who made them.
pub(crate) struct ToolsFilter {
    ids: Vec<Value>,
    /// Ids already answered with a "cannot filter" error: a later answer is dropped.
    refused: Vec<Value>,
    identity: Identity,
    config: Arc<McpConfig>,
}

impl ToolsFilter {
    pub(crate) fn new(ids: Vec<Value>, identity: Identity, config: Arc<McpConfig>) -> Self {
        Self {
            ids,
            refused: Vec::new(),
            identity,
            config,
        }
    }

    /// Whether responses are still expected (or must still be watched for and dropped).
    pub(crate) fn is_pending(&self) -> bool {
        !self.ids.is_empty() || !self.refused.is_empty()
    }

    /// The largest body or event that is buffered for filtering.
    pub(crate) fn max_bytes(&self) -> usize {
        self.config.max_response_bytes
    }

    /// The ids still waiting for a response (for error replies when filtering fails).
    /// They count as refused from now on: their real answers, if they come, are dropped.
    pub(crate) fn take_pending(&mut self) -> Vec<Value> {
        let ids = std::mem::take(&mut self.ids);
        self.refused.extend(ids.iter().cloned());
        ids
    }

    /// Filters a JSON-RPC message or batch in place.
    pub(crate) fn apply(&mut self, message: &mut Value) -> Applied {
        match message {
            Value::Array(items) => {
                let mut applied = Applied::NoMatch;
                items.retain_mut(|m| match self.apply_one(m) {
                    Applied::Drop => {
                        applied = applied.max(Applied::Rewritten);
                        false
                    }
                    one => {
                        applied = applied.max(one);
                        true
                    }
                });
                applied
            }
            _ => self.apply_one(message),
        }
    }

    fn apply_one(&mut self, message: &mut Value) -> Applied {
        let Some(object) = message.as_object_mut() else {
            return Applied::NoMatch;
        };
        let id = object.get("id");
        if id.is_some_and(|id| self.refused.contains(id)) {
            return Applied::Drop;
        }
        let Some(pos) = id.and_then(|id| self.ids.iter().position(|pending| pending == id)) else {
            return Applied::NoMatch;
        };
        self.ids.swap_remove(pos);
        let Some(tools) = object
            .get_mut("result")
            .and_then(|r| r.get_mut("tools"))
            .and_then(Value::as_array_mut)
        else {
            return Applied::Unchanged;
        };
        let before = tools.len();
        let (rules, identity) = (&self.config.rules, &self.identity);
        // A tool without a string name cannot be authorized: it is dropped too.
        tools.retain(|tool| {
            tool.get("name")
                .and_then(Value::as_str)
                .is_some_and(|name| rules.check(identity, "tools/call", Some(name)).is_ok())
        });
        if before > 0 && tools.is_empty() {
            static EXPLAINED: AtomicBool = AtomicBool::new(false);
            explain_empty_list(&EXPLAINED, identity);
        }
        if tools.len() == before {
            Applied::Unchanged
        } else {
            Applied::Rewritten
        }
    }

    /// Filters a whole `application/json` response body; `None` when it cannot be read as
    /// JSON here (not JSON, or nested deeper than serde_json's recursion limit): a client
    /// with another parser may still read it, so it is never passed on unfiltered.
    pub(crate) fn apply_to_json(&mut self, body: Bytes) -> Option<Bytes> {
        let mut message = serde_json::from_slice::<Value>(&body).ok()?;
        if self.apply(&mut message) != Applied::Rewritten {
            return Some(body);
        }
        // Serializing a `Value` does not fail; never fall back to the unfiltered body.
        serde_json::to_vec(&message).ok().map(Bytes::from)
    }
}

/// Says once (per `flag`) why a caller was shown an empty tool list: the usual cause is a
/// token whose scopes grant no `tools/call:<tool>` because no scope map says what they mean.
/// Logs counts and scope names only, never claims or credentials.
fn explain_empty_list(flag: &AtomicBool, identity: &Identity) {
    if flag.swap(true, Ordering::Relaxed) {
        return;
    }
    tracing::warn!(
        method = %identity.method(),
        permissions = identity.permissions().len(),
        scopes = ?identity.scopes(),
        "tools/list: every tool was hidden from this caller, whose permissions allow no \
         `tools/call:<tool>`. Token scopes grant only what a ScopeMap maps them to (plus a \
         literal `tools/call` or `tools/call:<tool>`): map the identity provider's scopes \
         (MCP_SCOPE_PERMISSIONS in the examples), or leave per-tool filtering off. Logged once."
    );
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::identity::AuthMethod;
    use crate::mcp::McpRules;
    use serde_json::json;

    pub(crate) fn filter(ids: Vec<Value>, perms: &[&str]) -> ToolsFilter {
        filter_max(ids, perms, None)
    }

    pub(crate) fn filter_max(ids: Vec<Value>, perms: &[&str], max: Option<usize>) -> ToolsFilter {
        let mut rules = McpRules::new().rule("tools/call:admin_*", ["admin"]);
        if let Some(max) = max {
            rules = rules.max_response_bytes(max);
        }
        let config = rules.build().unwrap().config();
        let identity = Identity::builder(AuthMethod::ApiKey, "k")
            .permissions(perms.iter().copied())
            .build();
        ToolsFilter::new(ids, identity, config)
    }

    pub(crate) fn tools_result(id: Value) -> Value {
        json!({"jsonrpc": "2.0", "id": id, "result": {"tools": [
            {"name": "search_docs", "inputSchema": {}},
            {"name": "admin_reset", "inputSchema": {}},
            {"name": "echo", "inputSchema": {}},
            {"inputSchema": {}},
        ], "nextCursor": "c"}})
    }

    fn names(message: &Value) -> Vec<&str> {
        message["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap_or(""))
            .collect()
    }

    #[test]
    fn keeps_only_callable_tools() {
        let mut f = filter(vec![json!(1)], &["tools/call:search_*", "admin"]);
        let mut m = tools_result(json!(1));
        assert_eq!(f.apply(&mut m), Applied::Rewritten);
        assert_eq!(names(&m), ["search_docs", "admin_reset"]);
        assert_eq!(m["result"]["nextCursor"], "c");
        assert!(!f.is_pending());
        // The id was consumed: a second response with it is not touched.
        let mut again = tools_result(json!(1));
        assert_eq!(f.apply(&mut again), Applied::NoMatch);
    }

    #[test]
    fn only_pending_ids_are_touched() {
        let mut f = filter(vec![json!("a")], &[]);
        let mut other = tools_result(json!(1));
        assert_eq!(f.apply(&mut other), Applied::NoMatch);
        assert_eq!(names(&other).len(), 4);
        let mut err = json!({"jsonrpc": "2.0", "id": "a", "error": {"code": 1, "message": "x"}});
        assert_eq!(f.apply(&mut err), Applied::Unchanged);
    }

    #[test]
    fn batches_and_json_bodies() {
        let mut f = filter(vec![json!(1), json!(2)], &["*"]);
        let mut batch = json!([tools_result(json!(1)), {"jsonrpc": "2.0", "id": 3, "result": {}}]);
        // `*` may call every named tool; the nameless one is still dropped.
        assert_eq!(f.apply(&mut batch), Applied::Rewritten);
        assert_eq!(names(&batch[0]), ["search_docs", "admin_reset", "echo"]);
        assert!(f.is_pending());

        let mut f = filter(vec![json!(1)], &["tools/call:echo"]);
        let body = Bytes::from(tools_result(json!(1)).to_string());
        let out: Value = serde_json::from_slice(&f.apply_to_json(body).unwrap()).unwrap();
        assert_eq!(names(&out), ["echo"]);
        // Fail closed: what cannot be parsed here is not passed on.
        let junk = Bytes::from_static(b"not json");
        assert_eq!(f.apply_to_json(junk), None);
    }

    #[test]
    fn an_emptied_list_is_explained_once() {
        use std::io::Write;
        use std::sync::Mutex;

        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let token = Identity::builder(AuthMethod::Bearer, "t")
            .scopes(["openid", "mcp:tools"])
            .build();
        let flag = AtomicBool::new(false);
        tracing::subscriber::with_default(subscriber, || {
            explain_empty_list(&flag, &token);
            explain_empty_list(&flag, &token);
        });
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(out.matches("every tool was hidden").count(), 1, "{out}");
        assert!(
            out.contains("ScopeMap") && out.contains("mcp:tools"),
            "{out}"
        );
    }
}
