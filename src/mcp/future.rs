//! Response future of [`McpPermissionsService`](super::McpPermissionsService): read the
//! body, decide, call the inner service, and filter a `tools/list` response if asked to.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use http::header::{HeaderValue, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use http::{request, response, Request, Response};
use http_body::Body;
use http_body_util::Full;
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::audit::{record as audit, RpcMessage};
use crate::identity::Identity;
use crate::rate_limit::{ToolCheck, ToolVerdict};

use super::body::{McpRequestBody, McpResponseBody};
use super::filter::ToolsFilter;
use super::jsonrpc::{self, Parsed};
use super::layer::McpConfig;
use super::refusal::{self, Verdict};

pin_project! {
    /// Response future of [`McpPermissionsService`](super::McpPermissionsService): reads the
    /// request body, decides, calls the inner service and, when asked to, filters a
    /// `tools/list` response. A hand-written state machine: nothing is boxed.
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use bytes::Bytes;
    /// use http::{Request, Response};
    /// use http_body_util::Full;
    /// use tower::{service_fn, util::ServiceFn, Service};
    /// use tower_layer::Layer;
    /// use tower_mcp_auth::{mcp::{McpPermissionsFuture, McpPermissionsLayer, McpRequestBody}};
    ///
    /// async fn inner(_: Request<McpRequestBody<String>>) -> Result<Response<String>, Infallible> {
    ///     Ok(Response::new(String::new()))
    /// }
    /// let mut svc = McpPermissionsLayer::new().layer(service_fn(inner));
    /// let future: McpPermissionsFuture<_, String, String> = svc.call(Request::new(String::new()));
    /// # drop(future);
    /// ```
    pub struct McpPermissionsFuture<S, B, R>
    where
        S: Service<Request<McpRequestBody<B>>>,
    {
        #[pin]
        state: State<S, B, R>,
    }
}

pin_project! {
    #[project = StateProj]
    #[project_replace = StateTake]
    enum State<S, B, R>
    where
        S: Service<Request<McpRequestBody<B>>>,
    {
        /// Reading the request body.
        Reading {
            #[pin]
            body: B,
            read: Chunks,
            parts: request::Parts,
            inner: S,
            identity: Identity,
            config: Arc<McpConfig>,
        },
        /// Waiting for the per-tool quotas' store decisions.
        Limiting {
            check: ToolCheck,
            limited: Limited,
            bytes: Bytes,
            inner: S,
            filter: Option<ToolsFilter>,
        },
        /// Waiting for the inner service.
        Calling {
            #[pin]
            future: S::Future,
            filter: Option<ToolsFilter>,
        },
        /// Reading a JSON `tools/list` response to filter it.
        Filtering {
            #[pin]
            body: R,
            read: Chunks,
            parts: response::Parts,
            filter: ToolsFilter,
        },
        /// A refusal, ready to return.
        Refused { response: Response<Full<Bytes>> },
        Done,
    }
}

impl<S, B, R> McpPermissionsFuture<S, B, R>
where
    S: Service<Request<McpRequestBody<B>>>,
{
    pub(crate) fn passthrough(future: S::Future) -> Self {
        Self {
            state: State::Calling {
                future,
                filter: None,
            },
        }
    }

    pub(crate) fn refused(response: Response<Full<Bytes>>) -> Self {
        Self {
            state: State::Refused { response },
        }
    }

    pub(crate) fn reading(
        req: Request<B>,
        inner: S,
        identity: Identity,
        config: Arc<McpConfig>,
    ) -> Self {
        let (parts, body) = req.into_parts();
        Self {
            state: State::Reading {
                body,
                read: Chunks::new(config.max_body_bytes),
                parts,
                inner,
                identity,
                config,
            },
        }
    }
}

