//! [`JwtVerifier`]: JWT access tokens signed with static keys.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::deferred::Deferred;
use crate::error::TokenRejection;
use crate::identity::Identity;

use super::claims::{identity_from_claims, normalize_token_type, token_type_accepted};
use super::crypto::install_crypto_provider;
use crate::bearer::verifier::{TokenError, TokenVerifier};

/// Default clock-skew allowance for `exp` and `nbf`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

/// A configuration error found when building a [`JwtVerifier`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwtConfigError {
    /// No key was given.
    #[error("a JWT verifier needs at least one key")]
    NoKeys,
    /// A key has no algorithm in its allowlist.
    #[error("key {0} allows no algorithm")]
    NoAlgorithms(String),
    /// An algorithm does not belong to the key's family (for example HS256 for an RSA key:
    /// the classic algorithm-confusion hole).
    #[error("key {key} cannot be used with {algorithm:?}: wrong key type")]
    AlgorithmMismatch {
        /// Which key (its `kid`, or its position).
        key: String,
        /// The offending algorithm.
        algorithm: Algorithm,
    },
    /// A PEM key did not parse.
    #[error("invalid {kind} key: {reason}")]
    InvalidKey {
        /// RSA, EC or Ed25519.
        kind: &'static str,
        /// Parser message (never contains key material).
        reason: String,
    },
    /// An HMAC secret is shorter than 32 bytes.
    #[error("HMAC secrets must be at least 32 bytes (got {0})")]
    WeakSecret(usize),
}

/// One verification key with its algorithm allowlist and optional `kid`.
///
/// ```
/// use tower_mcp_auth::{bearer::{Algorithm, JwtKey}};
///
/// let key = JwtKey::hmac(b"a-very-long-secret-of-at-least-32-bytes!")
///     .algorithms([Algorithm::HS256, Algorithm::HS512])
///     .kid("2026-01");
/// # let _ = key;
/// ```
#[must_use]
pub struct JwtKey {
    key: DecodingKey,
    algorithms: Vec<Algorithm>,
    kid: Option<String>,
    secret_len: Option<usize>,
}

impl JwtKey {
    /// An HMAC shared secret; allows HS256 unless [`algorithms`](Self::algorithms) says more.
    pub fn hmac(secret: &[u8]) -> Self {
        Self {
            key: DecodingKey::from_secret(secret),
            algorithms: vec![Algorithm::HS256],
            kid: None,
            secret_len: Some(secret.len()),
        }
    }

    /// An RSA public key in PEM; allows RS256 by default (add PS256 etc. as needed).
    ///
    /// # Errors
    ///
    /// When the PEM does not hold an RSA public key.
    pub fn rsa_pem(pem: &[u8]) -> Result<Self, JwtConfigError> {
        install_crypto_provider();
        let key = DecodingKey::from_rsa_pem(pem).map_err(|e| invalid("RSA", &e))?;
        Ok(Self::with_key(key, Algorithm::RS256))
    }

    /// An EC (P-256 / P-384) public key in PEM; allows ES256 by default.
    ///
    /// # Errors
    ///
    /// When the PEM does not hold an EC public key.
    pub fn ec_pem(pem: &[u8]) -> Result<Self, JwtConfigError> {
        install_crypto_provider();
        let key = DecodingKey::from_ec_pem(pem).map_err(|e| invalid("EC", &e))?;
        Ok(Self::with_key(key, Algorithm::ES256))
    }

    /// An Ed25519 public key in PEM; allows EdDSA.
    ///
    /// # Errors
    ///
    /// When the PEM does not hold an Ed25519 public key.
    pub fn ed_pem(pem: &[u8]) -> Result<Self, JwtConfigError> {
        install_crypto_provider();
        let key = DecodingKey::from_ed_pem(pem).map_err(|e| invalid("Ed25519", &e))?;
        Ok(Self::with_key(key, Algorithm::EdDSA))
    }

    /// Any `jsonwebtoken` decoding key with one allowed algorithm.
    pub fn with_key(key: DecodingKey, algorithm: Algorithm) -> Self {
        Self {
            key,
            algorithms: vec![algorithm],
            kid: None,
            secret_len: None,
        }
    }

