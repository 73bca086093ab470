//! `RateLimit-*` headers (IETF draft `ratelimit-headers`, the widely deployed separate-field
//! form).

use http::header::HeaderValue;
use http::HeaderMap;

use crate::store::RateDecision;

/// Adds `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` (whole seconds until
/// the bucket is full again, rounded up).
pub(crate) fn insert_rate_limit_headers(headers: &mut HeaderMap, decision: &RateDecision) {
    let reset = decision.reset_after;
    let reset_secs = reset.as_secs() + u64::from(reset.subsec_nanos() > 0);
    headers.insert("ratelimit-limit", HeaderValue::from(decision.limit));
    headers.insert("ratelimit-remaining", HeaderValue::from(decision.remaining));
    headers.insert("ratelimit-reset", HeaderValue::from(reset_secs));
}
