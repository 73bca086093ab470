//! `src/mcp/jsonrpc.rs` and `src/mcp/rules.rs`: the JSON-RPC body parser, tool / prompt /
//! resource name extraction, and the permission check on what was extracted.
//!
//! Input: a raw request body (no framing, so any JSON file is a seed).
//!
//! Invariants beyond "no panic":
//! - refusals carry -32700 (not JSON) or -32600 (not a JSON-RPC message);
//! - an accepted body round-trips: re-serializing what was extracted parses to the same;
//! - the extraction agrees with a plain `serde_json::Value` reading of the same body
//!   (method, id, and the `name` / `uri` the permission is derived from), so the layer never
//!   authorizes one tool while the server, reading the JSON normally, runs another;
//! - permissions: `*` allows everything; holding the derived permission allows it; a
//!   near-miss (the permission plus a suffix) does not; adding permissions never takes any away.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};
use tower_mcp_auth::__fuzz::{self as f, Call, Rules};

fn rules() -> &'static (Rules, Rules) {
    static R: OnceLock<(Rules, Rules)> = OnceLock::new();
    R.get_or_init(|| {
        let defaults = f::mcp_rules(&[], &[], 1 << 20).unwrap();
        let custom = f::mcp_rules(
            &["tools/list".to_owned(), "prompts/*".to_owned()],
            &[
                ("tools/call:admin_*".to_owned(), vec!["admin".to_owned()]),
                (
                    "resources/read".to_owned(),
                    vec!["docs".to_owned(), "mfa".to_owned()],
                ),
            ],
            1 << 20,
        )
        .unwrap();
        (defaults, custom)
    })
}

fn reserialize(calls: &[Call], batch: bool) -> Vec<u8> {
    let one = |c: &Call| {
        let mut m = Map::new();
        m.insert("jsonrpc".into(), json!("2.0"));
        if let Some(method) = &c.method {
            m.insert("method".into(), json!(method));
            if let (Some(field), Some(target)) = (f::jsonrpc_target_field(method), &c.target) {
                m.insert("params".into(), json!({ field: target }));
            }
        }
        if let Some(id) = &c.id {
            m.insert("id".into(), id.clone());
        }
        Value::Object(m)
    };
    let value = if batch {
        Value::Array(calls.iter().map(one).collect())
    } else {
        one(&calls[0])
    };
    serde_json::to_vec(&value).unwrap()
}

/// What a server that reads the body as plain JSON sees in one message.
fn plain(message: &Value) -> Call {
    let obj = message
        .as_object()
        .expect("an accepted message is an object");
    let method = obj.get("method").and_then(Value::as_str).map(str::to_owned);
    let id = obj.get("id").cloned();
    let target = method
        .as_deref()
        .and_then(f::jsonrpc_target_field)
        .and_then(|field| obj.get("params")?.as_object()?.get(field)?.as_str())
        .map(str::to_owned);
    Call { method, id, target }
}

fuzz_target!(|data: &[u8]| {
    let parsed = match f::jsonrpc_parse(data) {
        Ok(p) => p,
        Err(code) => {
            assert!(
                code == f::PARSE_ERROR_CODE || code == f::INVALID_REQUEST_CODE,
                "{code}"
            );
            return;
        }
    };
    assert!(parsed.batch || parsed.calls.len() == 1);

    // Round trip.
    // serde_json (without `float_roundtrip`) may print a float id that reads back one ulp
    // off; ids that are not integers are compared by the differential check below instead.
    let exact_ids = parsed
        .calls
        .iter()
        .all(|c| c.id.as_ref().is_none_or(|id| !id.is_f64()));
    if exact_ids && (!parsed.calls.is_empty() || parsed.batch) {
        let again = reserialize(&parsed.calls, parsed.batch);
        assert_eq!(
            f::jsonrpc_parse(&again).as_ref(),
            Ok(&parsed),
            "{}",
            String::from_utf8_lossy(&again)
        );
    }

    // Differential against plain serde_json (when it can read the body at all: its default
    // recursion limit and number range are stricter than the skipping parser's).
    if let Ok(value) = serde_json::from_slice::<Value>(data) {
        let messages: Vec<&Value> = match &value {
            Value::Array(items) => {
                assert!(parsed.batch);
                items.iter().collect()
            }
            other => {
                assert!(!parsed.batch);
                vec![other]
            }
        };
        assert_eq!(messages.len(), parsed.calls.len());
        for (m, call) in messages.iter().zip(&parsed.calls) {
            assert_eq!(
                &plain(m),
                call,
                "the layer and a plain JSON reader disagree"
            );
        }
    }

    // Permissions on every request.
    let (defaults, custom) = rules();
    let star = f::identity_with(&["*".to_owned()]);
    let nobody = f::identity_with(&[]);
    for call in &parsed.calls {
        let Some(method) = &call.method else { continue };
        // A resource URI not in canonical form (dot segments, encoded separators) is
        // authorized as the bare method: no `resources/read:<prefix>*` grant may cover it.
        let escapes = call.target.as_deref().is_some_and(|t| {
            f::jsonrpc_target_field(method) == Some("uri") && !f::is_canonical_uri(t)
        });
        if let (true, Some(t)) = (escapes, call.target.as_deref()) {
            let exact = f::identity_with(&[format!("{method}:{t}")]);
            assert!(
                !f::mcp_allows(defaults, &exact, method, Some(t)),
                "a grant of the non-canonical URI {t} authorized it"
            );
        }
        let target = call.target.as_deref().filter(|_| !escapes);
        let permission = match target {
            Some(t) => format!("{method}:{t}"),
            None => method.clone(),
        };
        let public = method == "initialize" || method == "ping";
        for r in [defaults, custom] {
            assert!(
                f::mcp_allows(r, &star, method, target),
                "`*` refused {permission}"
            );
        }
        assert_eq!(
            f::mcp_allows(defaults, &nobody, method, target),
            public,
            "{permission}"
        );
        let holder = f::identity_with(std::slice::from_ref(&permission));
        assert!(
            f::mcp_allows(defaults, &holder, method, target),
            "{permission}"
        );
        if !public && !permission.ends_with('*') {
            let near = f::identity_with(&[format!("{permission}x")]);
            assert!(
                !f::mcp_allows(defaults, &near, method, target),
                "{permission}x granted {permission}"
            );
        }
        // Monotonic: more permissions never refuse what fewer allowed.
        let few = ["tools/call:search_*".to_owned(), "admin".to_owned()];
        let more = [
            few[0].clone(),
            few[1].clone(),
            "docs".to_owned(),
            permission.clone(),
        ];
        for r in [defaults, custom] {
            if f::mcp_allows(r, &f::identity_with(&few), method, target) {
                assert!(f::mcp_allows(r, &f::identity_with(&more), method, target));
            }
        }
    }
});