impl<S, B, R> Future for McpPermissionsFuture<S, B, R>
where
    S: Service<Request<McpRequestBody<B>>, Response = Response<R>>,
    B: Body<Data = Bytes>,
    R: Body<Data = Bytes>,
{
    type Output = Result<Response<McpResponseBody<R>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Reading { body, read, .. } => {
                    let outcome = ready!(read.poll_read(body, cx));
                    let StateTake::Reading {
                        parts,
                        inner,
                        identity,
                        config,
                        ..
                    } = state.as_mut().project_replace(State::Done)
                    else {
                        unreachable!("state was Reading")
                    };
                    let next = match outcome {
                        Ok(bytes) => decide(bytes, parts, inner, identity, config),
                        Err(ReadError::TooLarge) => {
                            audit::mcp_refused(&parts.extensions, "payload_too_large", |_| true);
                            State::Refused {
                                response: refusal::too_large(config.max_body_bytes),
                            }
                        }
                        Err(ReadError::Body) => {
                            audit::mcp_refused(&parts.extensions, "invalid_request", |_| true);
                            State::Refused {
                                response: refusal::unreadable(),
                            }
                        }
                    };
                    state.set(next);
                }
                StateProj::Limiting { check, .. } => {
                    let verdict = ready!(check.poll(cx));
                    let StateTake::Limiting {
                        limited,
                        bytes,
                        inner,
                        filter,
                        ..
                    } = state.as_mut().project_replace(State::Done)
                    else {
                        unreachable!("state was Limiting")
                    };
                    state.set(limited.after(verdict, bytes, inner, filter));
                }
                StateProj::Calling { future, filter } => {
                    let response = ready!(future.poll(cx))?;
                    let Some(filter) = filter.take() else {
                        state.set(State::Done);
                        return Poll::Ready(Ok(response.map(McpResponseBody::inner)));
                    };
                    match classify(&response) {
                        Kind::Json => {
                            let (parts, body) = response.into_parts();
                            let read = Chunks::new(filter.max_bytes());
                            state.set(State::Filtering {
                                body,
                                read,
                                parts,
                                filter,
                            });
                        }
                        Kind::EventStream => {
                            state.set(State::Done);
                            let response =
                                response.map(|body| McpResponseBody::event_stream(body, filter));
                            return Poll::Ready(Ok(without_length(response)));
                        }
                        Kind::Encoded => {
                            state.set(State::Done);
                            let refusal = refusal::unfilterable(
                                "A tools/list response with a Content-Encoding cannot be filtered",
                            );
                            return Poll::Ready(Ok(refusal.map(McpResponseBody::from_full)));
                        }
                        Kind::Other => {
                            state.set(State::Done);
                            return Poll::Ready(Ok(response.map(McpResponseBody::inner)));
                        }
                    }
                }
                StateProj::Filtering { body, read, .. } => {
                    let outcome = ready!(read.poll_read(body, cx));
                    let StateTake::Filtering {
                        parts, mut filter, ..
                    } = state.as_mut().project_replace(State::Done)
                    else {
                        unreachable!("state was Filtering")
                    };
                    let response = match outcome.map(|bytes| filter.apply_to_json(bytes)) {
                        Ok(Some(filtered)) => {
                            let mut response = Response::from_parts(
                                parts,
                                McpResponseBody::full(filtered.clone()),
                            );
                            response
                                .headers_mut()
                                .insert(CONTENT_LENGTH, HeaderValue::from(filtered.len()));
                            response
                        }
                        Ok(None) => refusal::unfilterable(
                            "The tools/list response is not JSON that can be filtered",
                        )
                        .map(McpResponseBody::from_full),
                        Err(ReadError::TooLarge) => {
                            refusal::unfilterable("The tools/list response is too large to filter")
                                .map(McpResponseBody::from_full)
                        }
                        Err(ReadError::Body) => {
                            refusal::unfilterable("The tools/list response could not be read")
                                .map(McpResponseBody::from_full)
                        }
                    };
                    return Poll::Ready(Ok(response));
                }
                StateProj::Refused { .. } => {
                    let StateTake::Refused { response } =
                        state.as_mut().project_replace(State::Done)
                    else {
                        unreachable!("state was Refused")
                    };
                    return Poll::Ready(Ok(response.map(McpResponseBody::from_full)));
                }
                StateProj::Done => panic!("McpPermissionsFuture polled after completion"),
            }
        }
    }
}

