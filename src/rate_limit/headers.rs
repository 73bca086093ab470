//! `RateLimit-*` headers (IETF draft `ratelimit-headers`, the widely deployed separate-field
//! form).

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
    headers.insert(LIMIT, HeaderValue::from(decision.limit));
    headers.insert(REMAINING, HeaderValue::from(decision.remaining));
    headers.insert(RESET, HeaderValue::from(reset_secs));
}
