//! Ending a login: [`OAuthClient::callback`] checks the state, redeems the code and opens
//! the session.

use super::*;

/// What a successful callback did.
#[derive(Debug)]
#[non_exhaustive]
pub enum CallbackOutcome {
    /// A user logged in.
    Login {
        /// Who.
        user: UserInfo,
        /// The session token (when a [`SessionConfig`] is set).
        session: Option<SessionToken>,
        /// Where to send the browser.
        redirect_to: String,
    },
    /// A user connected an upstream: its token is in the vault.
    Upstream {
        /// The upstream id.
        upstream: String,
        /// The user id the token is stored for.
        user: String,
        /// Who the provider says authorized it.
        provider_user: UserInfo,
        /// Where to send the browser.
        redirect_to: String,
    },
}

/// A signed session token. `Debug` does not show it.
#[derive(Clone)]
pub struct SessionToken(String);

impl SessionToken {
    /// The JWT.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken([redacted])")
    }
}

/// What a callback must match, beyond its signature (see [`OAuthClient::callback_expecting`]).
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct Expected {
    upstream: Option<String>,
    user: Option<String>,
}

impl Expected {
    flow_owner_setters!(
        upstream: "The flow must be for this upstream (gateway) id; otherwise\n\
                   `State parameter gateway mismatch`.",
        user: "The flow must have been started by this user; otherwise\n\
               `State parameter user mismatch`."
    );
}

fn log_state_error(e: StateError) {
    match e {
        StateError::InvalidSignature => {
            tracing::warn!(
                reason = e.reason(),
                "Invalid state signature - possible CSRF attack"
            );
        }
        StateError::Expired => tracing::warn!(reason = e.reason(), "State has expired"),
        StateError::AlreadyUsed => {
            tracing::warn!(
                reason = e.reason(),
                "State was already used - possible replay attack"
            );
        }
        StateError::Mismatch("gateway") => {
            tracing::warn!(reason = e.reason(), "State parameter gateway mismatch");
        }
        StateError::Mismatch(_) => tracing::warn!(reason = e.reason(), "{e}"),
        StateError::Unknown => {
            tracing::warn!(reason = e.reason(), "State not found in the state store")
        }
        StateError::Missing => tracing::info!(reason = e.reason(), "Missing state parameter"),
    }
}

impl OAuthClient {
    /// Completes a flow from the provider's redirect (`?code=&state=` or `?error=&state=`).
    /// The request's cookies (browser binding) and identity (user binding) are checked too.
    ///
    /// # Errors
    ///
    /// Every [`StateError`] (each also logged), a provider error, or a store error.
    pub async fn callback(&self, request: &Parts) -> Result<CallbackOutcome, OAuthError> {
        self.callback_expecting(request, &Expected::default()).await
    }

    /// [`callback`](Self::callback), also requiring the flow to match `expected` (for
    /// example the upstream a gateway-specific callback serves).
    ///
    /// # Errors
    ///
    /// As [`callback`](Self::callback).
    pub async fn callback_expecting(
        &self,
        request: &Parts,
        expected: &Expected,
    ) -> Result<CallbackOutcome, OAuthError> {
        let result = self.complete(request, expected).await;
        if let Err(OAuthError::State(e)) = &result {
            log_state_error(*e);
        }
        result
    }

