//! [`MultiIssuerVerifier`]: several authorization servers at once (tenants, or a company IdP
//! next to this server's own tokens), each with its own keys and audience.

use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;

use crate::deferred::Deferred;
use crate::error::TokenRejection;
use crate::identity::Identity;

use crate::bearer::verifier::{TokenError, TokenVerifier};

/// The largest JWT payload (base64url) the issuer peek decodes; larger tokens are malformed.
const MAX_PAYLOAD: usize = 16 * 1024;

/// Dispatches each token to the verifier of its issuer.
///
/// The token's `iss` is read from the payload *without* verifying anything (a routing hint
/// only) and looked up in the allowlist, compared exactly; the chosen verifier then checks
/// signature, expiry, audience and, configured with its issuer, `iss` again. A token from an
/// issuer not on the list is 401 `invalid_token` ("issuer is not accepted") without any
/// network call, so a forged `iss` cannot make the server fetch keys from anywhere. A token
/// that is not a JWT is `Malformed`, one without `iss` is `MissingClaim`.
///
/// ```
/// use tower_mcp_auth::{JwtVerifier, bearer::MultiIssuerVerifier, TokenVerifier, TokenRejection};
///
/// let ours = JwtVerifier::hs256(b"our-own-hs256-secret-of-32-bytes+")
///     .issuer("https://mcp.example.com")
///     .audience("https://mcp.example.com/mcp")
///     .build()
///     .unwrap();
/// let company = JwtVerifier::hs256(b"the-company-idp-secret-of-32-byte")
///     .issuer("https://idp.example.com")
///     .audience("https://mcp.example.com/mcp")
///     .build()
///     .unwrap();
/// let verifier = MultiIssuerVerifier::builder()
///     .issuer("https://mcp.example.com", ours)
///     .issuer("https://idp.example.com", company)
///     .build()
///     .unwrap();
///
/// let claims = serde_json::json!({"sub": "mallory", "iss": "https://evil.example",
///     "aud": "https://mcp.example.com/mcp", "exp": 4_000_000_000u64});
/// let token = jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims,
///     &jsonwebtoken::EncodingKey::from_secret(b"anything")).unwrap();
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let err = verifier.verify(&token).await.unwrap_err();
/// assert_eq!(err, TokenRejection::WrongIssuer.into());
/// # });
/// ```
#[derive(Clone)]
pub struct MultiIssuerVerifier {
    issuers: Arc<[(String, Arc<dyn TokenVerifier>)]>,
}

impl MultiIssuerVerifier {
    /// Starts an allowlist of issuers.
    pub fn builder() -> MultiIssuerVerifierBuilder {
        MultiIssuerVerifierBuilder {
            issuers: Vec::new(),
        }
    }

    fn route(&self, token: &str) -> Result<&dyn TokenVerifier, TokenRejection> {
        let iss = peek_issuer(token)?;
        self.issuers
            .iter()
            .find(|(issuer, _)| *issuer == iss)
            .map(|(_, v)| &**v)
            .ok_or(TokenRejection::WrongIssuer)
    }
}

#[derive(Deserialize)]
struct Peek {
    iss: Option<String>,
}

/// The unverified `iss` of a JWT's payload.
fn peek_issuer(token: &str) -> Result<String, TokenRejection> {
    let mut parts = token.split('.');
    let (Some(_header), Some(payload), Some(_sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenRejection::Malformed);
    };
    if payload.len() > MAX_PAYLOAD {
        return Err(TokenRejection::Malformed);
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenRejection::Malformed)?;
    let peek: Peek = serde_json::from_slice(&bytes).map_err(|_| TokenRejection::Malformed)?;
    peek.iss.ok_or(TokenRejection::MissingClaim)
}

impl TokenVerifier for MultiIssuerVerifier {
    fn verify(&self, token: &str) -> Deferred<Result<Identity, TokenError>> {
        match self.route(token) {
            Ok(verifier) => verifier.verify(token),
            Err(rejection) => {
                tracing::debug!(%rejection, "token refused before verification (issuer)");
                Deferred::ready(Err(rejection.into()))
            }
        }
    }
}

