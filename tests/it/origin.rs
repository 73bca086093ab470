//! DNS-rebinding protection through a real axum `Router`: the `OriginLayer` alone and in
//! `McpAuth`, and protected resource metadata at the path-inserted URL and the root.

use crate::common;

use axum::routing::get_service;
use common::{assert_error, client, registry, routes, serve};
use serde_json::Value;
use tower_mcp_auth::metadata::{metadata_paths, resource_url};
use tower_mcp_auth::origin::OriginLayer;
use tower_mcp_auth::{
    metadata::ProtectedResourceMetadata, AuthFailure, AuthFailureKind, EndpointPolicy, McpAuth,
};

async fn post(base: &str, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = client().post(format!("{base}{path}"));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn mcp_auth_refuses_a_foreign_origin_with_403_before_reading_credentials() {
    let base = serve(|base| {
        let auth = McpAuth::builder()
            .api_keys(registry())
            .public_base_url(base)
            .endpoint("/open", EndpointPolicy::open())
            .endpoint("/key", EndpointPolicy::api_key_only())
            .origin(OriginLayer::loopback())
            .build()
            .unwrap();
        routes().layer(auth)
    })
    .await;

    // A rebinding page: its own origin, even with a good key and on an open endpoint.
    for (path, extra) in [("/open", None), ("/key", Some(common::ALICE_KEY))] {
        let mut headers = vec![("origin", "http://evil.example.com")];
        if let Some(key) = extra {
            headers.push(("x-api-key", key));
        }
        let res = post(&base, path, &headers).await;
        assert!(res.headers().get("www-authenticate").is_none());
        let body = assert_error(res, 403, "invalid_origin").await;
        assert_eq!(
            body["error_description"],
            "The request origin is not allowed"
        );
        assert!(!body.to_string().contains(common::ALICE_KEY));
    }
    for bad in ["null", "http://localhost.evil.com", "http://127.0.0.1:1/x"] {
        assert_error(
            post(&base, "/open", &[("origin", bad)]).await,
            403,
            "invalid_origin",
        )
        .await;
    }

    // No Origin (a non-browser client) and loopback pages pass, the policy still decides.
    assert_eq!(post(&base, "/open", &[]).await.status(), 200);
    let port = base.rsplit(':').next().unwrap();
    for good in [
        format!("http://127.0.0.1:{port}"),
        "http://LOCALHOST:5173".into(),
        "https://[::1]".into(),
    ] {
        assert_eq!(
            post(&base, "/open", &[("origin", &good)]).await.status(),
            200,
            "{good}"
        );
    }
    let res = post(&base, "/key", &[("origin", "http://localhost:6274")]).await;
    assert_error(res, 401, "authentication_required").await;
    let res = post(
        &base,
        "/key",
        &[
            ("origin", "http://localhost:6274"),
            ("x-api-key", common::ALICE_KEY),
        ],
    )
    .await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn origin_layer_alone_with_an_allowlist_and_hosts() {
    let base = serve(|_| {
        let layer = OriginLayer::builder()
            .allow_origin("https://App.Example.com")
            .allowed_hosts(["127.0.0.1", "mcp.example.com"])
            .build()
            .unwrap();
        routes()
            .layer(layer)
            // An outer layer sees the typed marker, as the failed-auth limiter would.
            .layer(axum::middleware::map_response(
                |mut res: axum::response::Response| async move {
                    if let Some(f) = res.extensions().get::<AuthFailure>() {
                        assert_eq!(f.kind, AuthFailureKind::InvalidOrigin);
                        res.headers_mut()
                            .insert("x-failure", "invalid_origin".parse().unwrap());
                    }
                    res
                },
            ))
    })
    .await;
    let ok = post(&base, "/open", &[("origin", "https://app.example.com:443")]).await;
    assert_eq!(ok.status(), 200);
    let ok = post(&base, "/open", &[("host", "MCP.example.com:8080")]).await;
    assert_eq!(ok.status(), 200);

    let res = post(&base, "/open", &[("origin", "http://app.example.com")]).await;
    assert_eq!(res.headers()["x-failure"], "invalid_origin");
    assert_error(res, 403, "invalid_origin").await;
    // A rebinding request carries the attacker's name in Host; an origin-less one too.
    let res = post(&base, "/open", &[("host", "evil.example.com")]).await;
    let body = assert_error(res, 403, "invalid_origin").await;
    assert_eq!(body["error_description"], "The request host is not allowed");
}

#[tokio::test]
async fn metadata_is_served_at_the_path_inserted_url_and_at_the_root() {
    let base = serve(|base| {
        let doc = ProtectedResourceMetadata::new(resource_url(base, "/mcp"))
            .authorization_server("https://auth.example.com")
            .into_service();
        let mut app = routes();
        for path in metadata_paths("/mcp") {
            app = app.route(&path, get_service(doc.clone()));
        }
        app
    })
    .await;
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let res = client().get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(res.headers()["content-type"], "application/json");
        let doc: Value = res.json().await.unwrap();
        assert_eq!(doc["resource"], format!("{base}/mcp"), "{path}");
        assert_eq!(doc["authorization_servers"][0], "https://auth.example.com");
    }
}
