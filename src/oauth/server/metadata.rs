//! The discovery documents: RFC 8414 authorization server metadata (also at the OIDC
//! discovery path), RFC 9728 protected resource metadata naming this server, and the JWKS.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde_json::{json, Value};

use super::registration::Registration;
use super::{paths, Inner};

/// A JSON answer that no cache keeps.
pub(crate) fn json(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from(body.to_string())));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

impl Inner {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// RFC 8414.
    pub(crate) fn server_metadata(&self) -> Value {
        let mut doc = json!({
            "issuer": self.issuer,
            "authorization_endpoint": self.url(paths::AUTHORIZE),
            "token_endpoint": self.url(paths::TOKEN),
            "revocation_endpoint": self.url(paths::REVOKE),
            "jwks_uri": self.url(paths::JWKS),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
            "revocation_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
            "scopes_supported": self.scopes,
            "authorization_response_iss_parameter_supported": true,
            "client_id_metadata_document_supported": self.cimd,
        });
        if !matches!(self.registration, Registration::Off) {
            doc["registration_endpoint"] = self.url(paths::REGISTER).into();
        }
        doc
    }

    /// RFC 9728 for the MCP endpoint.
    pub(crate) fn resource_metadata(&self) -> Value {
        json!({
            "resource": self.resource,
            "authorization_servers": [self.issuer],
            "scopes_supported": self.scopes,
            "bearer_methods_supported": ["header"],
        })
    }

    /// The public keys: the signing key first, retired ones after it.
    pub(crate) fn jwks(&self) -> Value {
        json!({ "keys": self.keys.iter().map(|k| k.jwk().clone()).collect::<Vec<_>>() })
    }
}