    async fn complete(
        &self,
        request: &Parts,
        expected: &Expected,
    ) -> Result<CallbackOutcome, OAuthError> {
        let query = request.uri.query().unwrap_or("");
        let [code, state, error, iss]: [Option<String>; 4] =
            query_params(query, &["code", "state", "error", "iss"])?
                .try_into()
                .map_err(|_| OAuthError::InvalidRequest("bad parameters"))?;
        let Some(state) = state else {
            return Err(match error {
                Some(code) => OAuthError::ProviderDenied {
                    code: sanitize_code(&code),
                },
                None => StateError::Missing.into(),
            });
        };
        let payload = self.inner.signer.verify(&state)?;
        let now = now_ms();
        let ttl_ms = u64::try_from(self.inner.state_ttl.as_millis()).unwrap_or(u64::MAX);
        if now > payload.t.saturating_add(ttl_ms) {
            return Err(StateError::Expired.into());
        }
        if payload.t > now.saturating_add(CLOCK_SKEW_MS) {
            tracing::warn!("OAuth state issued in the future: are the instances' clocks in sync?");
            return Err(StateError::Expired.into());
        }
        let provider = self
            .inner
            .providers
            .get(&payload.p)
            .ok_or(OAuthError::UnknownProvider)?;
        if let Some(iss) = &iss {
            // RFC 9207: the provider names itself; a mix-up attack shows another issuer.
            if !provider.issuer_matches(iss) {
                return Err(StateError::Mismatch("provider").into());
            }
        }
        if let Some(want) = &expected.upstream {
            if payload.g.as_ref() != Some(want) {
                return Err(StateError::Mismatch("gateway").into());
            }
        }
        if let Some(want) = &expected.user {
            if payload.u.as_ref() != Some(want) {
                return Err(StateError::Mismatch("user").into());
            }
        }
        if let (Some(bound), Some(current)) = (&payload.u, request_user(request)) {
            if *bound != current {
                return Err(StateError::Mismatch("user").into());
            }
        }
        if self.inner.bind_browser && !self.flow_cookie_matches(&request.headers, &payload.n) {
            return Err(StateError::Mismatch("browser").into());
        }
        // Claim the state first: of racing callbacks exactly one inserts the marker.
        let used_key = self.key("used", &payload.n);
        let marker_ttl = self.inner.state_ttl + Duration::from_millis(CLOCK_SKEW_MS);
        if !self
            .inner
            .store
            .insert_if_absent(&used_key, vec![1], marker_ttl)
            .await?
        {
            return Err(StateError::AlreadyUsed.into());
        }
        let taken = match self.inner.store.take(&self.key("state", &payload.n)).await {
            Ok(taken) => taken,
            Err(e) => {
                // The state was not consumed: release the claim so a retry can succeed.
                let _ = self.inner.store.delete(&used_key).await;
                return Err(e.into());
            }
        };
        let Some(raw) = taken else {
            // Not ours to keep claimed: a retry of an unknown state stays "unknown".
            let _ = self.inner.store.delete(&used_key).await;
            return Err(StateError::Unknown.into());
        };
        let record: FlowRecord =
            serde_json::from_slice(&raw).map_err(|_| OAuthError::State(StateError::Unknown))?;
        if !bool::from(record.h.as_bytes().ct_eq(sha256_b64(&state).as_bytes())) {
            return Err(StateError::Unknown.into());
        }
        if record.g != payload.g {
            return Err(StateError::Mismatch("gateway").into());
        }
        if record.p != payload.p {
            return Err(StateError::Mismatch("provider").into());
        }
        if record.u != payload.u {
            return Err(StateError::Mismatch("user").into());
        }
        tracing::debug!(provider = %payload.p, "Validated OAuth state");
        if let Some(code) = error {
            let code = sanitize_code(&code);
            tracing::info!(provider = %payload.p, error = %code, "the provider refused the sign-in");
            return Err(OAuthError::ProviderDenied { code });
        }
        let code = code
            .filter(|c| !c.is_empty())
            .ok_or(OAuthError::InvalidRequest(
                "The callback has no authorization code",
            ))?;
        if code.len() > MAX_CODE {
            return Err(OAuthError::InvalidRequest(
                "The authorization code is too long",
            ));
        }
        let verifier = PkceVerifier::new(record.v).ok_or(OAuthError::State(StateError::Unknown))?;
        let tokens: TokenResponse = provider
            .client
            .exchange_code(AuthorizationCode::new(code))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.secret().to_owned()))
            .request_async(&self.inner.http)
            .await
            .map_err(token_error)?;
        let user = provider.user(&self.inner.http, &tokens, &record.o).await?;
        match (payload.g, payload.u) {
            (Some(upstream), Some(owner)) => {
                let vault = self
                    .inner
                    .vault
                    .as_ref()
                    .ok_or(OAuthError::UnknownProvider)?;
                vault
                    .save(&upstream, &owner, &upstream_token(&tokens))
                    .await?;
                tracing::info!(provider = %payload.p, %upstream, "Completed OAuth flow for upstream");
                Ok(CallbackOutcome::Upstream {
                    upstream,
                    user: owner,
                    provider_user: user,
                    redirect_to: payload.r,
                })
            }
            _ => {
                if let Some(policy) = &self.inner.policy {
                    let github = provider.github_api().map(|base| GithubApi {
                        http: &self.inner.http,
                        base,
                        token: tokens.access_token().secret(),
                    });
                    if !policy.allows(&user, github).await {
                        // The id is the operator's to see; the answer names nothing.
                        tracing::warn!(provider = %payload.p, user_id = %user.user_id, "OAuth login refused by the login policy");
                        return Err(OAuthError::AccessDenied);
                    }
                }
                if self.inner.keep_login_tokens {
                    if let Some(vault) = &self.inner.vault {
                        vault
                            .save(&payload.p, &user.user_id, &upstream_token(&tokens))
                            .await?;
                    }
                }
                let session = match &self.inner.session {
                    Some(config) => Some(SessionToken(config.issue(&user).map_err(|_| {
                        OAuthError::Provider("the session token could not be signed".into())
                    })?)),
                    None => None,
                };
                tracing::info!(provider = %payload.p, "Completed OAuth login");
                Ok(CallbackOutcome::Login {
                    user,
                    session,
                    redirect_to: payload.r,
                })
            }
        }
    }

    /// The `302` (with cookies) that ends a successful callback.
    pub(crate) fn success_response(
        &self,
        request: &Parts,
        outcome: &CallbackOutcome,
    ) -> Response<Full<Bytes>> {
        let target = match outcome {
            CallbackOutcome::Login { redirect_to, .. }
            | CallbackOutcome::Upstream { redirect_to, .. } => redirect_to.as_str(),
        };
        let mut res = no_store_redirect(StatusCode::FOUND, target);
        let h = res.headers_mut();
        if let (
            CallbackOutcome::Login {
                session: Some(token),
                ..
            },
            Some(config),
        ) = (outcome, &self.inner.session)
        {
            h.append(SET_COOKIE, config.set_cookie(token.as_str()));
        }
        if self.inner.bind_browser {
            if let Some(nonce) = request
                .uri
                .query()
                .and_then(|q| query_params(q, &["state"]).ok())
                .and_then(|mut v| v.pop().flatten())
                .and_then(|s| self.inner.signer.verify(&s).ok())
                .map(|p| p.n)
            {
                h.append(SET_COOKIE, self.clear_flow_cookie(&nonce));
            }
        }
        res
    }
}
