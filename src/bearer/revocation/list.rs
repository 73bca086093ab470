//! [`RevocationList`]: the revoked `jti`s and subject cut-offs, as stored (JSON in one
//! `StateStore` value) and as checked on the request path.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::identity::Identity;

/// A subject's kill-switch: tokens it got at or before `before` are revoked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Cutoff {
    /// The token issuer (`iss`) the subject belongs to; `None` for tokens without `iss`.
    #[serde(rename = "i", default, skip_serializing_if = "Option::is_none")]
    pub(super) issuer: Option<String>,
    /// Unix seconds: tokens with `iat <= before` are revoked.
    #[serde(rename = "b")]
    pub(super) before: u64,
    /// Unix seconds after which the entry is dropped (every such token has expired).
    #[serde(rename = "x")]
    pub(super) drop_after: u64,
}

/// Everything revoked, at most the longest token lifetime ago.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct RevocationList {
    /// `jti` → Unix seconds after which the entry is dropped.
    #[serde(rename = "j", default)]
    jtis: HashMap<String, u64>,
    /// Subject (`sub`) → its cut-offs, one per issuer.
    #[serde(rename = "s", default)]
    subjects: HashMap<String, Vec<Cutoff>>,
}

impl RevocationList {
    pub(super) fn is_empty(&self) -> bool {
        self.jtis.is_empty() && self.subjects.is_empty()
    }

    /// Parses a stored list; a value this crate did not write is `None`.
    pub(super) fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }

    pub(super) fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a revocation list serialises")
    }

    pub(super) fn add_jti(&mut self, jti: &str, drop_after: u64) {
        let entry = self.jtis.entry(jti.to_owned()).or_insert(drop_after);
        *entry = (*entry).max(drop_after);
    }

    /// Adds a cut-off; a later cut-off for the same (issuer, subject) replaces an earlier one.
    pub(super) fn add_cutoff(&mut self, subject: &str, cutoff: Cutoff) {
        let cutoffs = self.subjects.entry(subject.to_owned()).or_default();
        match cutoffs.iter_mut().find(|c| c.issuer == cutoff.issuer) {
            Some(c) => {
                c.before = c.before.max(cutoff.before);
                c.drop_after = c.drop_after.max(cutoff.drop_after);
            }
            None => cutoffs.push(cutoff),
        }
    }

    /// Merges another list in (the union: nothing revoked is ever lost).
    pub(super) fn merge(&mut self, other: RevocationList) {
        for (jti, drop_after) in other.jtis {
            self.add_jti(&jti, drop_after);
        }
        for (subject, cutoffs) in other.subjects {
            for cutoff in cutoffs {
                self.add_cutoff(&subject, cutoff);
            }
        }
    }

    /// Drops the entries whose tokens have all expired by `now` (Unix seconds).
    pub(super) fn prune(&mut self, now: u64) {
        self.jtis.retain(|_, drop_after| *drop_after > now);
        self.subjects.retain(|_, cutoffs| {
            cutoffs.retain(|c| c.drop_after > now);
            !cutoffs.is_empty()
        });
    }

    /// The latest `drop_after` of any entry (the stored value's TTL).
    pub(super) fn last_drop(&self) -> u64 {
        let jtis = self.jtis.values().copied();
        let cutoffs = self.subjects.values().flatten().map(|c| c.drop_after);
        jtis.chain(cutoffs).max().unwrap_or(0)
    }

    /// Whether `identity`'s token is revoked: its `jti` is listed, or its subject has a
    /// cut-off at or after its `iat` (a token with no `iat` is revoked by any cut-off of its
    /// subject: it cannot show it came later). No allocation.
    pub(super) fn revokes(&self, identity: &Identity) -> bool {
        let claims = identity.claims();
        let claim = |name: &str| claims.and_then(|c| c.get(name));
        if let Some(jti) = claim("jti").and_then(|v| v.as_str()) {
            if self.jtis.contains_key(jti) {
                return true;
            }
        }
        let Some(subject) = identity.user_id() else {
            return false;
        };
        let Some(cutoffs) = self.subjects.get(subject) else {
            return false;
        };
        let Some(cutoff) = cutoffs
            .iter()
            .find(|c| c.issuer.as_deref() == identity.issuer())
        else {
            return false;
        };
        match claim("iat").and_then(|v| v.as_f64()) {
            Some(iat) => iat <= cutoff.before as f64,
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::AuthMethod;
    use serde_json::json;

    fn token(iss: Option<&str>, sub: &str, claims: serde_json::Value) -> Identity {
        let mut b = Identity::builder(AuthMethod::Bearer, sub).user_id(sub);
        if let Some(iss) = iss {
            b = b.issuer(iss);
        }
        b.claims(claims.as_object().unwrap().clone()).build()
    }

    fn cutoff(issuer: Option<&str>, before: u64) -> Cutoff {
        Cutoff {
            issuer: issuer.map(str::to_owned),
            before,
            drop_after: before + 3600,
        }
    }

    #[test]
    fn jti_and_subject_cutoffs_revoke_what_they_name() {
        let mut list = RevocationList::default();
        assert!(list.is_empty());
        list.add_jti("t-1", 100);
        list.add_cutoff("alice", cutoff(Some("https://idp"), 50));
        assert!(list.revokes(&token(None, "bob", json!({"jti": "t-1"}))));
        assert!(!list.revokes(&token(None, "bob", json!({"jti": "t-2"}))));
        let alice = |iat| token(Some("https://idp"), "alice", json!({"iat": iat}));
        assert!(list.revokes(&alice(49)));
        assert!(
            list.revokes(&alice(50)),
            "the cut-off second itself is revoked"
        );
        assert!(!list.revokes(&alice(51)));
        assert!(
            list.revokes(&token(Some("https://idp"), "alice", json!({}))),
            "no iat"
        );
        assert!(!list.revokes(&token(Some("https://other"), "alice", json!({"iat": 1}))));
        assert!(!list.revokes(&token(None, "alice", json!({"iat": 1}))));
    }

    #[test]
    fn merge_keeps_the_union_and_prune_drops_expired_entries() {
        let mut a = RevocationList::default();
        a.add_jti("t-1", 100);
        a.add_cutoff("alice", cutoff(None, 10));
        let mut b = RevocationList::default();
        b.add_jti("t-2", 200);
        b.add_cutoff("alice", cutoff(None, 20));
        a.merge(b);
        assert_eq!(a.subjects["alice"], vec![cutoff(None, 20)]);
        assert_eq!(a.last_drop(), 3620);
        let decoded = RevocationList::decode(&a.encode()).unwrap();
        assert_eq!(decoded, a);
        a.prune(150);
        assert!(!a.jtis.contains_key("t-1") && a.jtis.contains_key("t-2"));
        a.prune(10_000);
        assert!(a.is_empty());
        assert!(RevocationList::decode(b"not json").is_none());
    }
}
