//! [`OAuthClientBuilder`]: configuration, checked and resolved by `build`.

use super::*;

impl OAuthClientBuilder {
    /// Adds a provider; its [`name`](Provider::name) selects it in the start route.
    pub fn provider(mut self, provider: Provider) -> Self {
        self.providers.push(provider);
        self
    }

    /// The HMAC-SHA256 secret that signs `state` (32+ bytes, the same on every instance).
    pub fn state_secret(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.signer = Some(StateSigner::new(secret));
        self
    }

    /// A signer with several secrets, for rotation; see [`StateSigner::previous`].
    pub fn state_signer(mut self, signer: StateSigner) -> Self {
        self.signer = Some(Ok(signer));
        self
    }

    /// How long a user has to complete a login (default 300 s, at least 1 s).
    pub fn state_ttl(mut self, ttl: Duration) -> Self {
        self.state_ttl = ttl.max(Duration::from_secs(1));
        self
    }

    /// Where flows and upstream tokens are kept (default: a [`MemoryStore`], which only
    /// works with one instance).
    pub fn store(self, store: impl StateStore) -> Self {
        self.store_shared(Arc::new(store))
    }

    /// A store shared with other layers (for example the one from
    /// [`store::connect`](crate::store::connect)).
    pub fn store_shared(mut self, store: Arc<dyn StateStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Issue a session cookie after login.
    pub fn session(mut self, session: SessionConfig) -> Self {
        self.session = Some(session);
        self
    }

    /// Who may log in: checked after the provider vouched for the user and before the
    /// session is issued (and before [`CallbackOutcome::Login`] is returned). A refused
    /// login answers `403 access_denied`, with no session cookie. Required when
    /// [`session`](Self::session) is set. Upstream-token flows (a logged-in user connecting
    /// an account) are not checked: they issue no session.
    ///
    /// ```no_run
    /// use tower_mcp_auth::oauth::{LoginPolicy, OAuthClient, Provider, SessionConfig};
    ///
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let oauth = OAuthClient::builder("https://mcp.example.com/auth/oauth/callback")
    ///     .provider(Provider::google("id", "secret"))
    ///     .state_secret(std::env::var("STATE_SECRET")?)
    ///     .session(SessionConfig::new(std::env::var("SESSION_SECRET")?)?)
    ///     .login_policy(LoginPolicy::new().allow_email_domains(["example.com"]))
    ///     .build()
    ///     .await?;
    /// # let _ = oauth; Ok(()) }
    /// ```
    pub fn login_policy(mut self, policy: LoginPolicy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Lets every account the providers vouch for log in ([`LoginPolicy::any_account`]):
    /// any GitHub user, any Google account, any tenant of a multi-tenant Microsoft app. A
    /// warning is logged at build time.
    pub fn allow_any_account(self) -> Self {
        self.login_policy(LoginPolicy::any_account())
    }

    /// Allows `target` as a post-login redirect (`?redirect_to=` on the start route): a path
    /// such as `/dashboard`, or an absolute URL. Only exact matches are followed; the first
    /// allowed target is the default (`/` when none is configured).
    pub fn allow_redirect(mut self, target: impl Into<String>) -> Self {
        self.targets.push(target.into());
        self
    }

    /// Declares an upstream (an MCP server behind a gateway) whose per-user tokens come from
    /// `provider`. Start its flow with `?upstream={id}` on that provider's start route, as a
    /// logged-in user. Needs [`token_encryption_key`](Self::token_encryption_key).
    pub fn upstream(mut self, id: impl Into<String>, provider: impl Into<String>) -> Self {
        self.upstreams.push((id.into(), provider.into()));
        self
    }

    /// Keeps the provider's tokens of every login in the [`TokenVault`] (encrypted, see
    /// [`token_encryption_key`](Self::token_encryption_key)), so the server can call the
    /// provider's API for the logged-in user: each provider becomes an upstream of the same
    /// name, and [`OAuthClient::upstream_token`]`(provider, user_id)` returns a valid token
    /// (refreshed when it expires) for the [`UserInfo::user_id`] that logged in. With the
    /// embedded authorization server that id is the `sub` of the access tokens it issues, so a
    /// tool handler passes [`Identity::user_id`](crate::Identity::user_id). The tokens never
    /// leave the server.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use tower_mcp_auth::oauth::{EncryptionKey, OAuthClient, Provider};
    ///
    /// let oauth = OAuthClient::builder("https://mcp.example.com/auth/oauth/callback")
    ///     .provider(Provider::github("client-id", "client-secret"))
    ///     .state_secret([7u8; 32])
    ///     .allow_any_account()
    ///     .token_encryption_key(EncryptionKey::generate())
    ///     .keep_login_tokens()
    ///     .build()
    ///     .await
    ///     .unwrap();
    /// // In a tool handler, for the caller's identity:
    /// // let token = oauth.upstream_token("github", identity.user_id().unwrap_or_default()).await?;
    /// # let _ = oauth;
    /// # });
    /// ```
    pub fn keep_login_tokens(mut self) -> Self {
        self.keep_login_tokens = true;
        self
    }

    /// The key that encrypts upstream tokens at rest. Call again to add older keys that
    /// still decrypt (rotation); the first one encrypts.
    pub fn token_encryption_key(mut self, key: EncryptionKey) -> Self {
        self.keys.push(key);
        self
    }

    /// Timeout of each request to a provider (default 10 s).
    pub fn http_timeout(mut self, timeout: Duration) -> Self {
        self.http_timeout = timeout;
        self
    }

    /// The start route, with `{provider}` where the provider name goes (default
    /// `/auth/oauth/{provider}/start`).
    pub fn start_path(mut self, template: impl Into<String>) -> Self {
        self.start_path = template.into();
        self
    }

    /// The logout route (default [`DEFAULT_LOGOUT_PATH`], `/auth/logout`): a `POST` there
    /// clears the session cookie and answers `303 See Other` to the default target.
    ///
    /// Session tokens are signed, not stored, so logging out removes the browser's copy; a
    /// token copied out of the browser stays valid until its `exp` (keep the session TTL short).
    pub fn logout_path(mut self, path: impl Into<String>) -> Self {
        self.logout_path = path.into();
        self
    }

    /// Prefix of every store key (default `oauth:`).
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Whether the start route sets a short-lived cookie that the callback must bring back
    /// (default on). It ties the flow to the browser that started it, which stops "login
    /// CSRF" (an attacker sending a victim the callback URL of the attacker's own login).
    /// Turn it off only when the callback is not opened by the browser that started the flow.
    pub fn bind_state_to_browser(mut self, bind: bool) -> Self {
        self.bind_browser = bind;
        self
    }

    /// Upstream tokens expiring within this window are refreshed first (default 60 s).
    pub fn refresh_before_expiry(mut self, skew: Duration) -> Self {
        self.refresh_skew = skew;
        self
    }

    /// Validates the configuration, fetches each OIDC provider's discovery document and
    /// keys, and builds the client.
    ///
    /// # Errors
    ///
    /// A missing or short state secret, a bad redirect URI or target, a non-`Secure` session
    /// cookie on a non-loopback redirect URI, duplicate providers, an upstream without
    /// provider or encryption key, or a provider whose discovery document or keys could not
    /// be fetched.
    pub async fn build(self) -> Result<OAuthClient, OAuthConfigError> {
        let signer = self.signer.ok_or(OAuthConfigError::MissingStateSecret)??;
        let redirect = oauth2::url::Url::parse(&self.redirect_uri)
            .map_err(|_| OAuthConfigError::RedirectUri("not an absolute URL"))?;
        let loopback = is_loopback_http(&self.redirect_uri);
        if redirect.scheme() != "https" && !loopback {
            return Err(OAuthConfigError::RedirectUri(
                "must be https (http only on localhost)",
            ));
        }
        if redirect.fragment().is_some() || redirect.query().is_some() {
            return Err(OAuthConfigError::RedirectUri(
                "must have no query or fragment",
            ));
        }
        let callback_path = redirect.path().to_owned();
        let redirect_url = RedirectUrl::new(self.redirect_uri.clone())
            .map_err(|_| OAuthConfigError::RedirectUri("not an absolute URL"))?;
        if let Some(session) = &self.session {
            if !session.is_secure() && !loopback {
                return Err(OAuthConfigError::Session(
                    "the session cookie can drop `Secure` only with an http://localhost redirect URI",
                ));
            }
            if !session.cookie_name_is_valid() {
                return Err(OAuthConfigError::Session(
                    "the session cookie name is not a valid cookie name",
                ));
            }
        }
        let (start_prefix, start_suffix) = split_start_path(&self.start_path)?;
        if start_prefix == callback_path {
            return Err(OAuthConfigError::StartPath("overlaps the callback path"));
        }
        let logout_path = self.logout_path;
        if !logout_path.starts_with('/') || logout_path.contains(['?', '#']) {
            return Err(OAuthConfigError::LogoutPath(
                "must be an absolute path without query or fragment",
            ));
        }
        let is_start_route = start_route_name(&start_prefix, &start_suffix, &logout_path).is_some();
        if logout_path == callback_path || is_start_route {
            return Err(OAuthConfigError::LogoutPath(
                "overlaps the callback or start path",
            ));
        }
        match &self.policy {
            None if self.session.is_some() => return Err(OAuthConfigError::NoLoginPolicy),
            Some(policy) => policy.validate().map_err(OAuthConfigError::LoginPolicy)?,
            None => {}
        }
        let mut targets = self.targets;
        if targets.is_empty() {
            targets.push("/".to_owned());
        }
        for t in &targets {
            if !valid_target(t) {
                return Err(OAuthConfigError::RedirectTarget(t.clone()));
            }
        }
        if self.providers.is_empty() {
            return Err(OAuthConfigError::NoProviders);
        }
        let http =
            HttpClient::new(self.http_timeout).map_err(|_: HttpError| OAuthConfigError::Http)?;
        let mut providers = HashMap::new();
        for provider in self.providers {
            let name = provider.name().to_owned();
            if providers.contains_key(&name) {
                return Err(OAuthConfigError::DuplicateProvider(name));
            }
            let mut resolved = provider
                .resolve(&http, &redirect_url, is_loopback_http)
                .await?;
            let needs_orgs = self
                .policy
                .as_ref()
                .is_some_and(LoginPolicy::needs_github_orgs);
            if needs_orgs
                && resolved.github_api().is_some()
                && !resolved.scopes.iter().any(|s| s == "read:org")
            {
                // Organization membership is read with the user's token.
                resolved.scopes.push("read:org".to_owned());
            }
            providers.insert(name, Arc::new(resolved));
        }
        let mut upstreams = HashMap::new();
        for (id, provider) in self.upstreams {
            if !providers.contains_key(&provider) {
                return Err(OAuthConfigError::Upstream {
                    upstream: id,
                    reason: "names a provider that is not configured",
                });
            }
            if self.keys.is_empty() {
                return Err(OAuthConfigError::Upstream {
                    upstream: id,
                    reason: "upstream tokens need token_encryption_key",
                });
            }
            upstreams.insert(id, provider);
        }
        if self.keep_login_tokens {
            if self.keys.is_empty() {
                return Err(OAuthConfigError::Upstream {
                    upstream: "keep_login_tokens".to_owned(),
                    reason: "keeping login tokens needs token_encryption_key",
                });
            }
            for name in providers.keys() {
                match upstreams.get(name) {
                    Some(provider) if provider != name => {
                        return Err(OAuthConfigError::Upstream {
                            upstream: name.clone(),
                            reason: "keep_login_tokens names each provider's tokens after it, and this upstream id names another provider",
                        });
                    }
                    _ => {
                        upstreams.insert(name.clone(), name.clone());
                    }
                }
            }
        }
        if let Some(policy) = self.policy.as_ref().filter(|p| !p.is_restricted()) {
            let mut names: Vec<_> = providers.keys().cloned().collect();
            names.sort();
            tracing::warn!(
                providers = ?names,
                ?policy,
                "OAuth login is open to ANY account of these providers (allow_any_account): set a LoginPolicy to restrict it"
            );
        }
        let store = match self.store {
            Some(store) => store,
            None => {
                tracing::info!("OAuth state kept in memory: use a shared store (Redis, PostgreSQL) with more than one instance");
                Arc::new(MemoryStore::new())
            }
        };
        let vault = self.keys.split_first().map(|(first, rest)| {
            rest.iter().fold(
                TokenVault::from_shared(Arc::clone(&store), first.clone()).prefix(&self.prefix),
                |v, k| v.previous_key(k.clone()),
            )
        });
        Ok(OAuthClient {
            inner: Arc::new(Inner {
                providers,
                upstreams,
                store,
                signer,
                state_ttl: self.state_ttl,
                redirect_uri: self.redirect_uri,
                callback_path,
                start_prefix,
                start_suffix,
                logout_path,
                targets,
                session: self.session,
                policy: self.policy,
                vault,
                keep_login_tokens: self.keep_login_tokens,
                http,
                prefix: self.prefix,
                bind_browser: self.bind_browser,
                flow_cookie_secure: redirect.scheme() == "https",
                refresh_skew: self.refresh_skew,
                inflight: Default::default(),
            }),
        })
    }
}

impl fmt::Debug for OAuthClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthClientBuilder")
            .field("redirect_uri", &self.redirect_uri)
            .field("providers", &self.providers)
            .field("state_ttl", &self.state_ttl)
            .field("targets", &self.targets)
            .finish_non_exhaustive()
    }
}

fn split_start_path(template: &str) -> Result<(String, String), OAuthConfigError> {
    if !template.starts_with('/') {
        return Err(OAuthConfigError::StartPath("must start with `/`"));
    }
    let (prefix, suffix) = template
        .split_once("{provider}")
        .ok_or(OAuthConfigError::StartPath("must contain `{provider}`"))?;
    if suffix.contains("{provider}") || !prefix.ends_with('/') {
        return Err(OAuthConfigError::StartPath(
            "needs exactly one `{provider}`, as a whole path segment",
        ));
    }
    if !(suffix.is_empty() || suffix.starts_with('/')) {
        return Err(OAuthConfigError::StartPath(
            "`{provider}` must be a whole path segment",
        ));
    }
    Ok((prefix.to_owned(), suffix.to_owned()))
}

/// A local path (`/x`, not `//x` or `/\x`) or an absolute https (or loopback http) URL.
fn valid_target(t: &str) -> bool {
    if t.chars().any(|c| c.is_control() || c == '\\') {
        return false;
    }
    if t.starts_with('/') {
        return !t.starts_with("//");
    }
    t.starts_with("https://") && oauth2::url::Url::parse(t).is_ok() || is_loopback_http(t)
}
