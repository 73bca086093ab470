//! Signed, single-use OAuth `state`: [`StateSigner`] and [`StateError`].
//!
//! A state value is `base64url(payload) "." base64url(HMAC-SHA256(secret, base64url(payload)))`.
//! The payload binds the flow (provider, optional upstream / gateway id, user, redirect target),
//! a timestamp and a random nonce. The signature is checked (in constant time, against every
//! configured secret so secrets can be rotated) *before* the payload is parsed, so a forged or
//! garbled value never reaches the JSON parser. The nonce keys the flow's record (PKCE verifier,
//! OIDC nonce) in the [`StateStore`](crate::store::StateStore), which the callback consumes with
//! an atomic `take`: of two racing callbacks, across any number of instances, exactly one wins.

use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::OAuthConfigError;

/// Longest `state` parameter accepted; anything longer is rejected before any work.
pub(crate) const MAX_STATE_LEN: usize = 2048;
/// Shortest accepted HMAC secret.
pub const MIN_SECRET_LEN: usize = 32;

/// Why the `state` of a callback was refused. Each variant has its own message and log line.
///
/// ```
/// use tower_mcp_auth::oauth::StateError;
///
/// assert_eq!(StateError::InvalidSignature.to_string(), "Invalid state signature - possible CSRF attack");
/// assert_eq!(StateError::AlreadyUsed.to_string(), "State was already used - possible replay attack");
/// assert_eq!(StateError::Mismatch("gateway").to_string(), "State parameter gateway mismatch");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The callback has no `state` parameter.
    #[error("Missing state parameter")]
    Missing,
    /// The signature does not verify under any configured secret: the value was forged,
    /// tampered with or truncated, or the secret changed between start and callback.
    #[error("Invalid state signature - possible CSRF attack")]
    InvalidSignature,
    /// The flow is older than the state TTL (default 300 s).
    #[error("State has expired")]
    Expired,
    /// The state was consumed already: a refreshed callback page or a replayed callback.
    #[error("State was already used - possible replay attack")]
    AlreadyUsed,
    /// The state is bound to something else than this callback: `"gateway"` (upstream id),
    /// `"provider"`, `"user"` or `"browser"`.
    #[error("State parameter {0} mismatch")]
    Mismatch(&'static str),
    /// Correctly signed and not expired, but not in the state store: it was started on an
    /// instance that does not share this one's store, or the store lost it.
    #[error("State not found in the state store - was the flow started on an instance with another STATE_STORE?")]
    Unknown,
}

impl StateError {
    /// A short, stable reason code for the JSON body and metrics.
    ///
    /// ```
    /// assert_eq!(tower_mcp_auth::oauth::StateError::Expired.reason(), "expired");
    /// ```
    pub fn reason(&self) -> &'static str {
        match self {
            StateError::Missing => "missing",
            StateError::InvalidSignature => "invalid_signature",
            StateError::Expired => "expired",
            StateError::AlreadyUsed => "already_used",
            StateError::Mismatch("gateway") => "gateway_mismatch",
            StateError::Mismatch("provider") => "provider_mismatch",
            StateError::Mismatch("user") => "user_mismatch",
            StateError::Mismatch(_) => "browser_mismatch",
            StateError::Unknown => "unknown",
        }
    }

    /// 403 for what looks like an attack (bad signature, replay, mismatch), 400 otherwise.
    pub fn status(&self) -> http::StatusCode {
        match self {
            StateError::InvalidSignature | StateError::AlreadyUsed | StateError::Mismatch(_) => {
                http::StatusCode::FORBIDDEN
            }
            StateError::Missing | StateError::Expired | StateError::Unknown => {
                http::StatusCode::BAD_REQUEST
            }
        }
    }
}

/// What a flow is bound to; signed into the `state`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StatePayload {
    /// Format version.
    pub(crate) v: u8,
    /// Provider name.
    pub(crate) p: String,
    /// Upstream (gateway) id, for upstream-token flows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) g: Option<String>,
    /// User id that started an upstream flow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) u: Option<String>,
    /// Post-login redirect target (already checked against the allowlist).
    pub(crate) r: String,
    /// Issued at, milliseconds since the Unix epoch.
    pub(crate) t: u64,
    /// Random nonce (base64url), the flow's key in the store.
    pub(crate) n: String,
}

type HmacSha256 = Hmac<Sha256>;

/// Signs and verifies `state` values with HMAC-SHA256.
///
/// The first secret signs; every secret verifies, so a secret can be rotated without breaking
/// flows in progress: deploy `new` as the signer with the old one as
/// [`previous`](Self::previous), and drop the old one after the state TTL. All instances that
/// may receive a callback need the same secrets (`STATE_SECRET` in the example).
///
/// ```
/// use tower_mcp_auth::oauth::StateSigner;
///
/// let signer = StateSigner::new(b"a-state-secret-of-at-least-32-bytes!").unwrap()
///     .previous(b"the-secret-used-until-last-tuesday!!").unwrap();
/// assert_eq!(signer.secrets(), 2);
/// assert!(StateSigner::new(b"short").is_err());
/// ```
#[derive(Clone)]
pub struct StateSigner {
    secrets: Arc<[Vec<u8>]>,
}

impl StateSigner {
    /// A signer with one secret of at least 32 bytes.
    ///
    /// # Errors
    ///
    /// [`OAuthConfigError::WeakSecret`] for a shorter secret.
    pub fn new(secret: impl AsRef<[u8]>) -> Result<Self, OAuthConfigError> {
        let secret = checked(secret.as_ref())?;
        Ok(Self {
            secrets: Arc::from(vec![secret]),
        })
    }

