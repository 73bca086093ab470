//! `src/oauth/state.rs` and the callback's parameter parsing (feature `oauth-client`).
//!
//! Input lines: `p:` `u:` `g:` `r:` `n:` payload fields for a state to sign (provider, user,
//! upstream, redirect target, nonce), `m:` `<position> <byte>` a mutation of the signed
//! state, `s:` a raw state to verify, `q:` a callback query string, `x:` extra callback
//! query parameters sent next to a genuine state (from a real `start`).
//!
//! Invariants beyond "no panic":
//! - `verify(sign(p)) == p`, under the signer and under a signer that keeps it as the
//!   previous secret, and never under another secret;
//! - any change to a signed state fails verification; a raw state never verifies;
//! - the callback's query parsing: a parameter sent twice is an error, otherwise each value is
//!   what `form_urlencoded` reads, and re-encoding the values parses back to them;
//! - a genuine state is consumed at most once: of two identical callbacks, at most one gets
//!   past the single-use claim, and the other is `AlreadyUsed`; a mutated state is refused as
//!   a bad signature and does not consume the genuine one.
#![no_main]

mod common;

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tower_mcp_auth::__fuzz::{self as f, StatePayload, StateSigner};
use tower_mcp_auth::oauth::{OAuthClient, OAuthError, StateError};

/// The callback's query size limit (`MAX_QUERY` in `src/oauth/client.rs`).
const MAX_QUERY: usize = 16 * 1024;
const A: &[u8] = b"fuzz-secret-a-fuzz-secret-a-fuzz-secret-a";
const B: &[u8] = b"fuzz-secret-b-fuzz-secret-b-fuzz-secret-b";

struct World {
    rt: tokio::runtime::Runtime,
    client: OAuthClient,
    a: StateSigner,
    b_then_a: StateSigner,
    b: StateSigner,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = rt.block_on(f::client());
        World {
            rt,
            client,
            a: StateSigner::new(A).unwrap(),
            b_then_a: StateSigner::new(B).unwrap().previous(A).unwrap(),
            b: StateSigner::new(B).unwrap(),
        }
    })
}

/// Whether a callback outcome means the state's single-use claim was taken.
fn consumed(r: &Result<(), OAuthError>) -> bool {
    !matches!(
        r,
        Err(OAuthError::InvalidRequest(_)
            | OAuthError::UnknownProvider
            | OAuthError::Store(_)
            | OAuthError::State(
                StateError::Missing
                    // Not in the store: never issued, or evicted from the bounded store
                    // under the fuzzer's load; refused either way.
                    | StateError::Unknown
                    | StateError::InvalidSignature
                    | StateError::Expired
                    | StateError::AlreadyUsed
                    | StateError::Mismatch(_)
            ))
    )
}