    /// Replaces the algorithm allowlist. Every algorithm must match the key's type.
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algorithms.into_iter().collect();
        self
    }

    /// Only tokens whose header `kid` equals this value use the key.
    pub fn kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }
}

fn invalid(kind: &'static str, e: &jsonwebtoken::errors::Error) -> JwtConfigError {
    JwtConfigError::InvalidKey {
        kind,
        reason: e.to_string(),
    }
}

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtKey")
            .field("family", &self.key.family())
            .field("algorithms", &self.algorithms)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// A key ready for use: its `Validation` is built once, never per request.
struct PreparedKey {
    key: DecodingKey,
    validation: Validation,
    /// Without the audience check, and the canonical audiences: for tokens whose `aud`
    /// fails the exact match (see `audience`).
    fallback: Option<(Validation, Vec<String>)>,
    kid: Option<String>,
}

/// Verifies JWT access tokens against static keys.
///
/// `exp` is always required; `nbf` is checked; `iss` and `aud` are checked when configured
/// (set the audience to your resource URL, RFC 8707); a leeway (default 60 s) absorbs clock
/// skew. Each key has an algorithm allowlist: `alg: none`, algorithms of another key type
/// (HMAC with a public key) and unlisted algorithms are rejected. RFC 9068 access tokens
/// (`typ: at+jwt`, `scope`, `client_id`) are accepted.
///
/// ```
/// use tower_mcp_auth::{JwtVerifier, TokenVerifier};
///
/// let secret = b"an-hs256-secret-that-is-32-bytes+";
/// let verifier = JwtVerifier::hs256(secret)
///     .issuer("https://auth.example.com")
///     .audience("https://mcp.example.com/mcp")
///     .build()
///     .unwrap();
///
/// let claims = serde_json::json!({
///     "sub": "alice", "scope": "tools:call",
///     "iss": "https://auth.example.com", "aud": "https://mcp.example.com/mcp",
///     "exp": 4_000_000_000u64,
/// });
/// let token = jsonwebtoken::encode(
///     &jsonwebtoken::Header::default(), &claims,
///     &jsonwebtoken::EncodingKey::from_secret(secret),
/// ).unwrap();
///
/// let id = verifier.verify_now(&token).unwrap();
/// assert_eq!(id.user_id(), Some("alice"));
/// assert!(verifier.verify_now("not.a.jwt").is_err());
/// ```
#[derive(Clone)]
pub struct JwtVerifier {
    keys: Arc<[PreparedKey]>,
    /// Accepted header `typ`s, normalized; empty accepts any.
    token_types: Arc<[String]>,
}

impl JwtVerifier {
    /// Starts a verifier.
    pub fn builder() -> JwtVerifierBuilder {
        JwtVerifierBuilder {
            keys: Vec::new(),
            issuers: Vec::new(),
            audiences: Vec::new(),
            leeway: DEFAULT_LEEWAY,
            allow_weak_secrets: false,
            token_types: Vec::new(),
        }
    }

    /// Starts a verifier with one HS256 secret (at least 32 bytes).
    pub fn hs256(secret: &[u8]) -> JwtVerifierBuilder {
        Self::builder().key(JwtKey::hmac(secret))
    }

    /// Verifies synchronously (all keys are local).
    ///
    /// # Errors
    ///
    /// The [`TokenRejection`] describing what is wrong with the token.
    pub fn verify_now(&self, token: &str) -> Result<Identity, TokenRejection> {
        self.decode(token).map(identity_from_claims)
    }

