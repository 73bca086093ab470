//! Rewriting `tools/list` responses inside a `text/event-stream` body (MCP streamable HTTP).
//!
//! Bytes are held only until the event they belong to is complete (a blank line ends an
//! event), so notifications and progress still stream through as they come. Once every
//! pending `tools/list` has been answered, chunks pass through without copying.

use bytes::{Bytes, BytesMut};
use serde_json::Value;

use super::filter::{Applied, ToolsFilter};
use super::jsonrpc::{error_envelope, to_json, INTERNAL_ERROR_CODE};

pub(crate) struct SseRewriter {
    filter: ToolsFilter,
    /// Bytes of the current, incomplete event.
    pending: BytesMut,
    /// How far `pending` has been scanned for line ends.
    scanned: usize,
    /// Skipping the rest of an event that outgrew the limit.
    discarding: bool,
}

impl SseRewriter {
    pub(crate) fn new(filter: ToolsFilter) -> Self {
        Self {
            filter,
            pending: BytesMut::new(),
            scanned: 0,
            discarding: false,
        }
    }

    /// Feeds one chunk; returns what can be sent on (possibly nothing yet).
    pub(crate) fn push(&mut self, chunk: Bytes) -> Bytes {
        if self.pending.is_empty() && !self.discarding && !self.filter.is_pending() {
            return chunk;
        }
        self.pending.extend_from_slice(&chunk);
        self.drain(false)
    }

    /// The body ended: flushes what is left (an unterminated event is filtered too).
    pub(crate) fn finish(&mut self) -> Bytes {
        self.drain(true)
    }

    fn drain(&mut self, eof: bool) -> Bytes {
        let mut out = BytesMut::new();
        loop {
            if !self.filter.is_pending() && !self.discarding {
                out.extend_from_slice(&self.pending.split());
                self.scanned = 0;
                break;
            }
            match self.next_event_end(eof) {
                Some(end) => {
                    let event = self.pending.split_to(end).freeze();
                    self.scanned = 0;
                    if std::mem::take(&mut self.discarding) {
                        continue;
                    }
                    if event.len() > self.filter.max_bytes() {
                        // Same verdict as when the event arrives in pieces.
                        self.answer_pending_with_errors(&mut out);
                        continue;
                    }
                    out.extend_from_slice(&self.rewrite(event));
                }
                None if eof => {
                    let rest = self.pending.split().freeze();
                    self.scanned = 0;
                    if !rest.is_empty() && !std::mem::take(&mut self.discarding) {
                        if rest.len() > self.filter.max_bytes() {
                            self.answer_pending_with_errors(&mut out);
                        } else {
                            out.extend_from_slice(&self.rewrite(rest));
                        }
                    }
                    break;
                }
                None => {
                    if self.pending.len() > self.filter.max_bytes() {
                        self.overflow(&mut out);
                    }
                    break;
                }
            }
        }
        out.freeze()
    }

    /// An event too large to buffer: it may be the `tools/list` response, so it is dropped,
    /// and every pending request gets a JSON-RPC error instead of an unfiltered list.
    fn overflow(&mut self, out: &mut BytesMut) {
        if !self.discarding {
            self.discarding = true;
            self.answer_pending_with_errors(out);
        }
        // Only the end of this event matters now. `next_event_end` left `scanned` at the
        // start of the incomplete last line; keep a stand-in for that line's text so its
        // line end is not taken for the blank line that ends the event, and a trailing
        // `\r`, which may be half of a `\r\n`.
        let rest = &self.pending[self.scanned.min(self.pending.len())..];
        let mid_line = rest.iter().any(|&b| b != b'\r');
        let trailing_cr = rest.last() == Some(&b'\r');
        self.pending.clear();
        if mid_line {
            self.pending.extend_from_slice(b"x");
        }
        if trailing_cr {
            self.pending.extend_from_slice(b"\r");
        }
        self.scanned = 0;
    }

    fn answer_pending_with_errors(&mut self, out: &mut BytesMut) {
        self.answer_pending_with(out, "The tools/list response is too large to filter");
    }

