//! Finding an issuer's `jwks_uri` from its metadata (RFC 8414, OpenID Connect Discovery).

use std::time::Duration;

use reqwest::{Client, Url};
use serde::Deserialize;

use super::super::remote::{get_json, parse_url, FetchError};
use super::JwksError;

#[derive(Deserialize)]
struct Metadata {
    issuer: Option<String>,
    jwks_uri: Option<String>,
}

/// Where an issuer's metadata may live, in the order the MCP authorization spec tries them:
/// RFC 8414 path insertion, OpenID Connect path insertion, OpenID Connect path appending.
/// Without a path the last two coincide.
pub(super) fn metadata_urls(issuer: &Url) -> Vec<Url> {
    let path = issuer.path().trim_end_matches('/');
    let mut paths = vec![
        format!("/.well-known/oauth-authorization-server{path}"),
        format!("/.well-known/openid-configuration{path}"),
    ];
    if !path.is_empty() {
        paths.push(format!("{path}/.well-known/openid-configuration"));
    }
    paths
        .into_iter()
        .map(|p| {
            let mut url = issuer.clone();
            url.set_path(&p);
            url.set_query(None);
            url.set_fragment(None);
            url
        })
        .collect()
}

/// Fetches the issuer's metadata and returns its `jwks_uri`.
///
/// The metadata's `issuer` must equal the configured one exactly (RFC 8414 section 3.3):
/// otherwise a server could hand out keys for another issuer.
pub(super) async fn discover_jwks_uri(
    client: &Client,
    issuer: &str,
    issuer_url: &Url,
    timeout: Duration,
    allow_http: bool,
) -> Result<Url, JwksError> {
    let mut last = None;
    for url in metadata_urls(issuer_url) {
        match get_json::<Metadata>(client, &url, timeout).await {
            Ok(metadata) => {
                if metadata.issuer.as_deref() != Some(issuer) {
                    return Err(JwksError::IssuerMismatch {
                        expected: issuer.to_owned(),
                        found: metadata.issuer,
                    });
                }
                let raw = metadata
                    .jwks_uri
                    .ok_or_else(|| JwksError::NoJwksUri("missing".into()))?;
                return parse_url(&raw, allow_http)
                    .map_err(|_| JwksError::NoJwksUri(format!("not a usable URL: {raw}")));
            }
            // A slow server would make every candidate wait a full timeout: stop here.
            Err(FetchError::Timeout) => return Err(JwksError::fetch(&url, FetchError::Timeout)),
            Err(e) => last = Some(JwksError::fetch(&url, e)),
        }
    }
    Err(last.unwrap_or_else(|| JwksError::NoJwksUri("no metadata URL".into())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(issuer: &str) -> Vec<String> {
        metadata_urls(&Url::parse(issuer).unwrap())
            .into_iter()
            .map(String::from)
            .collect()
    }

    #[test]
    fn well_known_urls_without_path() {
        assert_eq!(
            urls("https://as.example.com"),
            [
                "https://as.example.com/.well-known/oauth-authorization-server",
                "https://as.example.com/.well-known/openid-configuration",
            ]
        );
        assert_eq!(
            urls("https://as.example.com/"),
            urls("https://as.example.com")
        );
    }

    #[test]
    fn well_known_urls_with_path_are_inserted_then_appended() {
        assert_eq!(
            urls("https://as.example.com:8443/tenant/1/"),
            [
                "https://as.example.com:8443/.well-known/oauth-authorization-server/tenant/1",
                "https://as.example.com:8443/.well-known/openid-configuration/tenant/1",
                "https://as.example.com:8443/tenant/1/.well-known/openid-configuration",
            ]
        );
    }
}
