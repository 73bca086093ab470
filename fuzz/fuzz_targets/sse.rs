//! `src/mcp/sse.rs` and `src/mcp/filter.rs`: the `tools/list` filter over a
//! `text/event-stream` response (event by event, in any chunking) and over a JSON body.
//!
//! Input: byte 0 picks the pending request ids and the caller's permissions, byte 1 the
//! per-event size limit, byte 2 seeds the chunking; the rest is the response body.
//!
//! Invariants beyond "no panic":
//! - the output does not depend on how the body was cut into chunks;
//! - with nothing pending, the stream passes through byte for byte;
//! - the output re-parses as an event stream (as a client reads it, per the HTML standard)
//!   in which the first response to each pending `tools/list` lists only callable tools;
//! - the same for a JSON body, and filtering a filtered body again changes nothing.
#![no_main]

mod common;

use std::sync::OnceLock;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use tower_mcp_auth::__fuzz::{self as f, Rules, SseRewriter, ToolsFilter};
use tower_mcp_auth::Identity;

const LIMITS: [usize; 4] = [1 << 20, 64, 256, 16];

fn rules(limit: usize) -> Rules {
    static R: OnceLock<Vec<Rules>> = OnceLock::new();
    let all = R.get_or_init(|| {
        LIMITS
            .iter()
            .map(|&max| {
                f::mcp_rules(
                    &[],
                    &[("tools/call:admin_*".to_owned(), vec!["admin".to_owned()])],
                    max,
                )
                .unwrap()
            })
            .collect()
    });
    all[LIMITS.iter().position(|&l| l == limit).unwrap()].clone()
}

fn setup(sel: u8) -> (Vec<Value>, Identity) {
    let ids = match sel % 4 {
        0 => vec![],
        1 => vec![json!(1)],
        2 => vec![json!(1), json!("a")],
        _ => vec![json!(null), json!(2)],
    };
    let perms: &[&str] = match (sel / 4) % 4 {
        0 => &[],
        1 => &["tools/call:echo"],
        2 => &["tools/call:search_*", "admin"],
        _ => &["*"],
    };
    let perms: Vec<String> = perms.iter().map(|p| (*p).to_owned()).collect();
    (ids, f::identity_with(&perms))
}

/// Events as a client dispatches them: lines end at CRLF, LF or CR; a blank line dispatches;
/// `data` lines join with LF; the stream is decoded as UTF-8 with replacement; a leading BOM
/// is dropped; an unterminated last event is discarded.
fn client_events(stream: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(stream);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut events = Vec::new();
    let mut data: Option<String> = None;
    let mut rest = text;
    while let Some(end) = rest.find(['\r', '\n']) {
        let line = &rest[..end];
        let skip = if rest[end..].starts_with("\r\n") {
            2
        } else {
            1
        };
        rest = &rest[end + skip..];
        if line.is_empty() {
            if let Some(d) = data.take() {
                events.push(d);
            }
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        if field == "data" {
            let d = data.get_or_insert_with(String::new);
            if !d.is_empty() {
                d.push('\n');
            }
            d.push_str(value);
        }
    }
    events
}

/// Every JSON-RPC message in a data payload (one message or a batch).
fn messages(data: &str) -> Vec<Value> {
    match serde_json::from_str::<Value>(data) {
        Ok(Value::Array(items)) => items,
        Ok(other) => vec![other],
        Err(_) => vec![],
    }
}

/// The first response to each pending id may list only tools the caller may call.
fn assert_no_leak(
    all: impl Iterator<Item = Value>,
    ids: &[Value],
    identity: &Identity,
    rules: &Rules,
) {
    let mut pending: Vec<Value> = ids.to_vec();
    for message in all {
        let Some(obj) = message.as_object() else {
            continue;
        };
        let Some(pos) = obj
            .get("id")
            .and_then(|id| pending.iter().position(|p| p == id))
        else {
            continue;
        };
        pending.swap_remove(pos);
        let Some(tools) = obj
            .get("result")
            .and_then(|r| r.get("tools"))
            .and_then(Value::as_array)
        else {
            continue;
        };
        for tool in tools {
            let name = tool.get("name").and_then(Value::as_str);
            let Some(name) = name else {
                panic!("a nameless tool was listed: {tool}")
            };
            assert!(
                f::mcp_allows(rules, identity, "tools/call", Some(name)),
                "tools/list leaked `{name}`"
            );
        }
    }
}

fn run(ids: &[Value], identity: &Identity, rules: &Rules, chunks: &[&[u8]]) -> Vec<u8> {
    let mut r = SseRewriter::new(ToolsFilter::new(ids.to_vec(), identity.clone(), rules));
    let mut out = Vec::new();
    for c in chunks {
        out.extend_from_slice(&r.push(Bytes::copy_from_slice(c)));
    }
    out.extend_from_slice(&r.finish());
    out
}

fuzz_target!(|data: &[u8]| {
    let [sel, lim, seed, body @ ..] = data else {
        return;
    };
    let (ids, identity) = setup(*sel);
    let rules = rules(LIMITS[usize::from(*lim) % LIMITS.len()]);

    // --- event stream ----------------------------------------------------------------------
    let whole = run(&ids, &identity, &rules, &[body]);
    let mut rng = common::Rng::new(u64::from(*seed) << 8 | u64::from(*lim));
    let mut chunks = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let n = 1 + rng.below(if *seed % 2 == 0 { 4 } else { 64 });
        let (c, t) = rest.split_at(n.min(rest.len()));
        chunks.push(c);
        rest = t;
    }
    let chunked = run(&ids, &identity, &rules, &chunks);
    assert!(
        whole == chunked,
        "chunking changed the output:\n{:?}\nvs\n{:?}",
        String::from_utf8_lossy(&whole),
        String::from_utf8_lossy(&chunked)
    );
    if ids.is_empty() {
        assert_eq!(whole, body, "nothing pending, yet the stream changed");
    }
    // Events that are not valid UTF-8 are checked too: clients read them with replacement
    // characters (tests/it/fuzz_regressions, `sse_event_with_invalid_utf8_is_filtered_too`).
    let events = client_events(&whole);
    assert_no_leak(
        events.iter().flat_map(|e| messages(e)),
        &ids,
        &identity,
        &rules,
    );

    // --- JSON body ---------------------------------------------------------------------------
    let mut filter = ToolsFilter::new(ids.clone(), identity.clone(), &rules);
    let input = Bytes::copy_from_slice(body);
    // `None`: the body is refused (unreadable here), so nothing reaches the client.
    let Some(out) = filter.apply_to_json(input.clone()) else {
        return;
    };
    if out != input {
        let value: Value = serde_json::from_slice(&out).expect("a rewritten body is JSON");
        let all = match value {
            Value::Array(items) => items,
            other => vec![other],
        };
        assert_no_leak(all.into_iter(), &ids, &identity, &rules);
        let mut again = ToolsFilter::new(ids.clone(), identity.clone(), &rules);
        assert_eq!(
            again.apply_to_json(out.clone()),
            Some(out),
            "filtering is not idempotent"
        );
    } else if let Ok(value) = serde_json::from_slice::<Value>(body) {
        let all = match value {
            Value::Array(items) => items,
            other => vec![other],
        };
        assert_no_leak(all.into_iter(), &ids, &identity, &rules);
    }
});
