//! [`PathPattern`]: matching request paths to endpoint policies without allocating.

use std::fmt;

/// A path pattern in axum's syntax: literal segments, `{name}` for one segment, and a final
/// `{*rest}` for any remainder (including nothing).
///
/// Matching is exact otherwise: `/mcp` does not match `/mcp/`, so the canonical resource URL
/// is never silently widened.
///
/// ```
/// use tower_mcp_auth::policy::PathPattern;
///
/// let p = PathPattern::parse("/users/{id}/mcp").unwrap();
/// assert!(p.matches("/users/alice/mcp"));
/// assert!(!p.matches("/users/alice/bob/mcp"));
/// assert!(PathPattern::parse("/static/{*rest}").unwrap().matches("/static/a/b.css"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct PathPattern {
    source: String,
    segments: Vec<Segment>,
    rest: bool,
    /// Only literal segments: the pattern matches exactly its own text.
    literal: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Any,
}

impl PathPattern {
    /// Parses a pattern. Returns `None` unless it starts with `/` and every `{…}` is a whole
    /// segment, with `{*…}` only at the end.
    pub fn parse(pattern: &str) -> Option<Self> {
        let tail = pattern.strip_prefix('/')?;
        let parts: Vec<&str> = tail.split('/').collect();
        let mut segments = Vec::with_capacity(parts.len());
        let mut rest = false;
        for (i, part) in parts.iter().enumerate() {
            if let Some(inner) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                if inner.starts_with('*') {
                    if i != parts.len() - 1 {
                        return None;
                    }
                    rest = true;
                } else if inner.is_empty() || inner.contains(['{', '}']) {
                    return None;
                } else {
                    segments.push(Segment::Any);
                }
            } else if part.contains(['{', '}']) {
                return None;
            } else {
                segments.push(Segment::Literal((*part).to_owned()));
            }
        }
        let literal = !rest && segments.iter().all(|s| matches!(s, Segment::Literal(_)));
        Some(Self {
            source: pattern.to_owned(),
            segments,
            rest,
            literal,
        })
    }

    /// Whether `path` matches: the decoded, canonical path without query (see
    /// [`CanonicalPath`](crate::policy::CanonicalPath)), as the policy layer passes it.
    pub fn matches(&self, path: &str) -> bool {
        if self.literal {
            // Segment by segment, with nothing left over, is the same text.
            return path == self.source;
        }
        self.matches_by_segments(path)
    }

    fn matches_by_segments(&self, path: &str) -> bool {
        let Some(tail) = path.strip_prefix('/') else {
            return false;
        };
        let mut parts = tail.split('/');
        for segment in &self.segments {
            match (segment, parts.next()) {
                (Segment::Literal(lit), Some(part)) if lit == part => {}
                (Segment::Any, Some(part)) if !part.is_empty() => {}
                _ => return false,
            }
        }
        // `/{*rest}` also matches the bare prefix (`/static` and `/static/`).
        self.rest || parts.next().is_none()
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

impl fmt::Debug for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PathPattern({:?})", self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_trailing_slash() {
        let p = PathPattern::parse("/mcp").unwrap();
        assert!(p.matches("/mcp"));
        assert!(!p.matches("/mcp/"));
        assert!(!p.matches("/mcpx"));
        assert!(!p.matches("mcp"));
        let root = PathPattern::parse("/").unwrap();
        assert!(root.matches("/"));
        assert!(!root.matches("/a"));
    }

    #[test]
    fn literal_patterns_match_as_by_segments() {
        let paths = [
            "/", "", "/mcp", "/mcp/", "/a/b", "/a//b", "/a/", "/a", "a", "/a/b/c",
        ];
        for pattern in ["/", "/mcp", "/a/b", "/a//b", "/a/", "/mcp/"] {
            let p = PathPattern::parse(pattern).unwrap();
            assert!(p.literal, "{pattern}");
            for path in paths {
                assert_eq!(
                    p.matches(path),
                    p.matches_by_segments(path),
                    "{pattern} {path}"
                );
            }
        }
        assert!(!PathPattern::parse("/users/{id}").unwrap().literal);
        assert!(!PathPattern::parse("/api/{*rest}").unwrap().literal);
    }

    #[test]
    fn params_and_rest() {
        let p = PathPattern::parse("/users/{id}/mcp").unwrap();
        assert!(p.matches("/users/alice/mcp"));
        assert!(!p.matches("/users//mcp"));
        let r = PathPattern::parse("/api/{*rest}").unwrap();
        assert!(r.matches("/api"));
        assert!(r.matches("/api/"));
        assert!(r.matches("/api/x/y"));
        assert!(!r.matches("/apix"));
    }

    #[test]
    fn invalid_patterns() {
        for bad in ["", "mcp", "/a/{*rest}/b", "/a{b}", "/{}", "/{a{b}}"] {
            assert!(PathPattern::parse(bad).is_none(), "{bad}");
        }
    }
}