impl fmt::Debug for MultiIssuerVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiIssuerVerifier")
            .field(
                "issuers",
                &self.issuers.iter().map(|(i, _)| i).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// A [`MultiIssuerVerifierBuilder`] configuration error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MultiIssuerError {
    /// No issuer was added.
    #[error("a multi-issuer verifier needs at least one issuer")]
    NoIssuers,
    /// The same issuer was added twice.
    #[error("issuer {0:?} was added twice")]
    DuplicateIssuer(String),
    /// An empty issuer.
    #[error("an issuer must not be empty")]
    EmptyIssuer,
}

/// Configures a [`MultiIssuerVerifier`]; see [`MultiIssuerVerifier::builder`].
#[must_use]
pub struct MultiIssuerVerifierBuilder {
    issuers: Vec<(String, Arc<dyn TokenVerifier>)>,
}

impl MultiIssuerVerifierBuilder {
    /// Sends tokens whose `iss` is exactly `issuer` to `verifier` (configure the verifier
    /// with the same issuer, its keys and its audience).
    pub fn issuer(mut self, issuer: impl Into<String>, verifier: impl TokenVerifier) -> Self {
        self.issuers.push((issuer.into(), Arc::new(verifier)));
        self
    }

    /// Validates the allowlist.
    ///
    /// # Errors
    ///
    /// No issuer, an empty one, or one added twice.
    pub fn build(self) -> Result<MultiIssuerVerifier, MultiIssuerError> {
        if self.issuers.is_empty() {
            return Err(MultiIssuerError::NoIssuers);
        }
        for (i, (issuer, _)) in self.issuers.iter().enumerate() {
            if issuer.is_empty() {
                return Err(MultiIssuerError::EmptyIssuer);
            }
            if self.issuers[..i].iter().any(|(other, _)| other == issuer) {
                return Err(MultiIssuerError::DuplicateIssuer(issuer.clone()));
            }
        }
        Ok(MultiIssuerVerifier {
            issuers: self.issuers.into(),
        })
    }
}

impl fmt::Debug for MultiIssuerVerifierBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiIssuerVerifierBuilder")
            .field("issuers", &self.issuers.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn peek_reads_iss_or_refuses() {
        let t = |payload: &str| format!("{}.{}.sig", b64("{}"), b64(payload));
        assert_eq!(
            peek_issuer(&t(r#"{"iss":"https://a"}"#)).unwrap(),
            "https://a"
        );
        assert_eq!(
            peek_issuer(&t(r#"{"sub":"x"}"#)),
            Err(TokenRejection::MissingClaim)
        );
        assert_eq!(
            peek_issuer(&t(r#"{"iss":1}"#)),
            Err(TokenRejection::Malformed)
        );
        assert_eq!(peek_issuer(&t("not json")), Err(TokenRejection::Malformed));
        for bad in ["", "a.b", "a.b.c.d", "a.!!!.c", "opaque-token"] {
            assert_eq!(peek_issuer(bad), Err(TokenRejection::Malformed), "{bad}");
        }
        let huge = format!("h.{}.s", "A".repeat(MAX_PAYLOAD + 1));
        assert_eq!(peek_issuer(&huge), Err(TokenRejection::Malformed));
    }

    #[test]
    fn builder_errors() {
        struct Never;
        impl TokenVerifier for Never {
            fn verify(&self, _: &str) -> Deferred<Result<Identity, TokenError>> {
                Deferred::ready(Err(TokenRejection::BadSignature.into()))
            }
        }
        assert_eq!(
            MultiIssuerVerifier::builder().build().unwrap_err(),
            MultiIssuerError::NoIssuers
        );
        let dup = MultiIssuerVerifier::builder()
            .issuer("a", Never)
            .issuer("a", Never)
            .build();
        assert_eq!(
            dup.unwrap_err(),
            MultiIssuerError::DuplicateIssuer("a".into())
        );
        let empty = MultiIssuerVerifier::builder().issuer("", Never).build();
        assert_eq!(empty.unwrap_err(), MultiIssuerError::EmptyIssuer);
    }
}
