//! `POST /oauth/token` (authorization code with PKCE, refresh token rotation with reuse
//! detection) and `POST /oauth/revoke` (RFC 7009).

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http::header::PRAGMA;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use jsonwebtoken::Header;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

use super::authorize::check_resource;
use super::errors::ServerError;
use super::metadata::json;
use super::records::{hash, token, ClientRecord, Code, Refresh};
use super::service::{single, Form};
use super::Inner;

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// RFC 7636 §4.1: 43 to 128 unreserved characters.
fn valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

impl Inner {
    pub(crate) async fn token(
        &self,
        headers: &HeaderMap,
        form: &Form,
    ) -> Result<Response<Full<Bytes>>, ServerError> {
        let grant =
            single(form, "grant_type")?.ok_or(ServerError::request("grant_type is missing"))?;
        if !matches!(grant, "authorization_code" | "refresh_token") {
            return Err(ServerError::new(
                "unsupported_grant_type",
                "Only authorization_code and refresh_token are supported",
            ));
        }
        let client = self.authenticate(headers, form).await?;
        if !client.grant_types.iter().any(|g| g == grant) {
            return Err(ServerError::new(
                "unauthorized_client",
                "This client may not use this grant type",
            ));
        }
        check_resource(self, form)?;
        match grant {
            "authorization_code" => self.code_grant(&client, form).await,
            _ => self.refresh_grant(&client, form).await,
        }
    }

    async fn code_grant(
        &self,
        client: &ClientRecord,
        form: &Form,
    ) -> Result<Response<Full<Bytes>>, ServerError> {
        let code = single(form, "code")?.ok_or(ServerError::request("code is missing"))?;
        let verifier = single(form, "code_verifier")?.ok_or(ServerError::request(
            "code_verifier is missing (PKCE is required)",
        ))?;
        let redirect_uri = single(form, "redirect_uri")?;
        // Taken whatever follows: a code is used at most once, even by a failed attempt.
        let record: Code =
            self.records
                .take("code", &hash(code))
                .await?
                .ok_or(ServerError::grant(
                    "The code is invalid, expired or already used",
                ))?;
        if record.client_id != client.client_id {
            return Err(ServerError::grant("The code was issued to another client"));
        }
        if redirect_uri != Some(record.redirect_uri.as_str()) {
            return Err(ServerError::grant(
                "redirect_uri does not match the authorization request",
            ));
        }
        let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        if !valid_verifier(verifier)
            || !bool::from(computed.as_bytes().ct_eq(record.challenge.as_bytes()))
        {
            return Err(ServerError::grant(
                "The code_verifier does not match the code_challenge",
            ));
        }
        let family = token();
        self.records
            .put("family", &family, &record.sub, self.refresh_ttl)
            .await?;
        let refresh = Refresh {
            family,
            client_id: client.client_id.clone(),
            scope: record.scope,
            sub: record.sub,
        };
        self.issue(&refresh).await
    }

    async fn refresh_grant(
        &self,
        client: &ClientRecord,
        form: &Form,
    ) -> Result<Response<Full<Bytes>>, ServerError> {
        let presented = single(form, "refresh_token")?
            .ok_or(ServerError::request("refresh_token is missing"))?;
        let key = hash(presented);
        let Some(current) = self.records.get::<Refresh>("refresh", &key).await? else {
            return Err(self.reused(&key).await?);
        };
        if current.client_id != client.client_id {
            return Err(ServerError::grant(
                "The refresh token was issued to another client",
            ));
        }
        let scope = match single(form, "scope")? {
            None => current.scope.clone(),
            Some(asked) => {
                let have: Vec<&str> = current.scope.split_ascii_whitespace().collect();
                let asked: Vec<&str> = asked.split_ascii_whitespace().collect();
                if asked.is_empty() || !asked.iter().all(|s| have.contains(s)) {
                    return Err(ServerError::new(
                        "invalid_scope",
                        "The scope exceeds the original grant",
                    ));
                }
                asked.join(" ")
            }
        };
        // Of concurrent rotations exactly one takes it; the others count as reuse.
        if self
            .records
            .take::<Refresh>("refresh", &key)
            .await?
            .is_none()
        {
            return Err(self.reused(&key).await?);
        }
        if self
            .records
            .get::<String>("family", &current.family)
            .await?
            .is_none()
        {
            return Err(ServerError::grant("The refresh token was revoked"));
        }
        self.records
            .put("rotated", &key, &current.family, self.refresh_ttl)
            .await?;
        self.issue(&Refresh { scope, ..current }).await
    }

