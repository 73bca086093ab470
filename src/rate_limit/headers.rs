//! `RateLimit-*` headers (IETF draft `ratelimit-headers`, the widely deployed separate-field
//! form).

use std::cell::RefCell;
use std::sync::OnceLock;

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
/// remembered per thread and shared: one formatting per thread and limit, then a reference
/// count.
fn limit(limit: u32) -> HeaderValue {
    if u64::from(limit) < SMALL {
        return number(u64::from(limit));
    }
    thread_local! {
        static LAST: RefCell<Option<(u32, HeaderValue)>> = const { RefCell::new(None) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        match &*last {
            Some((n, value)) if *n == limit => value.clone(),
            _ => {
                let value = number(u64::from(limit));
                *last = Some((limit, value.clone()));
                value
            }
        }
    })
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
}
