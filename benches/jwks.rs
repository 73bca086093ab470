//! Per-token cost of `JwksVerifier` (keys fetched from a local IdP) for RS256 and ES256, with
//! and without `CachedVerifier`, beside a bare `jsonwebtoken::decode` of the same token with
//! an equivalent, prebuilt `Validation` in the same run.
//!
//! Target: a cache hit costs at most 0.2x an uncached verification.
//!
//! `cargo bench --features jwks --bench jwks` (add `-- --warm-up-time 1 --measurement-time 3`
//! for a quick run).

#[path = "../tests/idp/mod.rs"]
mod idp;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use idp::{Idp, SigningKey, AUDIENCE};
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::{Map, Value};
use tower_mcp_auth::{
    bearer::{CachedVerifier, JwksVerifier},
    TokenVerifier,
};

fn bench_jwks(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (rsa, ec) = (SigningKey::rsa(), SigningKey::ec());
    let idp = runtime.block_on(Idp::start(&[&rsa, &ec]));
    // Built inside the runtime so its refresh task runs there; keys fetched before timing.
    let verifier = runtime.block_on(async {
        let v = JwksVerifier::from_issuer(idp.issuer())
            .audience(AUDIENCE)
            .build()
            .expect("verifier");
        v.refresh().await.expect("keys from the local IdP");
        v
    });
    let cached = CachedVerifier::new(verifier.clone());
    let _guard = runtime.enter();

    let cases = [
        ("rs256", &rsa, DecodingKey::from_rsa_pem(idp::RSA_PUBLIC)),
        (
            "es256",
            &ec,
            DecodingKey::from_ec_pem(include_bytes!("../tests/fixtures/ec_public.pem")),
        ),
    ];
    for (name, key, decoding) in cases {
        let decoding = decoding.expect("public key");
        let token = key.sign(&idp.claims("bench"));
        let mut validation = Validation::new(key.alg);
        validation.algorithms = vec![key.alg];
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[idp.issuer()]);
        validation.set_required_spec_claims(&["exp", "aud", "iss"]);

        let ready = |v: &dyn TokenVerifier| {
            v.verify(black_box(&token))
                .try_into_ready()
                .expect("known kid: ready")
                .expect("valid token")
        };
        // Sanity: all three accept the token before anything is timed.
        ready(&verifier);
        ready(&cached);
        jsonwebtoken::decode::<Map<String, Value>>(&token, &decoding, &validation).unwrap();

        let mut g = c.benchmark_group(format!("jwks/{name}"));
        g.bench_function("bare_jsonwebtoken_decode", |b| {
            b.iter(|| {
                jsonwebtoken::decode::<Map<String, Value>>(
                    black_box(&token),
                    &decoding,
                    &validation,
                )
                .unwrap()
            })
        });
        g.bench_function("jwks_verifier", |b| b.iter(|| ready(&verifier)));
        g.bench_function("cached_jwks_verifier", |b| b.iter(|| ready(&cached)));
        g.finish();
    }
}

criterion_group!(benches, bench_jwks);
criterion_main!(benches);
