//! The decision itself: which identity (if any) a request gets on an endpoint, or which error.
//!
//! Kept free of services and bodies so that every row of the mode table is a plain unit test.

use std::borrow::Cow;

use http::Extensions;

use crate::error::AuthError;
use crate::identity::{AuthMethod, Identity};
use crate::outcome::{ApiKeyOutcome, BearerOutcome, CredentialOutcome};

use super::endpoint::{EndpointPolicy, Owner};

/// The message MetaMCP users know for a public key on a private endpoint.
pub(crate) const PUBLIC_KEY_ON_PRIVATE: &str = "Public API keys cannot access private endpoints";
const PUBLIC_TOKEN_ON_PRIVATE: &str = "Tokens without a subject cannot access private endpoints";
const OTHER_USERS_ENDPOINT: &str = "Access denied: this endpoint belongs to another user";

/// A refusal and the credential it concerns.
pub(crate) type Denial = (AuthError, Option<AuthMethod>);

/// Decides a request on `policy`, consuming the authenticators' outcomes from `extensions`.
///
/// `Ok(None)` means the endpoint is open; `Ok(Some(identity))` the chosen identity.
pub(crate) fn decide(
    policy: &EndpointPolicy,
    extensions: &mut Extensions,
) -> Result<Option<Identity>, Denial> {
    // Outcomes are removed so that only the decided `Identity` reaches the handler.
    let key = extensions.remove::<ApiKeyOutcome>();
    let token = extensions.remove::<BearerOutcome>();
    if policy.is_open() {
        return Ok(None);
    }
    // A method the endpoint does not accept is ignored, as if absent.
    let key = key.filter(|_| policy.enable_api_key_auth());
    let token = token.filter(|_| policy.enable_oauth());

    let identity = match (key, token) {
        // A presented-but-wrong key is an error even if a good token is also present.
        (Some(CredentialOutcome::Rejected(reason)), _) => {
            return Err((
                AuthError::InvalidCredentials(reason),
                Some(AuthMethod::ApiKey),
            ))
        }
        (Some(CredentialOutcome::Unavailable), _) => {
            return Err((AuthError::TemporarilyUnavailable, Some(AuthMethod::ApiKey)))
        }
        // An accepted key takes precedence over a bearer token.
        (Some(CredentialOutcome::Verified(identity)), _) => identity,
        (None, Some(CredentialOutcome::Verified(identity))) => identity,
        (None, Some(CredentialOutcome::Rejected(reason))) => {
            return Err((AuthError::InvalidToken(reason), Some(AuthMethod::Bearer)))
        }
        (None, Some(CredentialOutcome::Unavailable)) => {
            return Err((AuthError::TemporarilyUnavailable, Some(AuthMethod::Bearer)))
        }
        (None, None) => return Err((AuthError::AuthenticationRequired, None)),
    };
    let method = Some(identity.method());

    let owner = policy.owner();
    if *owner != Owner::Public {
        // A user is (issuer, user id): the same id from another issuer is someone else.
        match identity.user_id() {
            None => {
                let message = match identity.method() {
                    AuthMethod::ApiKey => PUBLIC_KEY_ON_PRIVATE,
                    AuthMethod::Bearer => PUBLIC_TOKEN_ON_PRIVATE,
                };
                return Err((AuthError::AccessDenied(Cow::Borrowed(message)), method));
            }
            Some(user) if !owner.is(identity.issuer(), user) => {
                return Err((
                    AuthError::AccessDenied(Cow::Borrowed(OTHER_USERS_ENDPOINT)),
                    method,
                ))
            }
            Some(_) => {}
        }
    }

    if !policy.required().iter().all(|p| identity.has_permission(p)) {
        // Every scope the endpoint needs, held or not (RFC 6750 §3.1; the client adds what
        // it already has), named as the authorization server knows them.
        return Err((
            AuthError::InsufficientScope {
                required: identity.challenge_scopes(policy.required().iter().map(String::as_str)),
            },
            method,
        ));
    }
    Ok(Some(identity))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{CredentialRejection, TokenRejection};

    fn key(user: Option<&str>) -> ApiKeyOutcome {
        let mut b = Identity::builder(AuthMethod::ApiKey, "k").permissions(["tools/*"]);
        if let Some(u) = user {
            b = b.user_id(u);
        }
        CredentialOutcome::Verified(b.build())
    }

    fn token(user: &str) -> BearerOutcome {
        CredentialOutcome::Verified(
            Identity::builder(AuthMethod::Bearer, user)
                .user_id(user)
                .permissions(["read"])
                .build(),
        )
    }

    fn run(
        policy: &EndpointPolicy,
        k: Option<ApiKeyOutcome>,
        t: Option<BearerOutcome>,
    ) -> Result<Option<Identity>, Denial> {
        let mut ext = Extensions::new();
        if let Some(k) = k {
            ext.insert(k);
        }
        if let Some(t) = t {
            ext.insert(t);
        }
        decide(policy, &mut ext)
    }

    fn code(r: Result<Option<Identity>, Denial>) -> &'static str {
        match r {
            Ok(Some(id)) => id.method().as_str(),
            Ok(None) => "open",
            Err((e, _)) => e.code(),
        }
    }

    const BAD_KEY: ApiKeyOutcome = CredentialOutcome::Rejected(CredentialRejection::Unknown);
    const BAD_TOKEN: BearerOutcome = CredentialOutcome::Rejected(TokenRejection::Expired);

    #[test]
    fn open_mode_passes_everything_unchecked() {
        let p = EndpointPolicy::open();
        assert_eq!(code(run(&p, None, None)), "open");
        assert_eq!(code(run(&p, Some(BAD_KEY), Some(BAD_TOKEN))), "open");
    }

    #[test]
    fn api_key_only_mode() {
        let p = EndpointPolicy::api_key_only();
        assert_eq!(code(run(&p, None, None)), "authentication_required");
        assert_eq!(code(run(&p, Some(BAD_KEY), None)), "invalid_credentials");
        assert_eq!(code(run(&p, Some(key(None)), None)), "api_key");
        // A token is a method this endpoint does not accept: ignored, as if absent.
        assert_eq!(
            code(run(&p, None, Some(token("a")))),
            "authentication_required"
        );
        assert_eq!(
            code(run(&p, None, Some(BAD_TOKEN))),
            "authentication_required"
        );
    }

    #[test]
    fn oauth_only_mode() {
        let p = EndpointPolicy::oauth_only();
        assert_eq!(code(run(&p, None, None)), "authentication_required");
        assert_eq!(code(run(&p, None, Some(BAD_TOKEN))), "invalid_token");
        assert_eq!(code(run(&p, None, Some(token("a")))), "bearer");
        assert_eq!(code(run(&p, Some(BAD_KEY), Some(token("a")))), "bearer");
        assert_eq!(
            code(run(&p, Some(key(None)), None)),
            "authentication_required"
        );
    }

    #[test]
    fn both_mode_precedence() {
        let p = EndpointPolicy::both();
        assert_eq!(code(run(&p, None, None)), "authentication_required");
        assert_eq!(code(run(&p, Some(key(None)), Some(token("a")))), "api_key");
        assert_eq!(code(run(&p, Some(key(None)), Some(BAD_TOKEN))), "api_key");
        assert_eq!(
            code(run(&p, Some(BAD_KEY), Some(token("a")))),
            "invalid_credentials"
        );
        assert_eq!(code(run(&p, None, Some(BAD_TOKEN))), "invalid_token");
        assert_eq!(
            code(run(&p, Some(CredentialOutcome::Unavailable), None)),
            "temporarily_unavailable"
        );
    }

    #[test]
    fn ownership_and_permissions() {
        let p = EndpointPolicy::both().private_to("alice");
        let err = run(&p, Some(key(None)), None).unwrap_err().0;
        assert_eq!(err, AuthError::AccessDenied(PUBLIC_KEY_ON_PRIVATE.into()));
        assert_eq!(code(run(&p, Some(key(Some("bob"))), None)), "access_denied");
        assert_eq!(code(run(&p, Some(key(Some("alice"))), None)), "api_key");
        assert_eq!(code(run(&p, None, Some(token("alice")))), "bearer");

        let p = EndpointPolicy::both().require(["tools/call"]);
        assert_eq!(code(run(&p, Some(key(None)), None)), "api_key");
        assert_eq!(code(run(&p, None, Some(token("a")))), "insufficient_scope");
    }

    #[test]
    fn owners_are_namespaced_by_issuer() {
        let from = |iss: Option<&str>, sub: &str| {
            let mut b = Identity::builder(AuthMethod::Bearer, sub).user_id(sub);
            if let Some(iss) = iss {
                b = b.issuer(iss);
            }
            CredentialOutcome::Verified(b.build())
        };
        let local = EndpointPolicy::both().private_to("42");
        assert_eq!(code(run(&local, None, Some(from(None, "42")))), "bearer");
        assert_eq!(
            code(run(&local, None, Some(from(Some("https://a"), "42")))),
            "access_denied"
        );
        let subject = EndpointPolicy::both().private_to_subject("https://a", "42");
        assert_eq!(
            code(run(&subject, None, Some(from(Some("https://a"), "42")))),
            "bearer"
        );
        for other in [from(Some("https://b"), "42"), from(None, "42")] {
            assert_eq!(code(run(&subject, None, Some(other))), "access_denied");
        }
        assert_eq!(
            code(run(&subject, Some(key(Some("42"))), None)),
            "access_denied"
        );
    }

    #[test]
    fn outcomes_are_consumed() {
        let mut ext = Extensions::new();
        ext.insert(key(None));
        decide(&EndpointPolicy::open(), &mut ext).unwrap();
        assert!(ext.get::<ApiKeyOutcome>().is_none());
    }
}
