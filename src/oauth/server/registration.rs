//! Clients: registered in code ([`Client`]) or dynamically (RFC 7591), redirect URI
//! matching (exact; loopback in any port, RFC 8252 §7.3) and client authentication at the
//! token endpoint.

use std::fmt;

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use http_body_util::Full;
use serde_json::{json, Value};
use subtle::ConstantTimeEq as _;

use super::errors::ServerError;
use super::records::{both_grants, hash, token, ClientRecord};
use super::{Inner, DEFAULT_CLIENT_TTL};

/// Whether (and how) clients may register themselves at the registration endpoint.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum Registration {
    /// Anyone may register (what MCP clients expect).
    #[default]
    Open,
    /// Registration is off (`registration_endpoint` not advertised).
    Off,
    /// Only with `Authorization: Bearer <initial access token>` (RFC 7591 §3).
    InitialAccessToken(String),
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Registration::Open => "Open",
            Registration::Off => "Off",
            Registration::InitialAccessToken(_) => "InitialAccessToken([redacted])",
        })
    }
}

/// A client registered in code.
///
/// ```
/// use tower_mcp_auth::oauth::server::Client;
///
/// let cli = Client::public("my-cli", ["http://127.0.0.1/callback"]).name("My CLI");
/// let web = Client::confidential("web", "a-long-client-secret", ["https://app.example/cb"]);
/// # let _ = (cli, web);
/// ```
#[must_use]
pub struct Client {
    pub(crate) id: String,
    secret: Option<String>,
    redirect_uris: Vec<String>,
    name: Option<String>,
    grant_types: Vec<String>,
}

impl Client {
    /// A public client (PKCE only, `token_endpoint_auth_method: none`).
    pub fn public<I, S>(id: impl Into<String>, redirect_uris: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            id: id.into(),
            secret: None,
            redirect_uris: redirect_uris.into_iter().map(Into::into).collect(),
            name: None,
            grant_types: both_grants(),
        }
    }

    /// A confidential client authenticating with `client_secret_basic` or `_post`.
    pub fn confidential<I, S>(
        id: impl Into<String>,
        secret: impl Into<String>,
        redirect_uris: I,
    ) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            secret: Some(secret.into()),
            ..Self::public(id, redirect_uris)
        }
    }

    /// The name shown on the consent page.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Only the authorization code grant: no refresh tokens for this client (a refresh
    /// attempt is `unauthorized_client`).
    pub fn without_refresh(mut self) -> Self {
        self.grant_types = vec!["authorization_code".to_owned()];
        self
    }

    pub(crate) fn into_record(self) -> Result<ClientRecord, &'static str> {
        if self.id.is_empty() {
            return Err("empty client id");
        }
        check_redirect_uris(&self.redirect_uris)?;
        Ok(ClientRecord {
            client_id: self.id,
            secret_hash: self.secret.as_deref().map(hash),
            redirect_uris: self.redirect_uris,
            name: self.name,
            grant_types: self.grant_types,
        })
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .field("confidential", &self.secret.is_some())
            .field("redirect_uris", &self.redirect_uris)
            .finish_non_exhaustive()
    }
}

const MAX_REDIRECT_URIS: usize = 10;
const MAX_URI_LEN: usize = 2000;

/// The string members of a client metadata document's `redirect_uris` (registration
/// requests and Client ID Metadata Documents), checked next with [`check_redirect_uris`].
pub(crate) fn redirect_uris(meta: &Value) -> Vec<String> {
    meta["redirect_uris"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Every redirect URI must be absolute, without fragment, https or http on loopback, or a
/// private-use scheme (native apps, RFC 8252 §7.1).
pub(crate) fn check_redirect_uris(uris: &[String]) -> Result<(), &'static str> {
    if uris.is_empty() || uris.len() > MAX_REDIRECT_URIS {
        return Err("redirect_uris must hold 1 to 10 URIs");
    }
    for uri in uris {
        let url = oauth2::url::Url::parse(uri).map_err(|_| "a redirect URI is not absolute")?;
        if uri.len() > MAX_URI_LEN || url.fragment().is_some() {
            return Err("a redirect URI is too long or has a fragment");
        }
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(&url) => {}
            "http" | "javascript" | "data" | "file" | "vbscript" => {
                return Err("a redirect URI must be https (http only on loopback)")
            }
            // A private-use scheme names a native app (`com.example.app:/cb`).
            _ if url.scheme().contains('.') => {}
            _ => return Err("a redirect URI has an unsupported scheme"),
        }
    }
    Ok(())
}

