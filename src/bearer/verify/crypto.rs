//! Selecting jsonwebtoken's crypto backend explicitly.
//!
//! jsonwebtoken 10+ picks its process-wide `CryptoProvider` from its cargo features and panics
//! at the first verification when *both* or *neither* backend is enabled in the final
//! dependency graph. Feature unification makes "both" easy to hit (another crate enables
//! `aws_lc_rs`, this one `rust_crypto`). Installing a provider ourselves, once, before any
//! key is used, makes every combination work.

#[cfg(not(any(feature = "rust-crypto", feature = "aws-lc-rs")))]
compile_error!(
    "tower-mcp-auth needs a JWT crypto backend: enable `rust-crypto` (default) or `aws-lc-rs`"
);

/// Installs this crate's jsonwebtoken crypto provider for the process, if none is installed.
///
/// Called automatically when a verifier is built. Call it yourself before using
/// `jsonwebtoken::encode` directly in a program that has not built a verifier yet. With both
/// `aws-lc-rs` and `rust-crypto` enabled, `aws-lc-rs` wins. Returns whether this call
/// installed the provider (`false` when one was already set, by this crate or the
/// application).
///
/// ```
/// tower_mcp_auth::bearer::install_crypto_provider();
/// let token = jsonwebtoken::encode(
///     &jsonwebtoken::Header::default(),
///     &serde_json::json!({"sub": "demo", "exp": 4_000_000_000u64}),
///     &jsonwebtoken::EncodingKey::from_secret(b"secret"),
/// ).unwrap();
/// assert_eq!(token.split('.').count(), 3);
/// ```
pub fn install_crypto_provider() -> bool {
    #[cfg(feature = "aws-lc-rs")]
    let provider = &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER;
    #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
    let provider = &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
    provider.install_default().is_ok()
}
