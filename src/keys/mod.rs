//! API-key lifecycle (feature `keys`, implied by `postgres`, `sqlite` and `redis`): keys
//! created, listed, rotated and revoked at run time in a durable [`KeyStore`], and mirrored
//! into the [`ApiKeyRegistry`](crate::ApiKeyRegistry) the server reads by [`KeySync`].
//!
//! ```text
//! operator ─▶ examples/keys.rs / your admin API ─▶ KeyStore (PostgreSQL, SQLite, Redis)
//!                                                     │ revision, load: every 2 s
//! request ─▶ ApiKeyLayer ─▶ KeySync::key_lookup ─▶ ApiKeyRegistry (memory, no lock)
//! ```
//!
//! * Only SHA-256 hashes are stored; [`create`](KeyStore::create) and
//!   [`rotate`](KeyStore::rotate) return the plaintext once ([`CreatedKey`]).
//! * A revoke reaches every instance within [`DEFAULT_SYNC_INTERVAL`] (configurable).
//! * A rotated key keeps working until its grace deadline, then expires.
//! * Last-used times are written in batches every [`DEFAULT_USAGE_FLUSH_INTERVAL`].
//! * [`connect`] opens a store from a URL (`memory`, `redis://`, `postgres://`, `sqlite:`).

mod connect;
mod error;
mod memory;
mod record;
mod store;
mod sync;
mod usage;

pub use connect::connect;
pub use error::KeysError;
pub use memory::MemoryKeyStore;
pub use record::{CreatedKey, KeyInfo, KeyRecord};
pub use store::{KeyStore, KeysResult};
pub use sync::{
    KeySync, KeySyncBuilder, SyncedKeys, DEFAULT_SYNC_INTERVAL, DEFAULT_USAGE_FLUSH_INTERVAL,
};

pub(crate) use record::{from_micros, to_micros};
