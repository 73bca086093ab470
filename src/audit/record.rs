//! What the layers of the stack leave for the audit layer while a request passes: one
//! [`AuditRecord`] per audited request, in the request extensions. Only the audit layer puts
//! one there, so every hook below costs one extension lookup when auditing is off.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use http::Extensions;

use crate::identity::Identity;
use crate::outcome::{ApiKeyOutcome, BearerOutcome};
use crate::policy::Decision;

use super::event::RpcMessage;

/// Shared between the audit layer (which reads it when the response is ready) and the
/// layers inside it (which fill it in). A lock per request, never contended in practice:
/// the layers write one after the other.
#[derive(Clone, Default)]
pub(crate) struct AuditRecord(Arc<Mutex<Recorded>>);

#[derive(Default)]
pub(crate) struct Recorded {
    /// The policy that applied (set by the policy layer).
    pub(crate) decision: Option<Decision>,
    /// The decided identity, or the authenticated one of a refused request.
    pub(crate) identity: Option<Identity>,
    /// The JSON-RPC messages of the body (set by the MCP permissions layer).
    pub(crate) messages: Vec<RpcMessage>,
    /// Why the MCP permissions layer refused the body, when its response carries no
    /// [`AuthFailure`](crate::AuthFailure) (protocol errors, per-tool quotas).
    pub(crate) mcp_refusal: Option<&'static str>,
}

impl AuditRecord {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Recorded> {
        // A panic elsewhere while holding it cannot leave it half-written in a way that
        // matters for a log line.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn with(extensions: &Extensions, f: impl FnOnce(&mut Recorded)) {
    if let Some(record) = extensions.get::<AuditRecord>() {
        f(&mut record.lock());
    }
}

/// The request's record, for a layer that writes it more than once (one lookup instead of
/// one per write; `None` when the request is not audited).
pub(crate) fn find(extensions: &Extensions) -> Option<AuditRecord> {
    extensions.get::<AuditRecord>().cloned()
}

/// The policy layer chose `decision`; before it decides, the authenticated identity (an
/// accepted key wins, as in the policy) is what a refusal is attributed to.
pub(crate) fn policy_applied(record: &AuditRecord, extensions: &Extensions, decision: &Decision) {
    let mut r = record.lock();
    r.decision = Some(decision.clone());
    let key = extensions.get::<ApiKeyOutcome>().and_then(|o| o.identity());
    let identity = key.or_else(|| extensions.get::<BearerOutcome>()?.identity());
    r.identity = identity.cloned();
}

/// The policy layer let the request through as `identity` (`None`: an open endpoint);
/// usually the one already recorded.
pub(crate) fn policy_allowed(record: &AuditRecord, identity: Option<&Identity>) {
    let mut r = record.lock();
    let same = match (&r.identity, identity) {
        (Some(a), Some(b)) => a.ptr_eq(b),
        (None, None) => true,
        _ => false,
    };
    if !same {
        r.identity = identity.cloned();
    }
}

/// Whether anyone audits this request (the MCP layer builds the message list only then).
pub(crate) fn is_audited(extensions: &Extensions) -> bool {
    extensions.get::<AuditRecord>().is_some()
}

/// The MCP permissions layer read these messages.
pub(crate) fn messages(extensions: &Extensions, messages: Vec<RpcMessage>) {
    with(extensions, |r| r.messages = messages);
}

/// The MCP permissions layer refused the body for `reason`; `refused(i)` tells which
/// messages the refusal is about (the others were refused with their batch).
pub(crate) fn mcp_refused(
    extensions: &Extensions,
    reason: &'static str,
    refused: impl Fn(&RpcMessage) -> bool,
) {
    with(extensions, |r| {
        r.mcp_refusal = Some(reason);
        for m in r.messages.iter_mut().filter(|m| refused(m)) {
            m.refusal = Some(reason);
        }
    });
}