/// Decides a read body: refuse it, or call the inner service with the same bytes.
fn decide<S, B, R>(
    bytes: Bytes,
    parts: request::Parts,
    mut inner: S,
    identity: Identity,
    config: Arc<McpConfig>,
) -> State<S, B, R>
where
    S: Service<Request<McpRequestBody<B>>>,
{
    let parsed: Parsed<'_> = match jsonrpc::parse(&bytes) {
        Ok(parsed) => parsed,
        Err(bad) if !config.is_mcp_path(parts.uri.path()) && declared_not_json(&parts) => {
            // Not JSON-RPC, and not sent as JSON to an MCP path (an upload, a form): no
            // JSON-RPC server acts on it, so it is passed on as it came.
            tracing::trace!(code = bad.code, "non-JSON POST passed on");
            let req = Request::from_parts(parts, McpRequestBody::buffered(bytes));
            return State::Calling {
                future: inner.call(req),
                filter: None,
            };
        }
        Err(bad) => {
            tracing::debug!(code = bad.code, "MCP request body is not JSON-RPC");
            audit::mcp_refused(&parts.extensions, "invalid_request", |_| true);
            return State::Refused {
                response: refusal::bad_message(&bad),
            };
        }
    };
    if audit::is_audited(&parts.extensions) {
        audit::messages(&parts.extensions, audit_messages(&parsed));
    }
    if let Err(reason) = jsonrpc::check_headers(&parts.headers, &parsed) {
        audit::mcp_refused(&parts.extensions, "invalid_request", |_| true);
        tracing::debug!(%reason, "Mcp-Method / Mcp-Name header mismatch");
        let id = match &parsed.calls[..] {
            [only] if !parsed.batch => only.id.clone().unwrap_or(serde_json::Value::Null),
            _ => serde_json::Value::Null,
        };
        return State::Refused {
            response: refusal::header_mismatch(id, &reason),
        };
    }

    // Every message a server would act on is checked, notifications included.
    let checked = || parsed.calls.iter().filter_map(|c| c.as_checked());
    let mut denied = false;
    let mut tools_list_ids = Vec::new();
    for (method, id, target) in checked() {
        if let Err(missing) = config.rules.check(&identity, method, target) {
            tracing::debug!(method, target, ?missing, "MCP request denied");
            denied = true;
        }
        if let (Some(id), "tools/list") = (id, method) {
            tools_list_ids.push(id.clone());
        }
    }
    if denied {
        // The slow path: name every checked message of the body in the refusal; a
        // notification has no id to answer, so its error has `id: null`.
        let verdicts = checked()
            .map(|(method, id, target)| Verdict {
                id: id.cloned().unwrap_or(serde_json::Value::Null),
                permission: match target {
                    Some(target) => format!("{method}:{target}"),
                    None => method.to_owned(),
                },
                missing: config.rules.check(&identity, method, target).err(),
            })
            .collect();
        audit::mcp_refused(&parts.extensions, "insufficient_scope", |m| {
            config
                .rules
                .check(&identity, &m.method, m.target.as_deref())
                .is_err()
        });
        let response = refusal::insufficient_scope(&parts, &identity, verdicts, parsed.batch);
        return State::Refused { response };
    }

    // Per-tool quotas, on the messages that passed their permissions.
    let quota = config.tool_quotas.as_ref().and_then(|quotas| {
        let mut hits: Vec<(usize, u32)> = Vec::new();
        for (method, _, target) in checked() {
            if let Some(limit) = quotas.limit_for(method, target) {
                match hits.iter_mut().find(|(l, _)| *l == limit) {
                    Some((_, cost)) => *cost = cost.saturating_add(1),
                    None => hits.push((limit, 1)),
                }
            }
        }
        let check = quotas.check(&parts, &hits)?;
        // The ids a refusal answers, only when some message is under a quota.
        let calls = checked()
            .map(|(method, id, target)| {
                let id = id.cloned().unwrap_or(serde_json::Value::Null);
                (id, quotas.limit_for(method, target))
            })
            .collect();
        Some((check, calls, parsed.batch))
    });
    drop(parsed);

    let filter = (config.filter_tools_list && !tools_list_ids.is_empty())
        .then(|| ToolsFilter::new(tools_list_ids, identity.clone(), config.clone()));
    match quota {
        Some((check, calls, batch)) => State::Limiting {
            check,
            limited: Limited {
                parts,
                identity,
                config,
                calls,
                batch,
            },
            bytes,
            inner,
            filter,
        },
        None => {
            let req = Request::from_parts(parts, McpRequestBody::buffered(bytes));
            State::Calling {
                future: inner.call(req),
                filter,
            }
        }
    }
}

/// A request whose per-tool quotas are being checked, and what its refusal needs: each
/// checked message's id and quota limit.
pub(crate) struct Limited {
    parts: request::Parts,
    identity: Identity,
    config: Arc<McpConfig>,
    calls: Vec<(serde_json::Value, Option<usize>)>,
    batch: bool,
}