    fn decode(&self, token: &str) -> Result<Map<String, Value>, TokenRejection> {
        if let [only] = &*self.keys {
            if only.kid.is_none() && self.token_types.is_empty() {
                // One key, no kid to match: jsonwebtoken checks the header's alg against the
                // allowlist itself, so skip our own header parse.
                return decode_with(token, only);
            }
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| rejection(e.kind()))?;
        if !token_type_accepted(&self.token_types, header.typ.as_deref()) {
            return Err(TokenRejection::WrongType);
        }
        let mut kid_matched = false;
        let mut last = TokenRejection::AlgorithmNotAllowed;
        for key in self.keys.iter() {
            match (&key.kid, &header.kid) {
                (Some(want), Some(got)) if want == got => kid_matched = true,
                (Some(_), _) => continue,
                (None, _) => {}
            }
            if !key.validation.algorithms.contains(&header.alg) {
                continue;
            }
            match decode_with(token, key) {
                // Another key may have signed it (rotation with kid-less keys).
                Err(TokenRejection::BadSignature) => last = TokenRejection::BadSignature,
                other => return other,
            }
        }
        if header.kid.is_some() && !kid_matched && self.keys.iter().all(|k| k.kid.is_some()) {
            return Err(TokenRejection::UnknownKey);
        }
        Err(last)
    }
}

fn decode_with(token: &str, key: &PreparedKey) -> Result<Map<String, Value>, TokenRejection> {
    super::audience::decode(token, &key.key, &key.validation, key.fallback.as_ref())
        .map_err(|e| rejection(e.kind()))
}

/// Maps jsonwebtoken's error to the reason shown to clients.
pub(super) fn rejection(kind: &ErrorKind) -> TokenRejection {
    match kind {
        ErrorKind::InvalidSignature => TokenRejection::BadSignature,
        ErrorKind::ExpiredSignature => TokenRejection::Expired,
        ErrorKind::ImmatureSignature => TokenRejection::NotYetValid,
        ErrorKind::InvalidIssuer => TokenRejection::WrongIssuer,
        ErrorKind::InvalidAudience => TokenRejection::WrongAudience,
        ErrorKind::MissingRequiredClaim(_) => TokenRejection::MissingClaim,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::MissingAlgorithm => TokenRejection::AlgorithmNotAllowed,
        ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_)
        | ErrorKind::InvalidClaimFormat(_)
        | ErrorKind::InvalidSubject => TokenRejection::Malformed,
        other => {
            // Key or provider problems: the token cannot be verified with this key.
            tracing::warn!(error = ?other, "JWT key could not verify a token");
            TokenRejection::BadSignature
        }
    }
}

impl TokenVerifier for JwtVerifier {
    fn verify(&self, token: &str) -> Deferred<Result<Identity, TokenError>> {
        let timer = crate::metrics::Timer::start();
        let result = self.verify_now(token).map_err(TokenError::Rejected);
        timer.verified("jwt", &result);
        Deferred::ready(result)
    }
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let first = self.keys.first().map(|k| &k.validation);
        f.debug_struct("JwtVerifier")
            .field("keys", &self.keys.len())
            .field("issuer", &first.and_then(|v| v.iss.as_ref()))
            .field("audience", &first.and_then(|v| v.aud.as_ref()))
            .field("token_types", &self.token_types)
            .finish()
    }
}

/// Builds a [`JwtVerifier`]; see [`JwtVerifier::builder`].
#[must_use]
#[derive(Debug)]
pub struct JwtVerifierBuilder {
    keys: Vec<JwtKey>,
    issuers: Vec<String>,
    audiences: Vec<String>,
    leeway: Duration,
    allow_weak_secrets: bool,
    token_types: Vec<String>,
}

impl JwtVerifierBuilder {
    /// Adds a key. Tokens with a `kid` use the key with that `kid`; keys without a `kid` are
    /// tried in order.
    pub fn key(mut self, key: JwtKey) -> Self {
        self.keys.push(key);
        self
    }