    fn answer_pending_with(&mut self, out: &mut BytesMut, reason: &str) {
        tracing::warn!(
            limit = self.filter.max_bytes(),
            reason,
            "event-stream event cannot be filtered; answering tools/list with an error"
        );
        let data = serde_json::json!({
            "error": "server_error",
            "error_description": reason,
        });
        for id in self.filter.take_pending() {
            let message = error_envelope(id, INTERNAL_ERROR_CODE, "Internal error", data.clone());
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(&to_json(&message));
            out.extend_from_slice(b"\n\n");
        }
    }

    /// The end (exclusive) of the first complete event in `pending`: the end of its first
    /// empty line. Lines end with `\r\n`, `\n` or `\r`.
    fn next_event_end(&mut self, eof: bool) -> Option<usize> {
        let buf = &self.pending[..];
        let mut line_start = self.scanned;
        let mut i = self.scanned;
        while i < buf.len() {
            let terminator = match buf[i] {
                b'\n' => 1,
                b'\r' if i + 1 < buf.len() => 1 + usize::from(buf[i + 1] == b'\n'),
                // A `\r` at the end may be the first half of `\r\n`: wait for more.
                b'\r' if !eof => break,
                b'\r' => 1,
                _ => {
                    i += 1;
                    continue;
                }
            };
            let next = i + terminator;
            if i == line_start {
                return Some(next);
            }
            line_start = next;
            i = next;
        }
        // Rescan from the start of the incomplete line next time.
        self.scanned = line_start;
        None
    }

