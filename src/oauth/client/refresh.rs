//! Upstream tokens for gateways: [`OAuthClient::upstream_token`], refreshed once across
//! concurrent callers.

use super::*;

impl OAuthClient {
    /// A valid access token for `user` at `upstream` (`user` is the namespaced user id the
    /// flow was started by: the session's `sub`, [`UserInfo::user_id`]), refreshed first when it expires within
    /// the refresh window. Refreshes are single-flight: one per (upstream, user) in this
    /// process (others wait for it), and one across instances (a short lock in the store;
    /// the others wait for the refreshed token). A refresh token refused with
    /// `invalid_grant` deletes the stored token and gives [`UpstreamError::Revoked`].
    ///
    /// # Errors
    ///
    /// [`UpstreamError`]: not connected, revoked, expired without refresh token, provider
    /// or store failure.
    pub async fn upstream_token(
        &self,
        upstream: &str,
        user: &str,
    ) -> Result<UpstreamToken, UpstreamError> {
        let provider_name = self
            .inner
            .upstreams
            .get(upstream)
            .ok_or(UpstreamError::UnknownUpstream)?;
        let provider = self
            .inner
            .providers
            .get(provider_name)
            .ok_or(UpstreamError::UnknownUpstream)?;
        let vault = self
            .inner
            .vault
            .as_ref()
            .ok_or(UpstreamError::UnknownUpstream)?;
        let skew = self.inner.refresh_skew;
        let not_connected = || UpstreamError::NotConnected {
            upstream: upstream.to_owned(),
        };
        let token = load_connected(vault, upstream, user).await?;
        if !token.expires_within(skew) {
            return Ok(token);
        }
        // One refresh per (upstream, user) in this process.
        let gate = self
            .inner
            .inflight
            .lock_for(&vault.lock_key(upstream, user));
        let _local = gate.lock().await;
        let token = load_connected(vault, upstream, user).await?;
        if !token.expires_within(skew) {
            return Ok(token);
        }
        if !token.has_refresh_token() {
            if token.is_expired() {
                return Err(UpstreamError::Expired {
                    upstream: upstream.to_owned(),
                });
            }
            return Ok(token);
        }
        // And one across instances.
        let lock = vault.lock_key(upstream, user);
        let store = vault.store();
        let deadline = tokio::time::Instant::now() + REFRESH_WAIT;
        let token = loop {
            if store
                .insert_if_absent(&lock, vec![1], REFRESH_LOCK_TTL)
                .await?
            {
                // Someone may have refreshed between our load and the lock.
                match vault.load(upstream, user).await {
                    Ok(Some(t)) if !t.expires_within(skew) => {
                        let _ = store.delete(&lock).await;
                        return Ok(t);
                    }
                    Ok(Some(t)) => break t,
                    Ok(None) => {
                        let _ = store.delete(&lock).await;
                        return Err(not_connected());
                    }
                    Err(e) => {
                        let _ = store.delete(&lock).await;
                        return Err(e.into());
                    }
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(UpstreamError::RefreshInProgress);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            match vault.load(upstream, user).await? {
                Some(t) if !t.expires_within(skew) => return Ok(t),
                Some(_) => {}
                None => return Err(not_connected()),
            }
        };
        let result = self.refresh(provider, vault, upstream, user, &token).await;
        let _ = store.delete(&lock).await;
        result
    }

    async fn refresh(
        &self,
        provider: &ResolvedProvider,
        vault: &TokenVault,
        upstream: &str,
        user: &str,
        old: &UpstreamToken,
    ) -> Result<UpstreamToken, UpstreamError> {
        let Some(refresh) = old.refresh_token_secret() else {
            return Err(UpstreamError::Expired {
                upstream: upstream.to_owned(),
            });
        };
        let refresh = RefreshToken::new(refresh.to_owned());
        let response = provider
            .client
            .exchange_refresh_token(&refresh)
            .request_async(&self.inner.http)
            .await;
        match response {
            Ok(tokens) => {
                let mut fresh = upstream_token(&tokens);
                if !fresh.has_refresh_token() {
                    if let Some(r) = old.refresh_token_secret() {
                        // Providers that do not rotate refresh tokens omit them.
                        fresh = fresh.refresh_token(r);
                    }
                }
                vault.save(upstream, user, &fresh).await?;
                tracing::debug!(upstream, "refreshed an upstream token");
                Ok(fresh)
            }
            Err(e) => match token_error(e) {
                OAuthError::InvalidGrant => {
                    tracing::warn!(
                        upstream,
                        "the upstream refresh token was revoked or expired (invalid_grant); the user must authorize again"
                    );
                    let _ = vault.remove(upstream, user).await;
                    Err(UpstreamError::Revoked {
                        upstream: upstream.to_owned(),
                    })
                }
                OAuthError::ProviderTimeout => Err(UpstreamError::ProviderTimeout),
                other => Err(UpstreamError::Provider(other.to_string().into())),
            },
        }
    }
}

/// The token stored for `user` at `upstream`; [`UpstreamError::NotConnected`] when none is.
async fn load_connected(
    vault: &TokenVault,
    upstream: &str,
    user: &str,
) -> Result<UpstreamToken, UpstreamError> {
    vault
        .load(upstream, user)
        .await?
        .ok_or_else(|| UpstreamError::NotConnected {
            upstream: upstream.to_owned(),
        })
}
