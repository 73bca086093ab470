//! The responses [`McpPermissionsService`](super::McpPermissionsService) refuses with: the
//! error contract's status and headers around a JSON-RPC error body.

use std::borrow::Cow;
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::Value;

use crate::error::{json_response, AuthError, ErrorBody, ErrorContext};
use crate::identity::{AuthMethod, Identity};
use crate::policy::Decision;
use crate::rate_limit::insert_rate_limit_headers;
use crate::store::RateDecision;

use super::jsonrpc::{
    error_envelope, to_json, BadMessage, Envelope, HEADER_MISMATCH_CODE, INSUFFICIENT_SCOPE_CODE,
    INTERNAL_ERROR_CODE, INVALID_REQUEST_CODE, PARSE_ERROR_CODE, TOO_MANY_REQUESTS_CODE,
};

/// The verdict on one request of a refused body.
pub(crate) struct Verdict {
    pub(crate) id: Value,
    pub(crate) permission: String,
    /// `None`: allowed, but refused with the rest of its batch.
    pub(crate) missing: Option<Vec<String>>,
}

/// 403 `insufficient_scope`: one JSON-RPC error per request (an array for a batch).
pub(crate) fn insufficient_scope(
    parts: &Parts,
    identity: &Identity,
    verdicts: Vec<Verdict>,
    batch: bool,
) -> Response<Full<Bytes>> {
    let mut all_missing: Vec<String> = Vec::new();
    for scope in verdicts.iter().filter_map(|v| v.missing.as_ref()).flatten() {
        if !all_missing.contains(scope) {
            all_missing.push(scope.clone());
        }
    }
    let error = AuthError::InsufficientScope {
        required: all_missing.clone(),
    };

    let ctx = endpoint_context(parts, identity);

    let batch_scope = all_missing.join(" ");
    let envelopes: Vec<_> = verdicts
        .into_iter()
        .map(|verdict| {
            let (description, message, scope) = match &verdict.missing {
                Some(missing) => (
                    Cow::Owned(describe(&verdict.permission, missing)),
                    format!("Insufficient scope: {}", verdict.permission),
                    missing.join(" "),
                ),
                None => (
                    Cow::Borrowed(
                        "Refused with its batch: another request in it lacks a permission",
                    ),
                    "Insufficient scope: refused with its batch".to_owned(),
                    batch_scope.clone(),
                ),
            };
            let data = error
                .body(&ctx)
                .with_description(description)
                .with_field("permission", verdict.permission)
                .with_field("scope", scope)
                .to_value();
            error_envelope(verdict.id, INSUFFICIENT_SCOPE_CODE, &message, data)
        })
        .collect();

    let json = envelopes_json(envelopes, batch);
    error.response_with_body(&ctx, Some(identity.method()), json)
}

/// The same view of the endpoint as the policy layer, which recorded its decision (without
/// one, this layer runs alone: challenge bearer callers only).
fn endpoint_context<'a>(parts: &'a Parts, identity: &Identity) -> ErrorContext<'a> {
    match parts.extensions.get::<Decision>() {
        Some(decision) => decision.error_context(parts),
        None => ErrorContext::new(
            identity.method() == AuthMethod::ApiKey,
            identity.method() == AuthMethod::Bearer,
        ),
    }
}

/// One message of a body refused by a tool quota: its id, and whether it hit the spent quota.
pub(crate) struct QuotaVerdict {
    pub(crate) id: Value,
    pub(crate) spent: bool,
}

/// 429 `too_many_requests` for a spent per-tool quota (`quota` is its pattern): `Retry-After`,
/// the quota's `RateLimit-*` headers when known, one JSON-RPC error per request (an array for
/// a batch).
pub(crate) fn tool_quota(
    parts: &Parts,
    identity: &Identity,
    verdicts: Vec<QuotaVerdict>,
    batch: bool,
    quota: &str,
    retry_after: Duration,
    decision: Option<&RateDecision>,
) -> Response<Full<Bytes>> {
    let error = AuthError::TooManyRequests { retry_after };
    let ctx = endpoint_context(parts, identity);
    let envelopes: Vec<_> = verdicts
        .into_iter()
        .map(|verdict| {
            let (message, description) = if verdict.spent {
                (
                    format!("Too many requests: the {quota} quota is spent"),
                    Cow::Owned(format!(
                        "The {quota} quota is spent. Wait for the time given in Retry-After."
                    )),
                )
            } else {
                (
                    "Too many requests: refused with its batch".to_owned(),
                    Cow::Borrowed("Refused with its batch: another request in it is over a quota"),
                )
            };
            let data = error
                .body(&ctx)
                .with_description(description)
                .with_field("quota", quota)
                .to_value();
            error_envelope(verdict.id, TOO_MANY_REQUESTS_CODE, &message, data)
        })
        .collect();
    let json = envelopes_json(envelopes, batch);
    let mut response = error.response_with_body(&ctx, Some(identity.method()), json);
    if let Some(decision) = decision {
        insert_rate_limit_headers(response.headers_mut(), decision);
    }
    response
}

/// 503 `temporarily_unavailable`: the quota store failed and the quotas fail closed.
pub(crate) fn quota_unavailable(parts: &Parts, identity: &Identity) -> Response<Full<Bytes>> {
    let ctx = endpoint_context(parts, identity);
    AuthError::TemporarilyUnavailable.to_response_for(&ctx, Some(identity.method()))
}

/// One envelope for a single message, an array of them for a batch.
fn envelopes_json(mut envelopes: Vec<Envelope>, batch: bool) -> Vec<u8> {
    match envelopes.pop() {
        Some(only) if !batch => to_json(&only),
        last => {
            envelopes.extend(last);
            to_json(&envelopes)
        }
    }
}

