//! An ephemeral, process-local key-value store for small JSON values, with per-key TTLs and list
//! helpers, built as a tokio actor.
//!
//! ```toml
//! [dependencies]
//! ephemeral-kv = "0.1"
//! serde_json = "1"
//! tokio = { version = "1", features = ["macros", "rt-multi-thread"] }
//! ```
//!
//! ```
//! use std::time::Duration;
//! use ephemeral_kv::KvHandle;
//! use serde_json::json;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), ephemeral_kv::KvError> {
//!     let kv = KvHandle::spawn();
//!     kv.set("session_token", "abc123").await?;
//!     kv.set("user_id", 42).ttl(Duration::from_secs(600)).await?;
//!     assert_eq!(kv.get("session_token").await?, Some(json!("abc123")));
//!
//!     let inbox = kv.list_append_unique("inbox", vec![json!({"id": 1, "body": "hi"})]).await?;
//!     assert_eq!(inbox.len(), 1);
//!     assert_eq!(kv.list_pop_all("inbox").await?, inbox);
//!     Ok(())
//! }
//! ```
//!
//! # When to use it
//! For short-lived state shared between the tasks of one process: caches, inboxes, leases, per-run
//! scratch data, hand-offs between tasks. Its API follows the `EphemeralKV` reference (a Python
//! library's): `set`, `get`, `delete`, `list_append_unique`, `list_pop_all`, `mset`, `mget`,
//! `expire`, `purge_expired`, with the same meanings.
//!
//! # When not to
//! It is cleared when the process ends, not replicated, and meant for small values: not a database,
//! not a blob store, not a cache with size-based eviction (reach for `moka` for that).
//!
//! # Guarantees
//! - Every call is one command applied whole by a single owner task, so calls are atomic and
//!   linearizable, with no lock on the data path.
//! - An expired key is invisible to every call.
//! - A call that fails changes nothing; see [`KvError`].
//! - Dropping a call's future never harms the store.
//!
//! See [`KvHandle`] for the details of each.
//!
//! # Layout
//! A call flows in one direction through these modules (`ARCHITECTURE.md` draws it):
//! - `handle`: [`KvHandle`] and [`KvBuilder`]; turns a call into a command, sends it, awaits the
//!   answer.
//! - `calls`: the awaitable values of calls with options ([`Set`], [`ListAppendUnique`], [`Mset`],
//!   [`PurgeExpired`]) and the input checks.
//! - `command`: the command enum, the single list of what the store can do.
//! - `owner`: the owner task; receives commands in batches, applies them, runs active expiry, stops.
//! - `store`: the map and its rules, plain synchronous code.
//! - `stats`: [`Stats`], a snapshot of what the store holds.
//! - `expiry`: the index of deadlines that makes purging cost what it removes.
//! - `error`: [`KvError`].

#![warn(missing_docs)]

mod calls;
mod changes;
mod command;
mod coordination;
mod error;
mod expiry;
mod handle;
mod owner;
mod stats;
mod store;
mod ttl;
mod txn;
mod watch;
mod watchers;

pub use calls::{
    CompareAndSet, Incr, ListAppendUnique, Mset, PurgeExpired, ScanPrefix, Set, SetIfAbsent,
    DEFAULT_ID_KEY, DEFAULT_PURGE_LIMIT,
};
pub use error::KvError;
pub use handle::{KvBuilder, KvHandle};
pub use stats::Stats;
pub use ttl::Ttl;
pub use txn::Txn;
pub use watch::{Watch, WatchEvent, WatchStream, DEFAULT_WATCH_CAPACITY, MAX_WATCH_CAPACITY};
