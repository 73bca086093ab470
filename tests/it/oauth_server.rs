//! The embedded authorization server against a local upstream OIDC provider: discovery,
//! registration, authorize → upstream login → consent → code → token → `POST /mcp`, refresh
//! rotation with reuse detection, revocation, and every RFC 6749 error the issue lists.
#![cfg(feature = "oauth-server")]

use crate::oauth_common;

use std::sync::Arc;

use axum::extract::Extension;
use axum::routing::post;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use oauth_common::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tower_mcp_auth::oauth::server::{
    AuthServer, AuthServerBuilder, Client, Registration, SigningKey,
};
use tower_mcp_auth::oauth::OAuthClient;
use tower_mcp_auth::store::{MemoryStore, StateStore};
use tower_mcp_auth::{EndpointPolicy, Identity, McpAuth};

const REDIRECT: &str = "http://127.0.0.1/cb";
const CONF_SECRET: &str = "confidential-client-secret-0123456789";

struct Server {
    base: String,
    http: reqwest::Client,
    /// The in-process server (`None` for the example process).
    auth: Option<AuthServer>,
}

async fn whoami(Extension(id): Extension<Identity>) -> Json<Value> {
    Json(json!({"user_id": id.user_id(), "scopes": id.scopes().iter().collect::<Vec<_>>()}))
}

/// Serves an authorization server (configured by `configure`) with `POST /mcp` behind its
/// verifier, on a store of the caller's choice.
async fn serve_with(
    provider: &LocalProvider,
    store: Arc<dyn StateStore>,
    configure: impl FnOnce(AuthServerBuilder) -> AuthServerBuilder,
) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    serve_on(listener, &base, provider, store, configure).await
}