    /// Also accepts states signed with `secret` (a rotated-out secret).
    ///
    /// # Errors
    ///
    /// [`OAuthConfigError::WeakSecret`] for a secret shorter than 32 bytes.
    pub fn previous(self, secret: impl AsRef<[u8]>) -> Result<Self, OAuthConfigError> {
        let mut secrets = self.secrets.to_vec();
        secrets.push(checked(secret.as_ref())?);
        Ok(Self {
            secrets: secrets.into(),
        })
    }

    /// How many secrets verify.
    pub fn secrets(&self) -> usize {
        self.secrets.len()
    }

    pub(crate) fn first_secret(&self) -> &[u8] {
        &self.secrets[0]
    }

    pub(crate) fn all_secrets(&self) -> impl Iterator<Item = &[u8]> {
        self.secrets.iter().map(Vec::as_slice)
    }

    pub(crate) fn sign(&self, payload: &StatePayload) -> String {
        // Serializing a struct of strings and integers cannot fail.
        let json = serde_json::to_vec(payload).unwrap_or_default();
        let body = URL_SAFE_NO_PAD.encode(json);
        let tag = mac(&self.secrets[0], body.as_bytes());
        let mut out = body;
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(tag, &mut out);
        out
    }

    /// Checks the signature, then parses the payload.
    pub(crate) fn verify(&self, state: &str) -> Result<StatePayload, StateError> {
        if state.is_empty() || state.len() > MAX_STATE_LEN {
            return Err(StateError::InvalidSignature);
        }
        let (body, tag) = state.split_once('.').ok_or(StateError::InvalidSignature)?;
        let mut given = [0u8; 32];
        match URL_SAFE_NO_PAD.decode_slice(tag, &mut given) {
            Ok(32) => {}
            _ => return Err(StateError::InvalidSignature),
        }
        let mut valid = subtle::Choice::from(0);
        for secret in self.secrets.iter() {
            // Every secret is tried, whatever matched, so timing says nothing about which.
            valid |= mac(secret, body.as_bytes()).ct_eq(&given);
        }
        if !bool::from(valid) {
            return Err(StateError::InvalidSignature);
        }
        let json = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| StateError::InvalidSignature)?;
        let payload: StatePayload =
            serde_json::from_slice(&json).map_err(|_| StateError::InvalidSignature)?;
        if payload.v != 1 {
            return Err(StateError::InvalidSignature);
        }
        Ok(payload)
    }
}

fn checked(secret: &[u8]) -> Result<Vec<u8>, OAuthConfigError> {
    if secret.len() < MIN_SECRET_LEN {
        return Err(OAuthConfigError::WeakSecret {
            what: "state secret",
            len: secret.len(),
        });
    }
    Ok(secret.to_vec())
}

fn mac(secret: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac =
        <HmacSha256 as Mac>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

impl fmt::Debug for StateSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateSigner")
            .field("secrets", &self.secrets.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &[u8] = b"secret-a-secret-a-secret-a-secret-a";
    const B: &[u8] = b"secret-b-secret-b-secret-b-secret-b";

    fn payload() -> StatePayload {
        StatePayload {
            v: 1,
            p: "github".into(),
            g: Some("gw-1".into()),
            u: None,
            r: "/".into(),
            t: 1_700_000_000_000,
            n: "bm9uY2U".into(),
        }
    }

    #[test]
    fn round_trip_and_rotation() {
        let old = StateSigner::new(A).unwrap();
        let state = old.sign(&payload());
        assert_eq!(old.verify(&state).unwrap(), payload());
        let rotated = StateSigner::new(B).unwrap().previous(A).unwrap();
        assert_eq!(rotated.verify(&state).unwrap(), payload());
        let only_new = StateSigner::new(B).unwrap();
        assert_eq!(only_new.verify(&state), Err(StateError::InvalidSignature));
    }

    #[test]
    fn tampering_and_garbage_are_invalid_signatures() {
        let signer = StateSigner::new(A).unwrap();
        let state = signer.sign(&payload());
        let (body, tag) = state.split_once('.').unwrap();
        let mut forged = payload();
        forged.g = Some("gw-2".into());
        let forged_body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        let long = "a".repeat(MAX_STATE_LEN + 1);
        for bad in [
            "",
            ".",
            "abc",
            body,
            &format!("{forged_body}.{tag}"),
            &format!("{body}.{}", &tag[1..]),
            &format!("{body}.{tag}A"),
            &format!("{body}x.{tag}"),
            "\u{0}\u{ff}.é",
            &long,
        ] {
            assert_eq!(
                signer.verify(bad),
                Err(StateError::InvalidSignature),
                "{bad:?}"
            );
        }
        // A correctly signed body that is not our JSON is refused too.
        let junk = URL_SAFE_NO_PAD.encode(b"[1,2,3]");
        let signed = format!("{junk}.{}", URL_SAFE_NO_PAD.encode(mac(A, junk.as_bytes())));
        assert_eq!(signer.verify(&signed), Err(StateError::InvalidSignature));
    }

    #[test]
    fn weak_secrets_and_debug() {
        assert!(StateSigner::new(b"0123456789").is_err());
        let signer = StateSigner::new(A).unwrap();
        let debug = format!("{signer:?}");
        assert!(!debug.contains("secret-a"), "{debug}");
    }
}
