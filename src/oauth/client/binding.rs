//! The cookie that ties a flow to the browser that started it: an HMAC of the flow's
//! nonce under the state secret, sent back only to the callback route.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use http::header::HeaderValue;
use http::HeaderMap;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::credentials::{cookie, Presented};
use crate::oauth::session::cookie_header_at;

use super::OAuthClient;

/// Domain separation: the state secret also signs states.
const CONTEXT: &[u8] = b"browser-binding\0";

impl OAuthClient {
    /// The `Set-Cookie` binding the flow `nonce` to this browser, for the state's lifetime.
    pub(super) fn flow_cookie(&self, nonce: &str) -> HeaderValue {
        self.flow_cookie_header(
            nonce,
            &binding_value(self.inner.signer.first_secret(), nonce),
            self.inner.state_ttl.as_secs().max(1),
        )
    }

    /// The `Set-Cookie` that removes the binding once the flow is over.
    pub(super) fn clear_flow_cookie(&self, nonce: &str) -> HeaderValue {
        self.flow_cookie_header(nonce, "", 0)
    }

    /// Whether the request carries the binding of the flow `nonce`, made under any
    /// configured secret (rotation), compared in constant time.
    pub(super) fn flow_cookie_matches(&self, headers: &HeaderMap, nonce: &str) -> bool {
        let Presented::Value(got) = cookie(headers, &flow_cookie_name(nonce)) else {
            return false;
        };
        self.inner.signer.all_secrets().any(|secret| {
            let want = binding_value(secret, nonce);
            bool::from(want.as_bytes().ct_eq(got.as_bytes()))
        })
    }

    /// Sent back only to the callback route.
    fn flow_cookie_header(&self, nonce: &str, value: &str, max_age: u64) -> HeaderValue {
        cookie_header_at(
            &flow_cookie_name(nonce),
            value,
            max_age,
            self.inner.flow_cookie_secure,
            &self.inner.callback_path,
        )
    }
}

/// One cookie per flow, so parallel flows in one browser do not overwrite each other.
fn flow_cookie_name(nonce: &str) -> String {
    let short: String = nonce.chars().take(16).collect();
    format!("mcp_oauth_{short}")
}

fn binding_value(secret: &[u8], nonce: &str) -> String {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(CONTEXT);
    mac.update(nonce.as_bytes());
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}
