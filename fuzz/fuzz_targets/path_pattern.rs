//! `src/policy/pattern.rs`: axum-style path patterns and matching request paths to them.
//!
//! Input: the first line is the pattern, every further line a request path (also used as
//! the text substituted for `{param}` / `{*rest}` when building paths the pattern must match).
//!
//! Invariants beyond "no panic":
//! - a pattern parses only when it starts with `/`, and keeps its source text;
//! - a pattern without parameters matches exactly itself;
//! - a path built from the pattern (each `{param}` replaced by a non-empty segment,
//!   `{*rest}` by anything) matches it, and a matched path is never widened: with a trailing
//!   `/` added it no longer matches (unless the pattern ends in `{*rest}`);
//! - a matching path starts with `/` and has the pattern's literal segments in place;
//! - path canonicalization (`src/policy/canonical.rs`) on every path line: idempotent, and a
//!   canonical path has no encoded `/`, `.` or `\\` and no dot segments.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_mcp_auth::__fuzz as f;

fn check_canonical(raw: &str) {
    if !f::HAS_CANONICAL_PATH {
        return;
    }
    if let Some(canonical) = f::canonical_path(raw) {
        assert_eq!(
            f::canonical_path(&canonical).as_deref(),
            Some(canonical.as_str()),
            "not idempotent"
        );
        assert!(canonical.starts_with('/'), "{canonical:?}");
        let lower = canonical.to_ascii_lowercase();
        assert!(
            !lower.contains("%2f") && !lower.contains("%2e") && !lower.contains("%5c"),
            "{canonical:?}"
        );
        for segment in canonical.split('/').skip(1) {
            assert!(
                segment != "." && segment != "..",
                "dot segment in {canonical:?}"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let pattern_src = lines.next().unwrap_or("");
    let paths: Vec<&str> = lines.collect();
    for p in &paths {
        check_canonical(p);
    }

    let Some(pattern) = f::path_pattern(pattern_src) else {
        return;
    };
    assert!(pattern_src.starts_with('/'));
    assert_eq!(pattern.as_str(), pattern_src);
    assert_eq!(
        f::path_pattern(pattern_src).as_ref(),
        Some(&pattern),
        "parse is deterministic"
    );

    let segments: Vec<&str> = pattern_src[1..].split('/').collect();
    let is_param = |s: &str| s.starts_with('{') && s.ends_with('}') && s.len() >= 2;
    let rest = segments
        .last()
        .is_some_and(|s| s.starts_with("{*") && s.ends_with('}'));
    let literal_only = !segments.iter().any(|s| is_param(s));

    for path in &paths {
        let m = f::path_matches(&pattern, path);
        if literal_only {
            assert_eq!(m, *path == pattern_src, "{path:?}");
        }
        if m {
            assert!(path.starts_with('/'));
            let parts: Vec<&str> = path[1..].split('/').collect();
            let fixed = if rest {
                segments.len() - 1
            } else {
                segments.len()
            };
            assert!(parts.len() >= fixed, "{path:?}");
            if !rest {
                assert_eq!(parts.len(), fixed, "{path:?}");
            }
            for (seg, part) in segments[..fixed].iter().zip(&parts) {
                if is_param(seg) {
                    assert!(!part.is_empty(), "empty {seg} in {path:?}");
                } else {
                    assert_eq!(seg, part, "{path:?}");
                }
            }
            if !rest {
                assert!(
                    !f::path_matches(&pattern, &format!("{path}/")),
                    "{path:?}/ widened"
                );
            }
        }
    }
    // Its own text is a path it matches (a `{param}` text is a non-empty segment).
    assert!(f::path_matches(&pattern, pattern_src));

    // Paths built from the pattern match it.
    let fill: Vec<String> = paths
        .iter()
        .map(|p| p.replace('/', "_"))
        .filter(|p| !p.is_empty())
        .collect();
    let mut built = String::new();
    for (i, seg) in segments.iter().enumerate() {
        built.push('/');
        if rest && i == segments.len() - 1 {
            built.push_str(paths.first().copied().unwrap_or("a/b"));
        } else if is_param(seg) {
            built.push_str(fill.get(i % fill.len().max(1)).map_or("x", String::as_str));
        } else {
            built.push_str(seg);
        }
    }
    assert!(
        f::path_matches(&pattern, &built),
        "{pattern_src:?} does not match {built:?}"
    );
});