/// [`serve_with`] on `listener`, for the public URL `issuer` (several instances behind one
/// load balancer share it, its callback and the store).
async fn serve_on(
    listener: tokio::net::TcpListener,
    issuer: &str,
    provider: &LocalProvider,
    store: Arc<dyn StateStore>,
    configure: impl FnOnce(AuthServerBuilder) -> AuthServerBuilder,
) -> Server {
    let base = format!("http://{}", listener.local_addr().unwrap());
    let callback = format!("{issuer}/auth/oauth/callback");
    provider.register(&callback);
    let oauth = OAuthClient::builder(callback)
        .provider(provider.oidc())
        .state_secret(STATE_SECRET)
        .store_shared(Arc::clone(&store))
        .allow_any_account()
        .build()
        .await
        .unwrap();
    let builder = AuthServer::builder(issuer, oauth, "oidc")
        .store_shared(store)
        .client(Client::confidential(
            "conf",
            CONF_SECRET,
            ["https://app.example/cb"],
        ))
        .client(Client::public("no-refresh", [REDIRECT]).without_refresh());
    let auth = configure(builder).build().unwrap();
    let app = Router::new()
        .route("/mcp", post(whoami).layer(mcp_auth(&auth)))
        .fallback_service(auth.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Server {
        base,
        http: no_redirects(),
        auth: Some(auth),
    }
}

/// `POST /mcp` takes this server's tokens only (no API keys, no session cookie).
fn mcp_auth(auth: &AuthServer) -> tower_mcp_auth::McpAuthLayer {
    McpAuth::builder()
        .bearer(auth.verifier())
        .endpoint("/mcp", EndpointPolicy::oauth_only())
        .build()
        .unwrap()
}

async fn serve(provider: &LocalProvider) -> Server {
    serve_with(provider, Arc::new(MemoryStore::new()), |b| b).await
}

fn pkce() -> (String, String) {
    let verifier = URL_SAFE_NO_PAD.encode(Sha256::digest(b"x")) + "-verifier";
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

impl Server {
    async fn register(&self, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}/oauth/register", self.base))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn public_client(&self) -> String {
        let res = self
            .register(json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none", "client_name": "Test <Client>"}))
            .await;
        assert_eq!(res.status(), 201);
        let body: Value = res.json().await.unwrap();
        assert!(body.get("client_secret").is_none());
        body["client_id"].as_str().unwrap().to_owned()
    }

    fn authorize_url(
        &self,
        client_id: &str,
        redirect: &str,
        challenge: &str,
        extra: &[(&str, &str)],
    ) -> String {
        let mut pairs = vec![
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
            ("state", "st-1"),
        ];
        pairs.extend_from_slice(extra);
        format!("{}/oauth/authorize?{}", self.base, form(&pairs))
    }

    async fn post_form(&self, path: &str, pairs: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(pairs))
            .send()
            .await
            .unwrap()
    }

    async fn mcp(&self, token: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/mcp", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// authorize → upstream → callback; returns the callback's answer.
    async fn login(&self, browser: &Browser, authorize: &str) -> reqwest::Response {
        let upstream = browser.start(authorize).await;
        let callback = browser.authorize(&upstream).await;
        browser.get(&callback).await
    }

    /// [`login`](Self::login) with the default authorization request of `client_id`.
    async fn login_for(
        &self,
        browser: &Browser,
        client_id: &str,
        challenge: &str,
    ) -> reqwest::Response {
        let url = self.authorize_url(client_id, REDIRECT, challenge, &[]);
        self.login(browser, &url).await
    }

    /// The consent form's hidden field.
    fn hidden(page: &str, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = page.find(&marker).unwrap() + marker.len();
        page[start..].split('"').next().unwrap().to_owned()
    }

    async fn decide(&self, browser: &Browser, page: &str, decision: &str) -> reqwest::Response {
        let (ticket, csrf) = (Self::hidden(page, "ticket"), Self::hidden(page, "csrf"));
        let res = self
            .http
            .post(format!("{}/oauth/consent", self.base))
            .header("cookie", browser.cookie_header())
            .header("origin", &self.base)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[
                ("ticket", &ticket),
                ("csrf", &csrf),
                ("decision", decision),
            ]))
            .send()
            .await
            .unwrap();
        browser.keep_cookies(&res);
        res
    }

    /// The whole browser part; returns the code.
    async fn code(&self, browser: &Browser, client_id: &str, challenge: &str) -> String {
        let res = self
            .login(
                browser,
                &self.authorize_url(client_id, REDIRECT, challenge, &[]),
            )
            .await;
        let back = if res.status() == 200 {
            let page = res.text().await.unwrap();
            assert!(page.contains("Test &lt;Client&gt;"), "{page}");
            assert!(page.contains(r#"<button name="decision" value="approve">"#));
            assert!(page.contains(r#"<button name="decision" value="deny">"#));
            let res = self.decide(browser, &page, "approve").await;
            assert_eq!(res.status(), 303);
            location(&res)
        } else {
            assert_eq!(res.status(), 302, "remembered consent");
            location(&res)
        };
        assert!(back.starts_with(REDIRECT), "{back}");
        assert_eq!(param(&back, "state").as_deref(), Some("st-1"));
        assert_eq!(param(&back, "iss").as_deref(), Some(self.base.as_str()));
        param(&back, "code").unwrap()
    }

    async fn exchange(&self, client_id: &str, code: &str, verifier: &str) -> reqwest::Response {
        let resource = format!("{}/mcp", self.base);
        self.exchange_at(client_id, code, verifier, REDIRECT, &resource)
            .await
    }

    async fn exchange_at(
        &self,
        client_id: &str,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
        resource: &str,
    ) -> reqwest::Response {
        self.post_form(
            "/oauth/token",
            &[
                ("grant_type", "authorization_code"),
                ("client_id", client_id),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("code_verifier", verifier),
                ("resource", resource),
            ],
        )
        .await
    }

    async fn get_json(&self, path: &str) -> Value {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
        res.json().await.unwrap()
    }

    async fn refresh(&self, client_id: &str, refresh: &str) -> reqwest::Response {
        self.post_form(
            "/oauth/token",
            &[
                ("grant_type", "refresh_token"),
                ("client_id", client_id),
                ("refresh_token", refresh),
            ],
        )
        .await
    }

    async fn tokens(&self, browser: &Browser, client_id: &str) -> Value {
        let (verifier, challenge) = pkce();
        let code = self.code(browser, client_id, &challenge).await;
        let res = self.exchange(client_id, &code, &verifier).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["cache-control"], "no-store");
        res.json().await.unwrap()
    }
}

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn metadata_documents_and_jwks() {
    let provider = LocalProvider::start().await;
    let s = serve(&provider).await;
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let doc = s.get_json(path).await;
        assert_eq!(doc["issuer"], s.base);
        assert_eq!(
            doc["authorization_endpoint"],
            format!("{}/oauth/authorize", s.base)
        );
        assert_eq!(doc["token_endpoint"], format!("{}/oauth/token", s.base));
        assert_eq!(
            doc["registration_endpoint"],
            format!("{}/oauth/register", s.base)
        );
        assert_eq!(
            doc["revocation_endpoint"],
            format!("{}/oauth/revoke", s.base)
        );
        assert_eq!(doc["response_types_supported"], json!(["code"]));
        assert_eq!(
            doc["grant_types_supported"],
            json!(["authorization_code", "refresh_token"])
        );
        assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
        assert!(doc["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("none")));
        assert_eq!(doc["scopes_supported"], json!(["mcp:tools"]));
    }
    let prm = s
        .get_json("/.well-known/oauth-protected-resource/mcp")
        .await;
    assert_eq!(prm["resource"], format!("{}/mcp", s.base));
    assert_eq!(prm["authorization_servers"], json!([s.base]));
    assert_eq!(prm["scopes_supported"], json!(["mcp:tools"]));
    let jwks = s.get_json("/oauth/jwks.json").await;
    assert_eq!(jwks["keys"][0]["alg"], "ES256");
    assert!(jwks["keys"][0].get("d").is_none(), "no private part");
    for (path, status) in [("/oauth/token", 405), ("/nothing", 404)] {
        let res = s
            .http
            .get(format!("{}{path}", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), status, "{path}");
    }
}

#[tokio::test]
async fn full_flow_then_mcp_refresh_rotation_and_reuse_detection() {
    let provider = LocalProvider::start().await;
    let s = serve(&provider).await;
    let client = s.public_client().await;
    let browser = Browser::new();
    let tokens = s.tokens(&browser, &client).await;
    let access = tokens["access_token"].as_str().unwrap();
    let c = claims(access);
    assert_eq!(c["iss"], s.base);
    assert_eq!(c["aud"], format!("{}/mcp", s.base));
    assert_eq!(c["sub"], oidc_user_id(&provider, SUB));
    assert_eq!(c["client_id"], client);
    assert_eq!(c["scope"], "mcp:tools");
    assert!(c["jti"].is_string() && c["exp"].is_u64());
    assert_eq!(tokens["token_type"], "Bearer");

    let res = s.mcp(access).await;
    assert_eq!(res.status(), 200);
    let who: Value = res.json().await.unwrap();
    assert_eq!(who["user_id"], oidc_user_id(&provider, SUB));
    assert_eq!(who["scopes"], json!(["mcp:tools"]));

    // The upstream provider's own token is not ours: 401, no passthrough.
    let upstream = id_token(&provider.base, CLIENT_ID, "n");
    assert_eq!(s.mcp(&upstream).await.status(), 401);

    // Rotation: the old refresh token is spent, the new one works...
    let r1 = tokens["refresh_token"].as_str().unwrap();
    let res = s.refresh(&client, r1).await;
    assert_eq!(res.status(), 200);
    let rotated: Value = res.json().await.unwrap();
    let r2 = rotated["refresh_token"].as_str().unwrap();
    assert_ne!(r1, r2);
    assert_eq!(
        s.mcp(rotated["access_token"].as_str().unwrap())
            .await
            .status(),
        200
    );
    // ...and presenting the spent one again revokes the family: r2 stops working too.
    assert_oauth_error(s.refresh(&client, r1).await, 400, "invalid_grant").await;
    assert_oauth_error(s.refresh(&client, r2).await, 400, "invalid_grant").await;
}

#[tokio::test]
async fn consent_is_remembered_and_deny_returns_access_denied() {
    let provider = LocalProvider::start().await;
    let s = serve(&provider).await;
    let client = s.public_client().await;
    let (_, challenge) = pkce();

    // Deny: back to the client with access_denied, state and iss.
    let browser = Browser::new();
    let res = s.login_for(&browser, &client, &challenge).await;
    assert_eq!(res.status(), 200);
    let page = res.text().await.unwrap();
    // A forged post (no anti-CSRF cookie) is refused with a page and burns nothing.
    let forged = s
        .post_form(
            "/oauth/consent",
            &[
                ("ticket", &Server::hidden(&page, "ticket")),
                ("csrf", "guess"),
                ("decision", "approve"),
            ],
        )
        .await;
    assert_eq!(forged.status(), 400);
    assert!(forged.headers().get("location").is_none());
    let res = s.decide(&browser, &page, "deny").await;
    assert_eq!(res.status(), 303);
    let back = location(&res);
    assert_eq!(param(&back, "error").as_deref(), Some("access_denied"));
    assert_eq!(param(&back, "state").as_deref(), Some("st-1"));
    // The same form cannot be replayed.
    assert_eq!(s.decide(&browser, &page, "approve").await.status(), 400);

    // Approve once; the next authorization of the same client skips the page.
    s.code(&browser, &client, &challenge).await;
    let res = s.login_for(&browser, &client, &challenge).await;
    assert_eq!(res.status(), 302);
    assert!(param(&location(&res), "code").is_some());
    // Until it is revoked.
    s.auth
        .as_ref()
        .unwrap()
        .revoke_consent(&oidc_user_id(&provider, SUB), &client)
        .await
        .unwrap();
    assert_eq!(
        s.login_for(&browser, &client, &challenge).await.status(),
        200
    );
}

#[tokio::test]
async fn authorize_errors_are_pages_until_the_redirect_is_trusted() {
    let provider = LocalProvider::start().await;
    let s = serve(&provider).await;
    let client = s.public_client().await;
    let (_, challenge) = pkce();
    // Unknown client, unregistered redirect URI: 400 page, never a redirect.
    for url in [
        s.authorize_url("nobody", REDIRECT, &challenge, &[]),
        s.authorize_url(&client, "https://evil.example/cb", &challenge, &[]),
        s.authorize_url(&client, "http://127.0.0.1/other", &challenge, &[]),
    ] {
        let res = s.http.get(&url).send().await.unwrap();
        assert_eq!(res.status(), 400, "{url}");
        assert!(res.headers().get("location").is_none());
        assert!(res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
    }
    // A loopback redirect URI may use any port (RFC 8252).
    let res = s
        .http
        .get(s.authorize_url(&client, "http://127.0.0.1:49152/cb", &challenge, &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    assert!(location(&res).starts_with(&provider.base));
    // Errors after that go back to the client, with state and iss.
    for (extra, code) in [
        (
            vec![("resource", "https://other.example/mcp")],
            "invalid_target",
        ),
        (vec![("scope", "admin")], "invalid_scope"),
    ] {
        let res = s
            .http
            .get(s.authorize_url(&client, REDIRECT, &challenge, &extra))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 302);
        let back = location(&res);
        assert!(back.starts_with(REDIRECT), "{back}");
        assert_eq!(param(&back, "error").as_deref(), Some(code));
        assert_eq!(param(&back, "state").as_deref(), Some("st-1"));
        assert_eq!(param(&back, "iss").as_deref(), Some(s.base.as_str()));
    }
    let plain = format!(
        "{}/oauth/authorize?{}",
        s.base,
        form(&[
            ("response_type", "code"),
            ("client_id", &client),
            ("redirect_uri", REDIRECT),
            ("code_challenge", &challenge),
            ("code_challenge_method", "plain")
        ])
    );
    let back = location(&s.http.get(plain).send().await.unwrap());
    assert_eq!(param(&back, "error").as_deref(), Some("invalid_request"));
}

#[tokio::test]
async fn token_endpoint_errors() {
    let provider = LocalProvider::start().await;
    let s = serve(&provider).await;
    let client = s.public_client().await;
    let browser = Browser::new();
    let (verifier, challenge) = pkce();

    assert_oauth_error(
        s.post_form("/oauth/token", &[("client_id", &client)]).await,
        400,
        "invalid_request",
    )
    .await;
    assert_oauth_error(
        s.post_form(
            "/oauth/token",
            &[("grant_type", "password"), ("client_id", &client)],
        )
        .await,
        400,
        "unsupported_grant_type",
    )
    .await;
    assert_oauth_error(
        s.post_form(
            "/oauth/token",
            &[
                ("grant_type", "authorization_code"),
                ("client_id", &client),
                ("grant_type", "x"),
            ],
        )
        .await,
        400,
        "invalid_request",
    )
    .await;
    assert_oauth_error(
        s.post_form(
            "/oauth/token",
            &[
                ("grant_type", "authorization_code"),
                ("client_id", "nobody"),
                ("code", "x"),
            ],
        )
        .await,
        401,
        "invalid_client",
    )
    .await;
    // A confidential client with a wrong secret, and without one.
    let basic = URL_SAFE_NO_PAD.encode("conf:wrong");
    let res = s
        .http
        .post(format!("{}/oauth/token", s.base))
        .header("authorization", format!("Basic {basic}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=authorization_code&code=x")
        .send()
        .await
        .unwrap();
    assert_oauth_error(res, 401, "invalid_client").await;
    assert_oauth_error(
        s.post_form(
            "/oauth/token",
            &[
                ("grant_type", "authorization_code"),
                ("client_id", "conf"),
                ("code", "x"),
            ],
        )
        .await,
        401,
        "invalid_client",
    )
    .await;
    // The right secret gets past authentication to the code check.
    assert_oauth_error(
        s.post_form(
            "/oauth/token",
            &[
                ("grant_type", "authorization_code"),
                ("client_id", "conf"),
                ("client_secret", CONF_SECRET),
                ("code", "x"),
                ("code_verifier", &verifier),
                ("redirect_uri", "https://app.example/cb"),
            ],
        )
        .await,
        400,
        "invalid_grant",
    )
    .await;
    // A client without the refresh grant.
    assert_oauth_error(
        s.refresh("no-refresh", "whatever").await,
        400,
        "unauthorized_client",
    )
    .await;

    // A wrong verifier spends the code; the right one then fails too (single use).
    let code = s.code(&browser, &client, &challenge).await;
    assert_oauth_error(
        s.exchange(&client, &code, &"w".repeat(43)).await,
        400,
        "invalid_grant",
    )
    .await;
    assert_oauth_error(
        s.exchange(&client, &code, &verifier).await,
        400,
        "invalid_grant",
    )
    .await;
    // A replayed code.
    let code = s.code(&browser, &client, &challenge).await;
    assert_eq!(s.exchange(&client, &code, &verifier).await.status(), 200);
    assert_oauth_error(
        s.exchange(&client, &code, &verifier).await,
        400,
        "invalid_grant",
    )
    .await;
    // Another redirect URI, another resource.
    let resource = format!("{}/mcp", s.base);
    for (redirect, resource, error) in [
        ("http://127.0.0.1/x", resource.as_str(), "invalid_grant"),
        (REDIRECT, "https://other.example/mcp", "invalid_target"),
    ] {
        let code = s.code(&browser, &client, &challenge).await;
        let res = s
            .exchange_at(&client, &code, &verifier, redirect, resource)
            .await;
        assert_oauth_error(res, 400, error).await;
    }
    // A refresh asking for more than the grant.
    let tokens = s.tokens(&browser, &client).await;
    let res = s
        .post_form(
            "/oauth/token",
            &[
                ("grant_type", "refresh_token"),
                ("client_id", &client),
                ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
                ("scope", "mcp:tools admin"),
            ],
        )
        .await;
    assert_oauth_error(res, 400, "invalid_scope").await;
}

#[tokio::test]
async fn revoked_refresh_token_is_invalid_grant() {
    let provider = LocalProvider::start().await;
    let s = serve(&provider).await;
    let client = s.public_client().await;
    let tokens = s.tokens(&Browser::new(), &client).await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let res = s
        .post_form(
            "/oauth/revoke",
            &[("client_id", &client), ("token", refresh)],
        )
        .await;
    assert_eq!(res.status(), 200);
    // Unknown tokens are 200 too (RFC 7009 §2.2); a missing one is invalid_request.
    assert_eq!(
        s.post_form(
            "/oauth/revoke",
            &[("client_id", &client), ("token", "unknown")]
        )
        .await
        .status(),
        200
    );
    assert_oauth_error(
        s.post_form("/oauth/revoke", &[("client_id", &client)])
            .await,
        400,
        "invalid_request",
    )
    .await;
    assert_oauth_error(s.refresh(&client, refresh).await, 400, "invalid_grant").await;
}

#[tokio::test]
async fn registration_can_be_gated_or_off_and_checks_metadata() {
    let provider = LocalProvider::start().await;
    let s = serve(&provider).await;
    let res = s
        .register(json!({"redirect_uris": ["http://evil.example/cb"]}))
        .await;
    assert_oauth_error(res, 400, "invalid_redirect_uri").await;
    let res = s
        .register(json!({"redirect_uris": ["https://app.example/cb"], "grant_types": ["password"]}))
        .await;
    assert_oauth_error(res, 400, "invalid_client_metadata").await;
    // Confidential registration: a secret that authenticates at the token endpoint.
    let res = s
        .register(json!({"redirect_uris": ["https://app.example/cb"]}))
        .await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_endpoint_auth_method"], "client_secret_basic");
    let (id, secret) = (
        body["client_id"].as_str().unwrap(),
        body["client_secret"].as_str().unwrap(),
    );
    let res = s
        .post_form(
            "/oauth/revoke",
            &[("client_id", id), ("client_secret", secret), ("token", "x")],
        )
        .await;
    assert_eq!(res.status(), 200);

    let gated = serve_with(&provider, Arc::new(MemoryStore::new()), |b| {
        b.registration(Registration::InitialAccessToken("iat-secret".into()))
    })
    .await;
    let res = gated.register(json!({"redirect_uris": [REDIRECT]})).await;
    assert_eq!(res.status(), 400);
    let res = gated
        .http
        .post(format!("{}/oauth/register", gated.base))
        .bearer_auth("iat-secret")
        .json(&json!({"redirect_uris": [REDIRECT]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);

    let off = serve_with(&provider, Arc::new(MemoryStore::new()), |b| {
        b.registration(Registration::Off)
    })
    .await;
    assert_eq!(
        off.register(json!({"redirect_uris": [REDIRECT]}))
            .await
            .status(),
        400
    );
    let doc = off
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert!(doc.get("registration_endpoint").is_none());
}

#[tokio::test]
async fn rotated_signing_keys_keep_old_tokens_valid() {
    let provider = LocalProvider::start().await;
    let old = SigningKey::generate_ed25519();
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    let s = serve_with(&provider, Arc::clone(&store), |b| {
        b.signing_key(old.clone())
    })
    .await;
    let client = s.public_client().await;
    let tokens = s.tokens(&Browser::new(), &client).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(access.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["kid"], old.kid());
    assert_eq!(s.mcp(&access).await.status(), 200);

    // A server with a new key and the old one retired: the JWKS lists both (new first), and
    // a token the old key signed still verifies; a token of an unknown key does not.
    let old_pem = SigningKey::from_pem(&old.to_pem()).unwrap();
    let rotated = serve_with(&provider, store, |b| {
        b.signing_key(SigningKey::generate_es256())
            .previous_key(old_pem)
    })
    .await;
    let jwks = rotated.get_json("/oauth/jwks.json").await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    assert_eq!(jwks["keys"][0]["alg"], "ES256");
    assert_eq!(jwks["keys"][1]["kid"], old.kid());
    let sign = |key: &SigningKey| {
        tower_mcp_auth::bearer::install_crypto_provider();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(key.kid().to_owned());
        let claims = json!({"iss": rotated.base, "aud": format!("{}/mcp", rotated.base), "sub": "oidc:x",
            "scope": "mcp:tools", "exp": 4_000_000_000u64});
        jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_ed_pem(key.to_pem().as_bytes()).unwrap(),
        )
        .unwrap()
    };
    assert_eq!(rotated.mcp(&sign(&old)).await.status(), 200);
    assert_eq!(
        rotated
            .mcp(&sign(&SigningKey::generate_ed25519()))
            .await
            .status(),
        401
    );
    // The first server's token names the first server: refused here.
    assert_eq!(rotated.mcp(&access).await.status(), 401);
}

/// The `oauth_proxy` example with the local provider as its upstream (its callback
/// registered there), or `None` (skip) when the example was not built.
async fn start_proxy(provider: &LocalProvider) -> Option<crate::example_process::Example> {
    start_proxy_with(provider, &[]).await
}

/// [`start_proxy`] with more environment variables.
async fn start_proxy_with(
    provider: &LocalProvider,
    extra: &[(&str, &str)],
) -> Option<crate::example_process::Example> {
    let mut env = vec![
        ("OAUTH_PROVIDER", "oidc"),
        ("OAUTH_ISSUER", provider.base.as_str()),
        ("OAUTH_CLIENT_ID", CLIENT_ID),
        ("OAUTH_CLIENT_SECRET", CLIENT_SECRET),
        ("STATE_SECRET", STATE_SECRET),
        ("MCP_SCOPES", "mcp:tools"),
    ];
    env.extend_from_slice(extra);
    let example = crate::example_process::start("oauth_proxy", &env).await?;
    provider.register(&format!("{}/auth/oauth/callback", example.base));
    Some(example)
}

/// The `oauth_proxy` example as a user runs it: discovery from the 401, registration, login
/// at the upstream, consent, token, then rmcp's own client calling `whoami` with the token.
#[tokio::test]
async fn oauth_proxy_example_end_to_end() {
    use rmcp::model::{CallToolRequestParams, ContentBlock};
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::ServiceExt as _;

    let provider = LocalProvider::start().await;
    let Some(example) = start_proxy(&provider).await else {
        return;
    };
    let s = Server {
        base: example.base.clone(),
        http: no_redirects(),
        auth: None,
    };
    // The server's own discovery comes up as soon as the port does; wait for the upstream's.
    let mut tries = 0;
    let res = loop {
        let res = s.http.post(format!("{}/mcp", s.base)).send().await.unwrap();
        if res.status() == 401 || tries == 100 {
            break res;
        }
        tries += 1;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(res.status(), 401);
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    let prm_url = format!("{}/.well-known/oauth-protected-resource/mcp", s.base);
    assert!(challenge.contains(&prm_url), "{challenge}");
    let prm = s
        .get_json("/.well-known/oauth-protected-resource/mcp")
        .await;
    assert_eq!(prm["authorization_servers"], json!([s.base]));
    let meta = s.get_json("/.well-known/oauth-authorization-server").await;
    assert_eq!(
        meta["registration_endpoint"],
        format!("{}/oauth/register", s.base)
    );

    let client = s.public_client().await;
    let tokens = s.tokens(&Browser::new(), &client).await;
    let access = tokens["access_token"].as_str().unwrap();
    // The upstream's own token is refused.
    assert_eq!(
        s.mcp(&id_token(&provider.base, CLIENT_ID, "n"))
            .await
            .status(),
        401
    );

    let config = StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp", s.base))
        .auth_header(access);
    let transport = StreamableHttpClientTransport::with_client(reqwest::Client::new(), config);
    let mcp = ().serve(transport).await.expect("initialize");
    let result = mcp
        .call_tool(CallToolRequestParams::new("whoami"))
        .await
        .expect("whoami");
    let Some(ContentBlock::Text(text)) = result.content.first() else {
        panic!("whoami answers text");
    };
    let me: Value = serde_json::from_str(&text.text).unwrap();
    assert_eq!(me["user_id"], oidc_user_id(&provider, SUB));
    assert_eq!(me["method"], "bearer");
}

/// Two instances behind one public URL (A's) on one Redis, with one signing key: a flow that
/// starts on A returns from the upstream to B, is approved on A, and its code is redeemed on
/// B; A accepts the token B issued, and refresh reuse detected on A revokes what B rotated.
#[cfg(feature = "redis")]
#[tokio::test]
async fn two_instances_on_one_redis_share_every_flow() {
    use tower_mcp_auth::store::RedisStore;

    let prefix = format!("tma-as-test:{}:", crate::store_common::random_id());
    let mut stores = Vec::new();
    for _ in 0..2 {
        match RedisStore::builder(crate::store_common::redis_url())
            .prefix(&prefix)
            .build()
            .await
        {
            Ok(store) => stores.push(Arc::new(store) as Arc<dyn StateStore>),
            Err(err) => {
                crate::store_common::unreachable("Redis", "REDIS_URL", &err);
                return;
            }
        }
    }
    let provider = LocalProvider::start().await;
    let key = SigningKey::generate_es256();
    let (la, lb) = (
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
    );
    let issuer = format!("http://{}", la.local_addr().unwrap());
    let (sb, sa) = (stores.pop().unwrap(), stores.pop().unwrap());
    let a = serve_on(la, &issuer, &provider, sa, |b| b.signing_key(key.clone())).await;
    let b = serve_on(lb, &issuer, &provider, sb, |b| b.signing_key(key.clone())).await;

    let client = a.public_client().await;
    let (verifier, challenge) = pkce();
    let browser = Browser::new();
    let upstream = browser
        .start(&a.authorize_url(&client, REDIRECT, &challenge, &[]))
        .await;
    let callback = browser.authorize(&upstream).await;
    let on_b = callback.replacen(&a.base, &b.base, 1);
    let res = browser.get(&on_b).await;
    assert_eq!(res.status(), 200, "B shows the consent page");
    let page = res.text().await.unwrap();
    let res = a.decide(&browser, &page, "approve").await;
    assert_eq!(res.status(), 303);
    let code = param(&location(&res), "code").unwrap();
    let res = b
        .exchange_at(
            &client,
            &code,
            &verifier,
            REDIRECT,
            &format!("{issuer}/mcp"),
        )
        .await;
    assert_eq!(res.status(), 200);
    let tokens: Value = res.json().await.unwrap();
    assert_eq!(
        a.mcp(tokens["access_token"].as_str().unwrap())
            .await
            .status(),
        200
    );
    assert_eq!(
        b.mcp(tokens["access_token"].as_str().unwrap())
            .await
            .status(),
        200
    );

    let r1 = tokens["refresh_token"].as_str().unwrap();
    let res = b.refresh(&client, r1).await;
    assert_eq!(res.status(), 200);
    let r2: Value = res.json().await.unwrap();
    assert_oauth_error(a.refresh(&client, r1).await, 400, "invalid_grant").await;
    assert_oauth_error(
        b.refresh(&client, r2["refresh_token"].as_str().unwrap())
            .await,
        400,
        "invalid_grant",
    )
    .await;
    crate::store_common::redis_cleanup(prefix).await;
}

/// Serves `doc(url)` at `/client.json` and a redirect to it at `/moved`; returns the base.
async fn serve_document(doc: impl Fn(&str) -> Value + Send + Sync + 'static) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let body = doc(&format!("{base}/client.json"));
    let app = Router::new()
        .route(
            "/client.json",
            axum::routing::get(move || async move { Json(body) }),
        )
        .route(
            "/moved",
            axum::routing::get(|| async { axum::response::Redirect::temporary("/client.json") }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

#[tokio::test]
async fn client_id_metadata_documents() {
    let provider = LocalProvider::start().await;
    let docs = serve_document(|url| {
        json!({"client_id": url, "client_name": "Test <Client>", "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "none"})
    })
    .await;
    let url = format!("{docs}/client.json");
    let s = serve_with(&provider, Arc::new(MemoryStore::new()), |b| {
        b.allow_loopback_metadata_documents(true)
    })
    .await;
    let meta = s.get_json("/.well-known/oauth-authorization-server").await;
    assert_eq!(meta["client_id_metadata_document_supported"], true);
    // The whole flow with the URL as client_id, no registration.
    let tokens = s.tokens(&Browser::new(), &url).await;
    assert_eq!(
        claims(tokens["access_token"].as_str().unwrap())["client_id"],
        url
    );
    let (_, challenge) = pkce();
    // Its redirect_uris are enforced; a redirect is not followed.
    let refused = [
        s.authorize_url(&url, "http://127.0.0.1/elsewhere", &challenge, &[]),
        s.authorize_url(&format!("{docs}/moved"), REDIRECT, &challenge, &[]),
    ];
    // By default loopback (and every private address) is off limits: SSRF protection.
    let strict = serve(&provider).await;
    let https_loopback = format!(
        "https://127.0.0.1:{}/client.json",
        docs.rsplit(':').next().unwrap()
    );
    let strict_refused = [
        strict.authorize_url(&url, REDIRECT, &challenge, &[]),
        strict.authorize_url(&https_loopback, REDIRECT, &challenge, &[]),
    ];
    for u in refused.iter().chain(&strict_refused) {
        let res = s.http.get(u).send().await.unwrap();
        assert_eq!(res.status(), 400, "{u}");
        assert!(res.headers().get("location").is_none());
    }
    // A document whose client_id is not its own URL is refused.
    let liar = serve_document(
        |_| json!({"client_id": "https://other.example/c.json", "redirect_uris": [REDIRECT]}),
    )
    .await;
    let res = s
        .http
        .get(s.authorize_url(&format!("{liar}/client.json"), REDIRECT, &challenge, &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

/// Runs `tests/node/oauth_client.mjs` (the SDK client) against `mcp`; its JSON output.
async fn sdk_client(
    dir: std::path::PathBuf,
    mcp: String,
    redirect: &'static str,
    extra: Vec<std::ffi::OsString>,
) -> Value {
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(dir.join("oauth_client.mjs"))
            .arg(&mcp)
            .arg(redirect)
            .args(&extra)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The official TypeScript SDK client (its own OAuth support) against the `oauth_proxy`
/// example: discovery, dynamic registration, login, consent, token, tool call, refresh.
#[tokio::test]
async fn typescript_sdk_client_logs_in_through_the_oauth_proxy_example() {
    let Some(dir) = crate::node_interop::client_dir() else {
        return;
    };
    let provider = LocalProvider::start().await;
    let Some(example) = start_proxy(&provider).await else {
        return;
    };
    let mcp = format!("{}/mcp", example.base);
    let result = sdk_client(dir, mcp, "http://127.0.0.1:33418/callback", vec![]).await;
    assert_eq!(result["whoami"]["user_id"], oidc_user_id(&provider, SUB));
    assert_eq!(result["whoami"]["method"], "bearer");
    assert_eq!(result["refreshed"], true);
    assert!(result["client_id"].as_str().is_some_and(|c| !c.is_empty()));
}

/// A self-signed server certificate for `127.0.0.1` (openssl's command line tool), as
/// `(cert.pem, key.pem)` in `dir`.
fn self_signed_certificate(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        // Trusted as its own root, so it must not be a CA: webpki refuses a CA certificate
        // as a server's (CaUsedAsEndEntity).
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl (to make the test's certificate)");
    assert!(status.success(), "openssl req failed");
    (cert, key)
}

/// The SDK client again, this time with a Client ID Metadata Document instead of
/// registration: it serves its document over https (a self-signed certificate the example is
/// told to trust with `CIMD_CA_FILE`) and its `client_id` is the document's URL.
#[tokio::test]
async fn typescript_sdk_client_logs_in_with_a_client_id_metadata_document() {
    let Some(dir) = crate::node_interop::client_dir() else {
        return;
    };
    let tmp = std::env::temp_dir().join(format!("cimd-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let (cert, key) = self_signed_certificate(&tmp);
    let provider = LocalProvider::start().await;
    let ca = cert.to_str().unwrap().to_owned();
    let Some(example) = start_proxy_with(
        &provider,
        &[("CIMD_ALLOW_HTTP_LOOPBACK", "true"), ("CIMD_CA_FILE", &ca)],
    )
    .await
    else {
        return;
    };
    let mcp = format!("{}/mcp", example.base);
    let result = sdk_client(
        dir,
        mcp,
        "http://127.0.0.1:33419/callback",
        vec![cert.into_os_string(), key.into_os_string()],
    )
    .await;
    let _ = std::fs::remove_dir_all(&tmp);
    let client_id = result["client_id"].as_str().unwrap();
    assert!(
        client_id.starts_with("https://127.0.0.1:") && client_id.ends_with("/client.json"),
        "{client_id}"
    );
    assert_eq!(result["whoami"]["user_id"], oidc_user_id(&provider, SUB));
    assert_eq!(result["refreshed"], true);
}

/// With `keep_login_tokens`, the upstream provider's tokens of the person who logged in stay
/// on the server (encrypted in the vault) for tool handlers: `upstream_token(provider,
/// identity.user_id())` gives a valid one, refreshed when it is about to expire; the MCP
/// client never sees it.
#[tokio::test]
async fn tool_handlers_get_the_upstream_token_of_the_caller() {
    use axum::extract::State;
    use tower_mcp_auth::oauth::EncryptionKey;

    let provider = LocalProvider::start().await;
    // Expiring within the default 60 s refresh window: the first use refreshes it.
    provider.behave(|b| b.expires_in = 30);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let callback = format!("{base}/auth/oauth/callback");
    provider.register(&callback);
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    let oauth = OAuthClient::builder(callback)
        .provider(provider.oidc())
        .state_secret(STATE_SECRET)
        .store_shared(Arc::clone(&store))
        .allow_any_account()
        .token_encryption_key(EncryptionKey::generate())
        .keep_login_tokens()
        .build()
        .await
        .unwrap();
    let auth = AuthServer::builder(&base, oauth.clone(), "oidc")
        .store_shared(store)
        .build()
        .unwrap();

    async fn upstream(
        State(oauth): State<OAuthClient>,
        Extension(id): Extension<Identity>,
    ) -> Json<Value> {
        match oauth
            .upstream_token("oidc", id.user_id().unwrap_or_default())
            .await
        {
            Ok(token) => Json(json!({"token": token.access_token()})),
            Err(e) => Json(json!({"error": e.to_string()})),
        }
    }
    let app = Router::new()
        .route("/mcp", post(upstream).layer(mcp_auth(&auth)))
        .with_state(oauth.clone())
        .fallback_service(auth.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let s = Server {
        base,
        http: no_redirects(),
        auth: Some(auth),
    };

    let client = s.public_client().await;
    let tokens = s.tokens(&Browser::new(), &client).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(provider.refresh_grants(), 0);
    let res = s.mcp(access).await;
    assert_eq!(res.status(), 200);
    let got: Value = res.json().await.unwrap();
    let upstream_token = got["token"].as_str().unwrap_or_else(|| panic!("{got}"));
    assert!(upstream_token.starts_with("at-"), "{upstream_token}");
    assert_eq!(provider.refresh_grants(), 1, "refreshed before use");
    // Never handed to the MCP client.
    assert!(!tokens.to_string().contains("at-"), "{tokens}");

    // Someone else's id has nothing stored.
    let other = oauth.upstream_token("oidc", "oidc:someone-else").await;
    assert!(other.is_err());
}