fn describe(permission: &str, missing: &[String]) -> String {
    if missing.len() == 1 && missing[0] == permission {
        format!("The credential lacks the permission {permission}")
    } else {
        format!(
            "The credential lacks the scope {} required for {permission}",
            missing.join(" ")
        )
    }
}

/// 400: the body is not JSON (-32700) or not a JSON-RPC message (-32600).
pub(crate) fn bad_message(bad: &BadMessage) -> Response<Full<Bytes>> {
    let message = if bad.code == PARSE_ERROR_CODE {
        "Parse error"
    } else {
        "Invalid Request"
    };
    protocol_error(
        StatusCode::BAD_REQUEST,
        bad.code,
        message,
        "invalid_request",
        &format!("The request body is not a JSON-RPC message: {}", bad.detail),
    )
}

/// 400 with JSON-RPC `-32020`: the `Mcp-Method` / `Mcp-Name` headers disagree with the body.
/// Answers the message's `id` (`null` for a notification or a batch).
pub(crate) fn header_mismatch(id: Value, reason: &str) -> Response<Full<Bytes>> {
    protocol_error_with_id(
        StatusCode::BAD_REQUEST,
        id,
        HEADER_MISMATCH_CODE,
        "Header mismatch",
        "invalid_request",
        reason,
    )
}

/// 400: reading the body failed before it ended.
pub(crate) fn unreadable() -> Response<Full<Bytes>> {
    protocol_error(
        StatusCode::BAD_REQUEST,
        PARSE_ERROR_CODE,
        "Parse error",
        "invalid_request",
        "The request body could not be read",
    )
}

/// 413: the body is larger than the layer reads.
pub(crate) fn too_large(limit: usize) -> Response<Full<Bytes>> {
    protocol_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        INVALID_REQUEST_CODE,
        "Request body too large",
        "invalid_request",
        &format!("The request body exceeds {limit} bytes"),
    )
}

/// 500: a `tools/list` response that cannot be filtered is never passed on unfiltered.
pub(crate) fn unfilterable(reason: &str) -> Response<Full<Bytes>> {
    protocol_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        INTERNAL_ERROR_CODE,
        "Internal error",
        "server_error",
        reason,
    )
}

fn protocol_error(
    status: StatusCode,
    code: i64,
    message: &str,
    error: &str,
    description: &str,
) -> Response<Full<Bytes>> {
    protocol_error_with_id(status, Value::Null, code, message, error, description)
}

fn protocol_error_with_id(
    status: StatusCode,
    id: Value,
    code: i64,
    message: &str,
    error: &str,
    description: &str,
) -> Response<Full<Bytes>> {
    let data = ErrorBody::new(error, description).to_value();
    let body = to_json(&error_envelope(id, code, message, data));
    json_response(status, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{policy::EndpointPolicyLayer, EndpointPolicy};
    use serde_json::json;

    fn body(res: Response<Full<Bytes>>) -> Value {
        serde_json::from_slice(&crate::test_util::body_bytes(res.into_body())).unwrap()
    }

    fn parts() -> Parts {
        http::Request::post("http://h.example/mcp")
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    #[test]
    fn single_refusal_envelope_and_challenge() {
        let policy = EndpointPolicyLayer::builder(EndpointPolicy::both())
            .public_base_url("https://mcp.example.com")
            .build()
            .unwrap();
        let mut parts = parts();
        parts.extensions.insert(policy.default_decision());
        let id = Identity::builder(AuthMethod::ApiKey, "k").build();
        let res = insufficient_scope(
            &parts,
            &id,
            vec![Verdict {
                id: json!(7),
                permission: "tools/call:rm".into(),
                missing: Some(vec!["tools/call:rm".into()]),
            }],
            false,
        );
        assert_eq!(res.status(), 403);
        let challenge = res.headers()["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.contains(r#"error="insufficient_scope""#),
            "{challenge}"
        );
        assert!(
            challenge.contains(r#"scope="tools/call:rm""#),
            "{challenge}"
        );
        assert!(challenge.contains("resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\""));
        let b = body(res);
        assert_eq!(b["jsonrpc"], "2.0");
        assert_eq!(b["id"], 7);
        assert_eq!(b["error"]["code"], INSUFFICIENT_SCOPE_CODE);
        let data = &b["error"]["data"];
        assert_eq!(data["error"], "insufficient_scope");
        assert_eq!(data["permission"], "tools/call:rm");
        assert_eq!(
            data["resource_metadata"],
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
        );
        assert!(data["timestamp"].as_str().is_some());
    }

    #[test]
    fn without_a_shared_policy_only_bearer_callers_are_challenged() {
        let verdict = || Verdict {
            id: json!("a"),
            permission: "p".into(),
            missing: Some(vec!["p".into()]),
        };
        let key = Identity::builder(AuthMethod::ApiKey, "k").build();
        let res = insufficient_scope(&parts(), &key, vec![verdict()], false);
        assert!(res.headers().get("www-authenticate").is_none());
        let token = Identity::builder(AuthMethod::Bearer, "t").build();
        let res = insufficient_scope(&parts(), &token, vec![verdict()], true);
        assert!(res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains(r#"scope="p""#));
        assert_eq!(body(res)[0]["id"], "a");
    }

    #[test]
    fn protocol_errors() {
        let res = too_large(10);
        assert_eq!(res.status(), 413);
        assert_eq!(res.headers()["cache-control"], "no-store");
        let b = body(res);
        assert_eq!(b["id"], Value::Null);
        assert_eq!(b["error"]["code"], INVALID_REQUEST_CODE);
        assert_eq!(b["error"]["data"]["error"], "invalid_request");
    }
}
