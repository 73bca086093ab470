//! Starting a login: [`OAuthClient::start`], its options and the redirect it answers with.

use super::*;

/// Options of a flow started with [`OAuthClient::start`].
///
/// ```
/// use tower_mcp_auth::oauth::StartOptions;
///
/// let login = StartOptions::default().redirect_to("/dashboard");
/// let connect = StartOptions::default().upstream("github-tools").user("alice");
/// # let _ = (login, connect);
/// ```
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct StartOptions {
    upstream: Option<String>,
    user: Option<String>,
    redirect_to: Option<String>,
}

impl StartOptions {
    flow_owner_setters!(
        upstream: "An upstream-token flow for this upstream id (needs [`user`](Self::user)).",
        user: "The logged-in user the flow belongs to."
    );

    /// Where to send the user afterwards; must be an allowed target.
    pub fn redirect_to(mut self, target: impl Into<String>) -> Self {
        self.redirect_to = Some(target.into());
        self
    }
}

/// What [`OAuthClient::start`] returns: the provider URL to send the browser to, and the
/// cookie that ties the flow to that browser.
#[derive(Clone)]
pub struct AuthorizationRedirect {
    url: String,
    cookie: Option<HeaderValue>,
}

impl AuthorizationRedirect {
    /// The provider's authorization URL (with `state`, `code_challenge`, `nonce`...).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The `Set-Cookie` value binding the flow to the browser, when enabled.
    pub fn cookie(&self) -> Option<&HeaderValue> {
        self.cookie.as_ref()
    }

    /// A `302 Found` to the provider, with the cookie and `Cache-Control: no-store`.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        let mut res = no_store_redirect(StatusCode::FOUND, &self.url);
        if let Some(cookie) = self.cookie {
            res.headers_mut().append(SET_COOKIE, cookie);
        }
        res
    }
}

/// An empty `status` redirect to `location` that no cache keeps (every redirect of the flows
/// carries state, cookies or both). A location that is not a valid header value (never one
/// this crate builds) is left out rather than turned into a 500.
pub(crate) fn no_store_redirect(status: StatusCode, location: &str) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::new()));
    *res.status_mut() = status;
    let headers = res.headers_mut();
    if let Ok(location) = HeaderValue::try_from(location) {
        headers.insert(LOCATION, location);
    }
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

impl fmt::Debug for AuthorizationRedirect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL holds the state; it is not a secret once sent, but keep logs short.
        f.debug_struct("AuthorizationRedirect")
            .finish_non_exhaustive()
    }
}

impl OAuthClient {
    /// Starts a flow with `provider`: signs a state, stores the flow (PKCE verifier, OIDC
    /// nonce) for the state TTL with `insert_if_absent`, and returns the provider URL.
    ///
    /// # Errors
    ///
    /// [`OAuthError::UnknownProvider`] (unknown provider or upstream),
    /// [`OAuthError::LoginRequired`] (an upstream flow without user),
    /// [`OAuthError::RedirectNotAllowed`], or [`OAuthError::Store`].
    pub async fn start(
        &self,
        provider: &str,
        options: StartOptions,
    ) -> Result<AuthorizationRedirect, OAuthError> {
        let p = self
            .inner
            .providers
            .get(provider)
            .ok_or(OAuthError::UnknownProvider)?;
        if let Some(upstream) = &options.upstream {
            match self.inner.upstreams.get(upstream) {
                Some(owner) if owner == provider => {}
                _ => return Err(OAuthError::UnknownProvider),
            }
            if options.user.is_none() {
                return Err(OAuthError::LoginRequired);
            }
        }
        let target = self.target(options.redirect_to.as_deref())?;
        let nonce = URL_SAFE_NO_PAD.encode(crate::oauth::random_bytes::<16>());
        let oidc_nonce = URL_SAFE_NO_PAD.encode(crate::oauth::random_bytes::<16>());
        let verifier = PkceVerifier::generate();
        let payload = StatePayload {
            v: 1,
            p: provider.to_owned(),
            g: options.upstream.clone(),
            u: options.user.clone(),
            r: target.clone(),
            t: now_ms(),
            n: nonce.clone(),
        };
        let state = self.inner.signer.sign(&payload);
        let record = FlowRecord {
            h: sha256_b64(&state),
            p: provider.to_owned(),
            g: options.upstream,
            u: options.user,
            r: target,
            v: verifier.secret().to_owned(),
            o: oidc_nonce.clone(),
        };
        let value = serde_json::to_vec(&record).unwrap_or_default();
        let stored = self
            .inner
            .store
            .insert_if_absent(&self.key("state", &nonce), value, self.inner.state_ttl)
            .await?;
        if !stored {
            // 128 random bits collided: refuse rather than overwrite someone's flow.
            return Err(OAuthError::Provider("state nonce collision, retry".into()));
        }
        tracing::debug!(provider, "Stored OAuth state");
        // `generate` makes 86 characters: within PKCE's 43..=128, as `from_code_verifier_sha256` needs.
        let challenge = PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(
            verifier.secret().to_owned(),
        ));
        let mut request = p
            .client
            .authorize_url(|| CsrfToken::new(state))
            .add_scopes(p.scopes.iter().cloned().map(Scope::new))
            .set_pkce_challenge(challenge);
        if p.is_oidc() {
            request = request.add_extra_param("nonce", oidc_nonce);
        }
        for (k, v) in &p.extra_params {
            if !RESERVED_PARAMS.contains(&k.as_str()) {
                request = request.add_extra_param(k.clone(), v.clone());
            }
        }
        let (url, _) = request.url();
        let cookie = self.inner.bind_browser.then(|| {
            // Sent back only to the callback route.
            cookie_header_at(
                &Self::flow_cookie_name(&nonce),
                &self.flow_cookie_value(&nonce),
                self.inner.state_ttl.as_secs().max(1),
                self.inner.flow_cookie_secure,
                &self.inner.callback_path,
            )
        });
        Ok(AuthorizationRedirect {
            url: url.into(),
            cookie,
        })
    }
}
