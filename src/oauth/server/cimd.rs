//! Client ID Metadata Documents: a `client_id` that is an https URL names a JSON document
//! describing the client. It is fetched with a timeout and a size limit, without following
//! redirects, only from public addresses (the resolved address is pinned, so a DNS answer
//! cannot change between the check and the connection), and cached in the store.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde_json::Value;

use super::errors::ServerError;
use super::records::{both_grants, hash, ClientRecord};
use super::registration::{check_redirect_uris, redirect_uris};
use super::Inner;

/// Largest document read.
const MAX_DOCUMENT: usize = 5 * 1024;
/// Fetch deadline (DNS, connection and body).
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a fetched document is reused.
const CACHE_TTL: Duration = Duration::from_secs(300);

/// Whether `id` is meant as a metadata document URL.
pub(crate) fn is_document_url(id: &str) -> bool {
    id.starts_with("https://") || id.starts_with("http://")
}

/// Addresses a server must not be made to fetch from: loopback, private, link-local,
/// shared, unspecified, multicast, documentation ranges, and their IPv4-mapped forms.
pub(crate) fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || s[0] == 0x2001 && s[1] == 0x0db8)
        }
    }
}

impl Inner {
    /// The client a metadata document URL describes: from the cache, else fetched.
    pub(crate) async fn document_client(
        &self,
        url: &str,
    ) -> Result<Option<ClientRecord>, ServerError> {
        let key = hash(url);
        if let Some(cached) = self.records.get::<ClientRecord>("cimd", &key).await? {
            return Ok(Some(cached));
        }
        let record = match self.fetch_document(url).await {
            Ok(record) => record,
            Err(reason) => {
                tracing::info!(%reason, "client id metadata document refused");
                return Ok(None);
            }
        };
        self.records.put("cimd", &key, &record, CACHE_TTL).await?;
        Ok(Some(record))
    }

    async fn fetch_document(&self, url: &str) -> Result<ClientRecord, &'static str> {
        let parsed = oauth2::url::Url::parse(url).map_err(|_| "not a URL")?;
        let host = parsed.host_str().ok_or("no host")?.to_owned();
        let loopback_http = parsed.scheme() == "http"
            && self.cimd_allow_loopback
            && matches!(host.as_str(), "127.0.0.1" | "localhost" | "[::1]");
        if parsed.scheme() != "https" && !loopback_http {
            return Err("not https");
        }
        if parsed.path().len() < 2
            || parsed.fragment().is_some()
            || !parsed.username().is_empty()
            || parsed.password().is_some()
        {
            return Err("the URL needs a path and no fragment or credentials");
        }
        let port = parsed.port_or_known_default().ok_or("no port")?;
        let lookup = tokio::time::timeout(
            FETCH_TIMEOUT,
            tokio::net::lookup_host((host.trim_matches(['[', ']']), port)),
        )
        .await
        .map_err(|_| "DNS timeout")?
        .map_err(|_| "DNS failure")?;
        let addrs: Vec<SocketAddr> = lookup.collect();
        let allowed = |a: &SocketAddr| {
            is_public(a.ip()) || (self.cimd_allow_loopback && a.ip().is_loopback())
        };
        if addrs.is_empty() || !addrs.iter().all(allowed) {
            return Err("the host resolves to a non-public address");
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(FETCH_TIMEOUT)
            .resolve_to_addrs(host.trim_matches(['[', ']']), &addrs)
            .tls_certs_merge(self.cimd_roots.iter().cloned())
            .build()
            .map_err(|_| "HTTP client")?;
        let mut res = client
            .get(parsed.as_str())
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| {
                // The reason is static; the transport error (TLS, connection) is for the log.
                tracing::debug!(error = ?std::error::Error::source(&e), "metadata document fetch failed");
                "fetch failed"
            })?;
        if res.status() != reqwest::StatusCode::OK {
            return Err("the document URL did not answer 200");
        }
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(|_| "read failed")? {
            if body.len() + chunk.len() > MAX_DOCUMENT {
                return Err("the document is too large");
            }
            body.extend_from_slice(&chunk);
        }
        let doc: Value = serde_json::from_slice(&body).map_err(|_| "not JSON")?;
        if doc["client_id"].as_str() != Some(url) {
            return Err("the document's client_id is not its URL");
        }
        match doc["token_endpoint_auth_method"].as_str() {
            None | Some("none") => {}
            Some(_) => return Err("only public clients (token_endpoint_auth_method none)"),
        }
        let redirect_uris = redirect_uris(&doc);
        check_redirect_uris(&redirect_uris)?;
        Ok(ClientRecord {
            client_id: url.to_owned(),
            secret_hash: None,
            redirect_uris,
            name: doc["client_name"]
                .as_str()
                .map(|n| n.chars().take(100).collect()),
            grant_types: both_grants(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::is_public;

    #[test]
    fn private_ranges_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.1.1",
            "172.16.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }
}