fn mutate(s: &str, mutation: Option<(usize, u8)>) -> Option<String> {
    let (pos, byte) = mutation?;
    let mut bytes = s.as_bytes().to_vec();
    let pos = pos % bytes.len().max(1);
    *bytes.get_mut(pos)? = byte;
    let m = String::from_utf8(bytes).ok()?;
    (m != s).then_some(m)
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    let mut payload = StatePayload {
        provider: "github".into(),
        upstream: None,
        user: None,
        redirect: "/".into(),
        issued_ms: 1_700_000_000_000,
        nonce: "bm9uY2U".into(),
    };
    let mut mutation = None;
    let mut extra: Option<String> = None;
    for (tag, value) in common::tagged_lines(data) {
        let text = String::from_utf8_lossy(value).into_owned();
        match tag {
            "p" => payload.provider = text,
            "u" => payload.user = Some(text),
            "g" => payload.upstream = Some(text),
            "r" => payload.redirect = text,
            "n" => payload.nonce = text,
            "t" => payload.issued_ms = text.trim().parse().unwrap_or(0),
            "m" => {
                let mut it = text.split_whitespace();
                if let (Some(Ok(p)), Some(Ok(b))) =
                    (it.next().map(str::parse), it.next().map(str::parse))
                {
                    mutation = Some((p, b));
                }
            }
            "s" => {
                for signer in [&w.a, &w.b_then_a] {
                    assert_eq!(
                        f::state_verify(signer, &text),
                        Err(StateError::InvalidSignature),
                        "raw state verified"
                    );
                }
            }
            "q" => check_params(&text),
            "x" => extra = Some(text),
            _ => {}
        }
    }

    // Signing and verification.
    let state = f::state_sign(&w.a, &payload);
    if state.len() <= f::MAX_STATE_LEN {
        assert_eq!(f::state_verify(&w.a, &state).as_ref(), Ok(&payload));
        assert_eq!(
            f::state_verify(&w.b_then_a, &state).as_ref(),
            Ok(&payload),
            "rotation"
        );
    } else {
        assert!(
            f::state_verify(&w.a, &state).is_err(),
            "an over-long state verified"
        );
    }
    assert_eq!(
        f::state_verify(&w.b, &state),
        Err(StateError::InvalidSignature)
    );
    if let Some(m) = mutate(&state, mutation) {
        assert_eq!(
            f::state_verify(&w.a, &m),
            Err(StateError::InvalidSignature),
            "mutated state verified"
        );
    }

    // The callback: a genuine state from `start`, with the fuzzer's extra parameters.
    if let Some(extra) = extra {
        w.rt.block_on(async {
            let Ok(genuine) = f::start_state(&w.client, "github").await else {
                return; // the bounded store is full for the moment
            };
            let path = |s: &str| {
                let mut q = form_urlencoded::Serializer::new(String::new());
                q.append_pair("state", s);
                format!("{}?{}&{}", w.client.callback_path(), q.finish(), extra)
            };
            if let Some(m) = mutate(&genuine, mutation) {
                if let Some(r) = f::callback(&w.client, &path(&m)).await {
                    assert!(!consumed(&r), "a mutated state got past the claim: {r:?}");
                    assert!(
                        matches!(
                            r,
                            Err(OAuthError::State(StateError::InvalidSignature)
                                | OAuthError::InvalidRequest(_))
                        ),
                        "{r:?}"
                    );
                }
            }
            let Some(first) = f::callback(&w.client, &path(&genuine)).await else {
                return;
            };
            let second = f::callback(&w.client, &path(&genuine)).await.unwrap();
            assert!(
                !(consumed(&first) && consumed(&second)),
                "used twice: {first:?} / {second:?}"
            );
            if consumed(&first) {
                assert!(
                    matches!(second, Err(OAuthError::State(StateError::AlreadyUsed))),
                    "{second:?}"
                );
            }
            assert!(
                !matches!(first, Err(OAuthError::State(StateError::AlreadyUsed))),
                "a fresh state (the mutated one must not consume it) was already used"
            );
        });
    }
});

fn check_params(query: &str) {
    let names = ["code", "state", "error", "iss"];
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    match f::callback_params(query, &names) {
        Ok(values) => {
            assert_eq!(values.len(), names.len());
            let mut again = form_urlencoded::Serializer::new(String::new());
            for (name, value) in names.iter().zip(&values) {
                let sent: Vec<&String> = pairs
                    .iter()
                    .filter(|(k, _)| k == name)
                    .map(|(_, v)| v)
                    .collect();
                assert!(sent.len() <= 1, "{name} sent twice was accepted");
                assert_eq!(value.as_ref(), sent.first().copied());
                if let Some(v) = value {
                    again.append_pair(name, v);
                }
            }
            let again = again.finish();
            if again.len() <= MAX_QUERY {
                assert_eq!(
                    f::callback_params(&again, &names).ok().as_ref(),
                    Some(&values),
                    "round trip"
                );
            }
        }
        Err(_) => {
            let repeated = names
                .iter()
                .any(|n| pairs.iter().filter(|(k, _)| k == n).count() > 1);
            assert!(
                repeated || query.len() > MAX_QUERY,
                "refused without a repeated parameter: {query:?}"
            );
        }
    }
}
