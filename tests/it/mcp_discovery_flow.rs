//! The MCP authorization flow a standard client follows, against the `four_modes` example
//! configured only with `OAUTH_ISSUER` (feature `jwks`): 401 → protected resource metadata →
//! authorization server metadata → token → retry. Nothing in the server is specific to the
//! authorization server, which here is a local standards-shaped IdP.
#![cfg(feature = "jwks")]

use crate::common;
use crate::example_process;
use crate::idp;

use common::assert_error;
use idp::{Idp, SigningKey};
use serde_json::{json, Value};

fn mcp_call() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
}

/// The `resource_metadata` parameter of a Bearer challenge.
fn resource_metadata(challenge: &str) -> String {
    let start = challenge
        .find("resource_metadata=\"")
        .expect("resource_metadata")
        + 19;
    let rest = &challenge[start..];
    rest[..rest.find('"').unwrap()].to_owned()
}

#[tokio::test]
async fn standard_client_discovers_the_authorization_server_and_gets_in() {
    let key = SigningKey::rsa();
    let idp = Idp::start(&[&key]).await;
    let issuer = idp.issuer();
    let Some(server) = example_process::start(
        "four_modes",
        &[
            ("ENABLE_API_KEY_AUTH", "false"),
            ("ENABLE_OAUTH", "true"),
            ("OAUTH_ISSUER", &issuer),
            ("OAUTH_SCOPES", "mcp:tools"),
        ],
    )
    .await
    else {
        return;
    };
    let base = server.base.clone();
    let client = reqwest::Client::new();
    let post = || client.post(format!("{base}/mcp")).json(&mcp_call());

    // 1. No token: 401 with a challenge naming the metadata and the scope.
    let res = post().send().await.unwrap();
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.contains(r#"scope="mcp:tools""#), "{challenge}");
    assert_error(res, 401, "authentication_required").await;

    // 2. Protected resource metadata: the exact resource URL, the AS, the scopes.
    let prm: Value = client
        .get(resource_metadata(&challenge))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let resource = format!("{base}/mcp");
    assert_eq!(prm["resource"], resource);
    assert_eq!(prm["authorization_servers"], json!([issuer]));
    assert_eq!(prm["scopes_supported"], json!(["mcp:tools"]));

    // 3. Authorization server metadata (RFC 8414) from the advertised issuer.
    let as_url = prm["authorization_servers"][0].as_str().unwrap();
    let asm: Value = client
        .get(format!("{as_url}/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(asm["issuer"], issuer);

    // 4. The AS issues an RFC 9068 token for this resource (RFC 8707 audience)...
    let mut claims = idp.claims("alice");
    claims["aud"] = json!(resource);
    claims["scope"] = json!("mcp:tools");
    let token = key.sign_with(&claims, Some(&key_id(&key)), Some("at+jwt"));
    // 5. ... and the retry gets in.
    let res = post().bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["caller"]["user_id"], "alice");

    // A token for another resource is refused, and so is one without the scope (step-up).
    claims["aud"] = json!("https://other.example/mcp");
    let res = post()
        .bearer_auth(key.sign_with(&claims, Some(&key_id(&key)), None))
        .send()
        .await
        .unwrap();
    let body = assert_error(res, 401, "invalid_token").await;
    assert_eq!(
        body["error_description"],
        "The access token audience is not accepted"
    );
    claims["aud"] = json!(resource);
    claims["scope"] = json!("other");
    let res = post()
        .bearer_auth(key.sign_with(&claims, Some(&key_id(&key)), None))
        .send()
        .await
        .unwrap();
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains(r#"error="insufficient_scope""#),
        "{challenge}"
    );
    assert!(challenge.contains(r#"scope="mcp:tools""#), "{challenge}");
    assert_error(res, 403, "insufficient_scope").await;
}

fn key_id(key: &SigningKey) -> String {
    key.kid.clone()
}