impl Limited {
    /// Calls the inner service, or refuses (429, or 503 when the quotas fail closed).
    fn after<S, B, R>(
        self,
        verdict: ToolVerdict,
        bytes: Bytes,
        mut inner: S,
        filter: Option<ToolsFilter>,
    ) -> State<S, B, R>
    where
        S: Service<Request<McpRequestBody<B>>>,
    {
        let Limited {
            parts,
            identity,
            config,
            calls,
            batch,
        } = self;
        let response = match verdict {
            ToolVerdict::Allowed => {
                let req = Request::from_parts(parts, McpRequestBody::buffered(bytes));
                return State::Calling {
                    future: inner.call(req),
                    filter,
                };
            }
            ToolVerdict::Refused {
                limit,
                retry_after,
                decision,
            } => {
                let Some(quotas) = config.tool_quotas.as_ref() else {
                    unreachable!("a quota verdict comes from configured quotas")
                };
                let pattern = quotas.pattern(limit);
                tracing::debug!(quota = pattern, ?retry_after, "tool quota spent");
                crate::metrics::quota_refused("tool");
                audit::mcp_refused(&parts.extensions, "tool_quota", |m| {
                    quotas.limit_for(&m.method, m.target.as_deref()) == Some(limit)
                });
                let verdicts = calls
                    .into_iter()
                    .map(|(id, hit)| refusal::QuotaVerdict {
                        id,
                        spent: hit == Some(limit),
                    })
                    .collect();
                refusal::tool_quota(
                    &parts,
                    &identity,
                    verdicts,
                    batch,
                    pattern,
                    retry_after,
                    decision.as_ref(),
                )
            }
            ToolVerdict::Unavailable => {
                audit::mcp_refused(&parts.extensions, "temporarily_unavailable", |_| false);
                refusal::quota_unavailable(&parts, &identity)
            }
        };
        State::Refused { response }
    }
}

/// The body's messages for the audit trail (those with a method: responses have none).
fn audit_messages(parsed: &Parsed<'_>) -> Vec<RpcMessage> {
    parsed
        .calls
        .iter()
        .filter_map(|call| {
            Some(RpcMessage {
                method: call.method.as_deref()?.to_owned(),
                id: call.id.clone(),
                target: call.target.as_deref().map(str::to_owned),
                refusal: None,
            })
        })
        .collect()
}

/// Whether the request declares a media type that is neither JSON (`application/json`,
/// `*/*+json`) nor text nor `*/*`: only such a body that does not parse may pass, and only on
/// a path that is not an MCP endpoint.
fn declared_not_json(parts: &request::Parts) -> bool {
    let Some(media_type) = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim)
    else {
        return false;
    };
    let lower = media_type.to_ascii_lowercase();
    !(lower.is_empty()
        || lower == "application/json"
        || lower.ends_with("+json")
        || lower.starts_with("text/")
        || lower == "*/*")
}

enum Kind {
    Json,
    EventStream,
    Encoded,
    Other,
}

/// Which `tools/list` responses can be filtered: JSON and event streams, not compressed.
fn classify<R>(response: &Response<R>) -> Kind {
    let media_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim);
    let kind = match media_type {
        Some(t) if t.eq_ignore_ascii_case("application/json") => Kind::Json,
        Some(t) if t.eq_ignore_ascii_case("text/event-stream") => Kind::EventStream,
        _ => return Kind::Other,
    };
    let encoded = response
        .headers()
        .get(CONTENT_ENCODING)
        .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
    if encoded {
        Kind::Encoded
    } else {
        kind
    }
}

/// A filtered stream has a different length than the server declared.
fn without_length<B>(mut response: Response<B>) -> Response<B> {
    response.headers_mut().remove(CONTENT_LENGTH);
    response
}

enum ReadError {
    TooLarge,
    Body,
}

/// Reads a body into memory, up to a limit; a one-frame body is kept without copying.
pub(crate) struct Chunks {
    limit: usize,
    first: Option<Bytes>,
    rest: Option<BytesMut>,
}

impl Chunks {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            first: None,
            rest: None,
        }
    }

    fn len(&self) -> usize {
        match (&self.first, &self.rest) {
            (_, Some(rest)) => rest.len(),
            (Some(first), None) => first.len(),
            (None, None) => 0,
        }
    }

    fn poll_read<B>(
        &mut self,
        mut body: Pin<&mut B>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Bytes, ReadError>>
    where
        B: Body<Data = Bytes>,
    {
        loop {
            match ready!(body.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => {
                    // Trailers carry nothing a JSON-RPC message needs.
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    if self.len().saturating_add(data.len()) > self.limit {
                        return Poll::Ready(Err(ReadError::TooLarge));
                    }
                    match (&mut self.first, &mut self.rest) {
                        (None, None) => self.first = Some(data),
                        (Some(first), None) => {
                            let mut rest = BytesMut::with_capacity(first.len() + data.len());
                            rest.extend_from_slice(first);
                            rest.extend_from_slice(&data);
                            self.first = None;
                            self.rest = Some(rest);
                        }
                        (_, Some(rest)) => rest.extend_from_slice(&data),
                    }
                }
                Some(Err(_)) => return Poll::Ready(Err(ReadError::Body)),
                None => {
                    let bytes = match (self.first.take(), self.rest.take()) {
                        (_, Some(rest)) => rest.freeze(),
                        (Some(first), None) => first,
                        (None, None) => Bytes::new(),
                    };
                    return Poll::Ready(Ok(bytes));
                }
            }
        }
    }
}