fn is_loopback(url: &oauth2::url::Url) -> bool {
    matches!(url.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"))
}

/// Exact match, except that loopback http URIs may differ in port (RFC 8252 §7.3).
pub(crate) fn redirect_matches(registered: &[String], requested: &str) -> bool {
    if registered.iter().any(|r| r == requested) {
        return true;
    }
    let Ok(want) = oauth2::url::Url::parse(requested) else {
        return false;
    };
    if want.scheme() != "http" || !is_loopback(&want) {
        return false;
    }
    registered.iter().any(|r| {
        oauth2::url::Url::parse(r).is_ok_and(|mut reg| {
            let mut want = want.clone();
            let (a, b) = (reg.set_port(None), want.set_port(None));
            a.is_ok() && b.is_ok() && reg.scheme() == "http" && is_loopback(&reg) && reg == want
        })
    })
}

impl Inner {
    /// A registered client: in code first, then in the store.
    pub(crate) async fn client(&self, id: &str) -> Result<Option<ClientRecord>, ServerError> {
        if let Some(c) = self.clients.iter().find(|c| c.client_id == id) {
            return Ok(Some(c.clone()));
        }
        if id.is_empty() || id.len() > 2000 {
            return Ok(None);
        }
        if super::cimd::is_document_url(id) {
            return match self.cimd {
                true => self.document_client(id).await,
                false => Ok(None),
            };
        }
        self.records.get("client", id).await
    }

    /// The client a token or revocation request is for, authenticated: confidential clients
    /// by their secret (Basic or form, compared as hashes in constant time), public ones by
    /// id only (their codes are bound by PKCE).
    pub(crate) async fn authenticate(
        &self,
        headers: &HeaderMap,
        form: &[(String, String)],
    ) -> Result<ClientRecord, ServerError> {
        let (id, secret) = match basic_credentials(headers) {
            Some(Ok(pair)) => pair,
            Some(Err(())) => return Err(ServerError::client("Malformed Basic credentials")),
            None => (
                field(form, "client_id").unwrap_or_default().to_owned(),
                field(form, "client_secret").map(str::to_owned),
            ),
        };
        if id.is_empty() {
            return Err(ServerError::client("No client_id"));
        }
        let client = self
            .client(&id)
            .await?
            .ok_or(ServerError::client("Unknown client"))?;
        match (&client.secret_hash, secret) {
            (None, None) => Ok(client),
            (Some(want), Some(got)) if bool::from(want.as_bytes().ct_eq(hash(&got).as_bytes())) => {
                Ok(client)
            }
            (None, Some(_)) => Err(ServerError::client(
                "This client is public: it has no secret",
            )),
            _ => Err(ServerError::client("Client authentication failed")),
        }
    }

    /// `POST /oauth/register` (RFC 7591).
    pub(crate) async fn register(
        &self,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Response<Full<Bytes>>, ServerError> {
        match &self.registration {
            Registration::Off => {
                return Err(ServerError::new(
                    "access_denied",
                    "Dynamic client registration is disabled",
                ))
            }
            Registration::InitialAccessToken(want) => {
                let ok = match crate::credentials::bearer(headers) {
                    crate::credentials::Presented::Value(got) => {
                        bool::from(hash(&got).as_bytes().ct_eq(hash(want).as_bytes()))
                    }
                    _ => false,
                };
                if !ok {
                    return Err(ServerError::new(
                        "invalid_token",
                        "Registration needs a valid initial access token",
                    ));
                }
            }
            Registration::Open => {}
        }
        let meta: Value = serde_json::from_slice(body)
            .map_err(|_| ServerError::new("invalid_client_metadata", "The body is not JSON"))?;
        let uris = redirect_uris(&meta);
        check_redirect_uris(&uris).map_err(|d| ServerError::new("invalid_redirect_uri", d))?;
        let method = meta["token_endpoint_auth_method"]
            .as_str()
            .unwrap_or("client_secret_basic");
        let confidential = match method {
            "none" => false,
            "client_secret_basic" | "client_secret_post" => true,
            _ => {
                return Err(ServerError::new(
                    "invalid_client_metadata",
                    "Unsupported token_endpoint_auth_method",
                ))
            }
        };
        let grant_types: Vec<String> = match meta["grant_types"].as_array() {
            Some(list) => list
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            None => both_grants(),
        };
        if !grant_types.iter().any(|g| g == "authorization_code") {
            return Err(ServerError::new(
                "invalid_client_metadata",
                "grant_types must include authorization_code",
            ));
        }
        for (name, allowed) in [
            ("grant_types", &["authorization_code", "refresh_token"][..]),
            ("response_types", &["code"][..]),
        ] {
            if let Some(list) = meta[name].as_array() {
                if list
                    .iter()
                    .any(|v| !v.as_str().is_some_and(|s| allowed.contains(&s)))
                {
                    return Err(ServerError::new(
                        "invalid_client_metadata",
                        "Only authorization_code, refresh_token and code are supported",
                    ));
                }
            }
        }
        let name = meta["client_name"]
            .as_str()
            .map(|s| s.chars().take(100).collect::<String>());
        let client_id = token();
        let secret = confidential.then(token);
        let record = ClientRecord {
            client_id: client_id.clone(),
            secret_hash: secret.as_deref().map(hash),
            redirect_uris: uris.clone(),
            name: name.clone(),
            grant_types: grant_types.clone(),
        };
        self.records
            .put("client", &client_id, &record, DEFAULT_CLIENT_TTL)
            .await?;
        let mut answer = json!({
            "client_id": client_id,
            "client_id_issued_at": crate::oauth::server::token::now_secs(),
            "redirect_uris": uris,
            "token_endpoint_auth_method": method,
            "grant_types": grant_types,
            "response_types": ["code"],
        });
        if let Some(name) = name {
            answer["client_name"] = name.into();
        }
        if let Some(secret) = secret {
            answer["client_secret"] = secret.into();
            answer["client_secret_expires_at"] = 0.into();
        }
        Ok(super::metadata::json(StatusCode::CREATED, &answer))
    }
}

/// A form field (the first occurrence; callers reject repeats where it matters).
pub(crate) fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `Authorization: Basic` client credentials (RFC 6749 §2.3.1: form-urlencoded parts).
fn basic_credentials(headers: &HeaderMap) -> Option<Result<(String, Option<String>), ()>> {
    use base64::Engine as _;
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()
        .and_then(|d| String::from_utf8(d).ok());
    let Some((id, secret)) = decoded.as_deref().and_then(|d| d.split_once(':')) else {
        return Some(Err(()));
    };
    let unescape = |s: &str| -> String {
        form_urlencoded::parse(format!("v={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some(Ok((unescape(id), Some(unescape(secret)))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_redirects_match_in_any_port_only() {
        let reg = vec![
            "http://127.0.0.1/cb".to_owned(),
            "https://app.example/cb".to_owned(),
        ];
        assert!(redirect_matches(&reg, "http://127.0.0.1:53682/cb"));
        assert!(redirect_matches(&reg, "https://app.example/cb"));
        assert!(!redirect_matches(&reg, "https://app.example:8443/cb"));
        assert!(!redirect_matches(&reg, "http://127.0.0.1:5/other"));
        assert!(!redirect_matches(&reg, "https://app.example/cb?x=1"));
        assert!(!redirect_matches(&reg, "http://127.0.0.2:5/cb"));
    }

    #[test]
    fn redirect_uris_are_checked() {
        assert!(check_redirect_uris(&["https://a.example/cb".into()]).is_ok());
        assert!(check_redirect_uris(&["com.example.app:/cb".into()]).is_ok());
        assert!(check_redirect_uris(&["http://evil.example/cb".into()]).is_err());
        assert!(check_redirect_uris(&["javascript:alert(1)".into()]).is_err());
        assert!(check_redirect_uris(&[]).is_err());
    }
}