    /// Accepts tokens from this issuer (`iss`); may be called more than once.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(issuer.into());
        self
    }

    /// Accepts tokens for this audience (`aud`, RFC 8707: your resource URL); may be called
    /// more than once. An `aud` that differs only by an uppercase scheme or host, a default
    /// port or a trailing slash names the same resource and is accepted too.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Accepts tokens for each of `audiences`; see [`audience`](Self::audience).
    ///
    /// ```
    /// use tower_mcp_auth::JwtVerifier;
    /// let verifier = JwtVerifier::hs256(b"an-hs256-secret-that-is-32-bytes+")
    ///     .audiences(["https://mcp.example.com/mcp", "https://mcp.example.com/v2/mcp"])
    ///     .build()
    ///     .unwrap();
    /// # let _ = verifier;
    /// ```
    pub fn audiences<I, S>(mut self, audiences: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.audiences.extend(audiences.into_iter().map(Into::into));
        self
    }

    /// Accepts only tokens whose header `typ` is `token_type` (may be called more than once).
    /// `at+jwt` enforces RFC 9068 access tokens, so an ID token or another JWT from the same
    /// issuer and keys is refused even when its audience matches. Compared case-insensitively;
    /// `application/at+jwt` counts as `at+jwt`. By default any `typ` (or none) is accepted,
    /// because many identity providers send `JWT` for access tokens.
    ///
    /// ```
    /// use tower_mcp_auth::JwtVerifier;
    ///
    /// let secret = b"an-hs256-secret-that-is-32-bytes+";
    /// let verifier = JwtVerifier::hs256(secret).token_type("at+jwt").build().unwrap();
    /// let claims = serde_json::json!({"sub": "alice", "exp": 4_000_000_000u64});
    /// let key = jsonwebtoken::EncodingKey::from_secret(secret);
    ///
    /// let mut header = jsonwebtoken::Header::default(); // typ: JWT
    /// assert!(verifier.verify_now(&jsonwebtoken::encode(&header, &claims, &key).unwrap()).is_err());
    /// header.typ = Some("at+jwt".into());
    /// assert!(verifier.verify_now(&jsonwebtoken::encode(&header, &claims, &key).unwrap()).is_ok());
    /// ```
    pub fn token_type(mut self, token_type: impl AsRef<str>) -> Self {
        self.token_types
            .push(normalize_token_type(token_type.as_ref()));
        self
    }

    /// Clock-skew allowance for `exp` / `nbf` (default 60 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Allows HMAC secrets shorter than 32 bytes (tests only: short secrets can be brute
    /// forced from a single token).
    pub fn allow_weak_secrets(mut self) -> Self {
        self.allow_weak_secrets = true;
        self
    }

    /// Validates the configuration and prepares every key.
    ///
    /// # Errors
    ///
    /// No keys, an empty or mismatched algorithm allowlist, or a short HMAC secret.
    pub fn build(self) -> Result<JwtVerifier, JwtConfigError> {
        install_crypto_provider();
        if self.keys.is_empty() {
            return Err(JwtConfigError::NoKeys);
        }
        let mut prepared = Vec::with_capacity(self.keys.len());
        for (index, key) in self.keys.into_iter().enumerate() {
            let label = key.kid.clone().unwrap_or_else(|| format!("#{index}"));
            if key.algorithms.is_empty() {
                return Err(JwtConfigError::NoAlgorithms(label));
            }
            let family = key.key.family();
            if let Some(&algorithm) = key.algorithms.iter().find(|a| a.family() != family) {
                return Err(JwtConfigError::AlgorithmMismatch {
                    key: label,
                    algorithm,
                });
            }
            if let Some(len) = key.secret_len {
                if len < 32 && !self.allow_weak_secrets {
                    return Err(JwtConfigError::WeakSecret(len));
                }
            }
            let mut validation = Validation::new(key.algorithms[0]);
            validation.algorithms = key.algorithms;
            validation.leeway = self.leeway.as_secs();
            validation.validate_nbf = true;
            let mut required = vec!["exp"];
            if self.issuers.is_empty() {
                validation.iss = None;
            } else {
                validation.set_issuer(&self.issuers);
                required.push("iss");
            }
            if self.audiences.is_empty() {
                validation.validate_aud = false;
            } else {
                validation.set_audience(&super::audience::exact_list(&self.audiences));
                required.push("aud");
            }
            validation.set_required_spec_claims(&required);
            let fallback = (!self.audiences.is_empty()).then(|| {
                (
                    super::audience::relaxed(&validation),
                    super::audience::canonical_list(&self.audiences),
                )
            });
            prepared.push(PreparedKey {
                key: key.key,
                validation,
                fallback,
                kid: key.kid,
            });
        }
        Ok(JwtVerifier {
            keys: prepared.into(),
            token_types: self.token_types.into(),
        })
    }
}