    /// Rewrites one event if it answers a pending `tools/list`; otherwise returns it as is.
    fn rewrite(&mut self, event: Bytes) -> Bytes {
        // Clients decode event streams as UTF-8 with replacement characters (the SSE
        // standard), so an invalid byte must not make an event unfilterable: read it as they
        // do. Valid events (all but a hostile or broken server's) are borrowed.
        let text = String::from_utf8_lossy(&event);
        let mut data: Option<String> = None;
        let mut others: Vec<&str> = Vec::new();
        for line in text
            .split_terminator(['\n', '\r'])
            .filter(|l| !l.is_empty())
        {
            let (field, value) = match line.split_once(':') {
                Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
                None => (line, ""),
            };
            if field == "data" {
                let data = data.get_or_insert_with(String::new);
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(value);
            } else {
                others.push(line);
            }
        }
        let Some(data) = data else { return event };
        if data.trim().is_empty() {
            // A priming event (`data:` with nothing): no message in it.
            return event;
        }
        let Ok(mut message) = serde_json::from_str::<Value>(&data) else {
            // Not readable here (not JSON, or nested past serde_json's recursion limit), yet
            // a client may read it: it could be the list, so it is dropped and every pending
            // request answered with an error instead.
            let mut out = BytesMut::new();
            self.answer_pending_with(
                &mut out,
                "The tools/list response cannot be parsed to filter",
            );
            return out.freeze();
        };
        match self.filter.apply(&mut message) {
            Applied::Rewritten => {}
            Applied::Drop => return Bytes::new(),
            Applied::NoMatch | Applied::Unchanged => return event,
        }
        let mut out = String::with_capacity(event.len());
        for line in others {
            out.push_str(line);
            out.push('\n');
        }
        out.push_str("data: ");
        out.push_str(&message.to_string());
        out.push_str("\n\n");
        Bytes::from(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::filter::tests::{filter_max, tools_result};
    use serde_json::json;

    fn event(id: u64) -> String {
        format!(
            "id: 0/{id}\nevent: message\ndata: {}\n\n",
            tools_result(json!(id))
        )
    }

    fn run(chunks: &[&[u8]], ids: Vec<Value>, max: Option<usize>) -> String {
        let mut r = SseRewriter::new(filter_max(ids, &["tools/call:echo"], max));
        let mut out = Vec::new();
        for c in chunks {
            out.extend_from_slice(&r.push(Bytes::copy_from_slice(c)));
        }
        out.extend_from_slice(&r.finish());
        String::from_utf8(out).unwrap()
    }

    /// Splits JSON before a `,"`, where the newline that joins data lines is whitespace.
    fn split_between_members(json: &str) -> (&str, &str) {
        let at = json[json.len() / 2..].find(",\"").unwrap() + json.len() / 2;
        json.split_at(at)
    }

    fn tools_in(out: &str) -> Vec<Vec<String>> {
        out.lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .filter_map(|m| {
                m["result"]["tools"].as_array().map(|t| {
                    t.iter()
                        .map(|t| t["name"].as_str().unwrap_or("").to_owned())
                        .collect()
                })
            })
            .collect()
    }

    #[test]
    fn rewrites_the_response_event_in_any_chunking() {
        let stream = format!(": ping\n\nid: 0/0\nretry: 3000\ndata: \n\n{}", event(1));
        let whole = run(&[stream.as_bytes()], vec![json!(1)], None);
        assert_eq!(tools_in(&whole), [["echo"]]);
        assert!(whole
            .starts_with(": ping\n\nid: 0/0\nretry: 3000\ndata: \n\nid: 0/1\nevent: message\n"));
        // Byte by byte gives the same output.
        let bytes: Vec<&[u8]> = stream.as_bytes().chunks(1).collect();
        assert_eq!(run(&bytes, vec![json!(1)], None), whole);
    }

    #[test]
    fn crlf_and_cr_line_ends_and_multi_line_data() {
        let json = tools_result(json!(7)).to_string();
        let (a, b) = split_between_members(&json);
        for stream in [
            format!("data: {a}\r\ndata:{b}\r\n\r\n"),
            format!("data: {a}\rdata:{b}\r\r"),
        ] {
            let bytes: Vec<&[u8]> = stream.as_bytes().chunks(3).collect();
            let out = run(&bytes, vec![json!(7)], None);
            // Joining data lines inserts a newline inside the JSON, which is whitespace.
            assert_eq!(tools_in(&out), [["echo"]], "{stream:?}");
        }
    }

    #[test]
    fn other_events_and_later_chunks_pass_untouched() {
        let note = "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n";
        let after = format!("{}{}", note, event(9));
        let stream = format!("{note}{}{after}", event(1));
        let out = run(&[stream.as_bytes()], vec![json!(1)], None);
        assert!(out.starts_with(note));
        // After the one pending response, even another tools list goes through unchanged.
        assert!(out.ends_with(&after));
        assert_eq!(tools_in(&out).len(), 2);
        assert_eq!(tools_in(&out)[0], ["echo"]);
    }

    #[test]
    fn unterminated_final_event_is_filtered_too() {
        let stream = format!("data: {}", tools_result(json!(1)));
        assert_eq!(
            tools_in(&run(&[stream.as_bytes()], vec![json!(1)], None)),
            [["echo"]]
        );
    }

    #[test]
    fn oversized_event_becomes_an_error_for_pending_ids() {
        // A multi-line event, cut at every chunk size: nothing of it may leak, and the
        // stream resumes exactly after it.
        let json = tools_result(json!(1)).to_string();
        let (a, b) = split_between_members(&json);
        for sep in ["\n", "\r\n", "\r"] {
            let stream = format!("data: {a}{sep}data: {b}{sep}{sep}: after{sep}{sep}");
            for size in [1, 2, 3, 7, 16, 64, 1000] {
                let bytes: Vec<&[u8]> = stream.as_bytes().chunks(size).collect();
                let out = run(&bytes, vec![json!(1)], Some(40));
                assert!(!out.contains("search"), "{sep:?} {size}: {out}");
                assert!(out.contains("\"id\":1"), "{out}");
                assert!(out.contains("too large"));
                assert!(
                    out.ends_with(&format!(": after{sep}{sep}")),
                    "{sep:?} {size}: {out:?}"
                );
            }
        }
    }

    #[test]
    fn arbitrary_bytes_in_any_chunking_never_panic() {
        // A small xorshift generator: deterministic, no extra dependency.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet: &[u8] = b"data: {}[]\"id\":1,\r\n\n\r:\xff";
        for _ in 0..2000 {
            let len = (next() % 200) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let mut r = SseRewriter::new(filter_max(
                vec![json!(1)],
                &[],
                Some(1 + (next() % 64) as usize),
            ));
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                let n = 1 + (next() % 16) as usize;
                let (chunk, tail) = rest.split_at(n.min(rest.len()));
                let _ = r.push(Bytes::copy_from_slice(chunk));
                rest = tail;
            }
            let _ = r.finish();
            let _ = crate::mcp::jsonrpc::parse(&bytes);
        }
    }
}