    /// A refresh token that is not live: if it was rotated already, someone holds a copy,
    /// so the whole family is revoked (RFC 9700 §4.14.2).
    async fn reused(&self, key: &str) -> Result<ServerError, ServerError> {
        if let Some(family) = self.records.get::<String>("rotated", key).await? {
            tracing::warn!("a rotated refresh token was presented again: revoking its family");
            self.records.delete("family", &family).await?;
            return Ok(ServerError::grant(
                "The refresh token was already used; its grant is revoked",
            ));
        }
        Ok(ServerError::grant(
            "The refresh token is invalid, expired or revoked",
        ))
    }

    /// A new access token and refresh token of `grant`'s family.
    async fn issue(&self, grant: &Refresh) -> Result<Response<Full<Bytes>>, ServerError> {
        let refresh = token();
        self.records
            .put("refresh", &hash(&refresh), grant, self.refresh_ttl)
            .await?;
        let now = now_secs();
        let key = &self.keys[0];
        let mut header = Header::new(key.algorithm());
        header.kid = Some(key.kid().to_owned());
        header.typ = Some("at+jwt".to_owned());
        let claims = json!({
            "iss": self.issuer,
            "aud": self.resource,
            "sub": grant.sub,
            "client_id": grant.client_id,
            "scope": grant.scope,
            "iat": now,
            "exp": now + self.access_ttl.as_secs(),
            "jti": token(),
        });
        let access = jsonwebtoken::encode(&header, &claims, key.encoding()).map_err(|e| {
            tracing::warn!(error = %e, "could not sign an access token");
            ServerError::new(
                "temporarily_unavailable",
                "The access token could not be signed",
            )
        })?;
        let mut res = json(
            StatusCode::OK,
            &json!({
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": self.access_ttl.as_secs(),
                "refresh_token": refresh,
                "scope": grant.scope,
            }),
        );
        res.headers_mut()
            .insert(PRAGMA, HeaderValue::from_static("no-cache"));
        Ok(res)
    }

    /// `POST /oauth/revoke`: a refresh token revokes its family; anything else (unknown
    /// tokens, access tokens, which expire soon) is answered 200 as RFC 7009 §2.2 says.
    pub(crate) async fn revoke(
        &self,
        headers: &HeaderMap,
        form: &Form,
    ) -> Result<Response<Full<Bytes>>, ServerError> {
        let client = self.authenticate(headers, form).await?;
        let presented = single(form, "token")?.ok_or(ServerError::request("token is missing"))?;
        let key = hash(presented);
        if let Some(grant) = self.records.get::<Refresh>("refresh", &key).await? {
            if grant.client_id == client.client_id {
                self.records.delete("family", &grant.family).await?;
                self.records.delete("refresh", &key).await?;
            }
        }
        Ok(json(StatusCode::OK, &json!({})))
    }
}

#[cfg(test)]
mod tests {
    use super::valid_verifier;

    #[test]
    fn verifiers_follow_rfc_7636() {
        assert!(valid_verifier(&"a".repeat(43)));
        assert!(!valid_verifier(&"a".repeat(42)));
        assert!(!valid_verifier(&"a".repeat(129)));
        assert!(!valid_verifier(&format!("{}+", "a".repeat(43))));
    }
}
