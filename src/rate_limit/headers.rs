//! `RateLimit-*` headers (IETF draft `ratelimit-headers`, the widely deployed separate-field
//! form).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};

use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;

use crate::store::RateDecision;

/// Adds `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` (whole seconds until
/// the bucket is full again, rounded up).
pub(crate) fn insert_rate_limit_headers(headers: &mut HeaderMap, decision: &RateDecision) {
    // Parsed once at compile time, not on every response.
    const LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
    const REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
    const RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
    let reset = decision.reset_after;
    let reset_secs = reset.as_secs() + u64::from(reset.subsec_nanos() > 0);
    headers.reserve(3);
    headers.insert(LIMIT, limit(decision.limit));
    headers.insert(REMAINING, number(u64::from(decision.remaining)));
    headers.insert(RESET, number(reset_secs));
}

/// `limit` as a header value. A quota's limit is the same on every response, so a large one
/// (at least [`SMALL`], which would otherwise be formatted and allocated each time) is
/// formatted once into a string that lives as long as the process and then served like the
/// small ones: no allocation, and no reference count to bump and drop per response (a
/// shared value costs two atomic operations per response). Limits come from configuration
/// (a quota, or a per-identity `quota_for`), so only [`MAX_LEAKED`] distinct ones are kept;
/// past that, a limit is formatted per response as before.
fn limit(limit: u32) -> HeaderValue {
    if u64::from(limit) < SMALL {
        return number(u64::from(limit));
    }
    // The last few limits this thread served: one quota, or a handful of per-identity ones,
    // are found here without touching the process-wide table.
    thread_local! {
        static RECENT_LIMITS: RefCell<[(u32, &'static str); RECENT]> =
            const { RefCell::new([(0, ""); RECENT]) };
    }
    let hit = RECENT_LIMITS.with(|recent| {
        let recent = recent.borrow();
        recent.iter().find(|(n, _)| *n == limit).map(|(_, s)| *s)
    });
    if let Some(digits) = hit {
        return HeaderValue::from_static(digits);
    }
    match leaked(limit) {
        Some(digits) => {
            RECENT_LIMITS.with(|recent| {
                let mut recent = recent.borrow_mut();
                recent.rotate_right(1);
                recent[0] = (limit, digits);
            });
            HeaderValue::from_static(digits)
        }
        None => number(u64::from(limit)),
    }
}

/// Limits a thread remembers without asking the process-wide table.
const RECENT: usize = 4;

/// Distinct large limits formatted for the life of the process (a few bytes each).
const MAX_LEAKED: usize = 1024;

/// The decimal form of `limit`, kept for the life of the process, or `None` when
/// [`MAX_LEAKED`] other limits already are. Only a thread's first sight of a limit (or one
/// it has not served among its last [`RECENT`]) takes this lock.
fn leaked(limit: u32) -> Option<&'static str> {
    static TABLE: OnceLock<Mutex<HashMap<u32, &'static str>>> = OnceLock::new();
    let mut table = TABLE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(digits) = table.get(&limit) {
        return Some(digits);
    }
    if table.len() >= MAX_LEAKED {
        return None;
    }
    let digits: &'static str = Box::leak(limit.to_string().into_boxed_str());
    table.insert(limit, digits);
    Some(digits)
}

/// Numbers below this are served from one shared string, without an allocation.
const SMALL: u64 = 10_000;

/// `n` as a header value. A header value owns its bytes, so a computed one is an allocation
/// per header per response; the numbers quotas deal in are mostly small, and those are
/// slices of one string built once.
fn number(n: u64) -> HeaderValue {
    if n >= SMALL {
        return HeaderValue::from(n);
    }
    // The decimal forms of 0..SMALL, concatenated: "0123456789101112…9999".
    static DIGITS: OnceLock<String> = OnceLock::new();
    let all = DIGITS.get_or_init(|| (0..SMALL).map(|i| i.to_string()).collect());
    let (start, len) = match n {
        0..=9 => (n, 1),
        10..=99 => (10 + (n - 10) * 2, 2),
        100..=999 => (190 + (n - 100) * 3, 3),
        _ => (2890 + (n - 1000) * 4, 4),
    };
    let (start, len) = (start as usize, len as usize);
    match all.get(start..start + len) {
        Some(digits) => HeaderValue::from_static(digits),
        None => HeaderValue::from(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_number_reads_as_itself() {
        for n in (0..12_000).chain([u64::from(u32::MAX), u64::MAX]) {
            assert_eq!(number(n).to_str().unwrap(), n.to_string());
        }
    }

    #[test]
    fn every_limit_reads_as_itself_whatever_came_before() {
        for n in [
            5,
            1_000_000,
            1_000_000,
            20_000,
            u32::MAX,
            9_999,
            10_000,
            1_000_000,
        ] {
            assert_eq!(limit(n).to_str().unwrap(), n.to_string());
        }
    }

    #[test]
    fn limits_past_the_table_are_still_formatted() {
        // Enough distinct limits to fill the table and the thread's recent list many times.
        for n in (0..MAX_LEAKED as u32 + 50).map(|i| 3_000_000 + i * 7) {
            assert_eq!(limit(n).to_str().unwrap(), n.to_string());
            assert_eq!(
                limit(n).to_str().unwrap(),
                n.to_string(),
                "served again: {n}"
            );
        }
    }
}
