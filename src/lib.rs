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
//!     assert_eq!(kv.get("session_token").await?.as_deref(), Some(&json!("abc123")));
//!
//!     let inbox = kv.list_append_unique("inbox", vec![json!({"id": 1, "body": "hi"})]).await?;
//!     assert_eq!(inbox.len(), 1);
//!     assert_eq!(kv.list_pop_all("inbox").await?, inbox);
//!     Ok(())
//! }
//! ```
//!
//! A read hands out the store's own `Arc<Value>`. To answer an axum request with it, serialize a
//! reference, `Json(&*v).into_response()`, not `Json(v)`: serde implements `Serialize` for
//! `Arc<Value>` only with its `rc` feature.
//!
//! # When to use it
//! For short-lived state shared between the tasks of one process: caches, inboxes, leases, per-run
//! scratch data, hand-offs between tasks. Its API follows the `EphemeralKV` reference (a Python
//! library's): `set`, `get`, `delete`, `list_append_unique`, `list_pop_all`, `mset`, `mget`,
//! `expire`, `purge_expired`, with the same meanings.
//!
//! # Coordination
//! Beyond the reference, it has the toolkit that locks, counters and hand-offs need, each call one
//! atomic command: [`incr`](KvHandle::incr) with a create-only TTL,
//! [`set_if_absent`](KvHandle::set_if_absent) (leases), [`compare_and_set`](KvHandle::compare_and_set),
//! [`update`](KvHandle::update) and [`transaction`](KvHandle::transaction) (short closures run on
//! the owner task, all or nothing, panics caught), [`get_del`](KvHandle::get_del),
//! [`exists`](KvHandle::exists), [`ttl`](KvHandle::ttl), [`persist`](KvHandle::persist),
//! [`scan_prefix`](KvHandle::scan_prefix), a change feed [`watch`](KvHandle::watch) and
//! [`wait_for`](KvHandle::wait_for).
//!
//! ```
//! use std::time::Duration;
//! use ephemeral_kv::KvHandle;
//! use serde_json::json;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), ephemeral_kv::KvError> {
//! let kv = KvHandle::spawn();
//! // A lease: exactly one worker gets it; it frees itself if the holder dies.
//! assert!(kv.set_if_absent("lock:job:7", "worker-1").ttl(Duration::from_secs(30)).await?);
//! // A rate limiter's counter: the window starts with the first hit.
//! assert_eq!(kv.incr("rate:1.2.3.4", 1).ttl(Duration::from_secs(60)).await?, 1);
//! // A hand-off: the waiter gets the value as soon as it is there.
//! let waiter = kv.clone();
//! let result = tokio::spawn(async move { waiter.wait_for("job:7:result").await });
//! kv.set("job:7:result", json!({"rows": 3})).await?;
//! assert_eq!(*result.await.unwrap()?, json!({"rows": 3}));
//! # Ok(())
//! # }
//! ```
//!
//! # Beyond one process: Redis
//! With the `redis` cargo feature, `KvHandle::builder().prefix("app:").redis(url).await?` returns
//! the same [`KvHandle`], with the same calls, running them on a Redis server: several processes
//! share one store (leases, inboxes, counters) without changing their code. `docs/redis.md` in the
//! repository lists what differs there. `redis_cluster(urls)` runs the same handle on a Redis
//! Cluster; give it a prefix with a hash tag (`{tenant-7}:`), which keeps every key of the handle
//! in one hash slot and so every call's guarantees (`docs/redis-deploy.md`).
//!
//! # Logging
//! The crate logs with [`tracing`], under targets that start with `ephemeral_kv`; with
//! `tracing-subscriber`'s env filter, `RUST_LOG=ephemeral_kv=debug` shows all of it.
//! - `debug`: one line per command, with its operation, its key (or prefix, or number of keys;
//!   never a value), what came of it (`hit`, `miss`, `applied`, `refused`, `ok`, `waiting`, or
//!   the error's kind) and how long the owner task took (`took_us`); and each sweep of active
//!   expiry that removed something. The line is logged inside the span the call was made in, so a
//!   request's span ties its calls to their commands.
//! - `warn`: a panic caught in an `update` or `transaction` closure, a watch stream that fell
//!   behind, a failed Redis connection (the next call reconnects), optimistic retries exhausted.
//! - `info`: an owner task's start, its shutdown, and its end.
//!
//! With no subscriber listening, each command costs one cached check for all of this.
//!
//! # When not to
//! It is cleared when the process ends, not replicated, and meant for small values: not a database,
//! not a blob store, not a cache with size-aware or frequency-based eviction (reach for `moka` for
//! that). It can be bounded by a number of entries
//! ([`KvBuilder::max_entries`], refusing new keys or evicting the ones closest to expiry).
//!
//! # Guarantees
//! What every call guarantees is stated in [`KvHandle#guarantees`](KvHandle#guarantees); the
//! precise rules are in `docs/rules.md` in the repository.
//!
//! # Performance
//! A call is a round trip to the owner task, cheap between two tasks of a multi-thread runtime.
//! Calls from the `#[tokio::main]` body itself pay two thread hand-offs each (several times
//! slower): spawn the loop, use a `current_thread` runtime, or batch with [`KvHandle::mget`] and
//! [`KvHandle::mset`]. `docs/performance.md` has the numbers.
//!
//! See [`KvHandle`] for the details of each.
//!
//! # Design
//! One owner task per store applies a command enum that every call is turned into; how a call
//! flows from [`KvHandle`] to the map is drawn in `ARCHITECTURE.md`.

// The caller side: the handle, its builder and the awaitable call values.
mod builder;
pub mod calls;
mod handle;
mod mailbox;

// Between the two sides: the commands, as plain data, and what they carry.
mod closure;
mod command;
mod txn;

// The executors, each handling every command.
mod local;
#[cfg(feature = "redis")]
mod redis;

// Shared by all of it.
#[cfg(feature = "durable")]
mod durability;
mod error;
mod eviction;
mod stats;
mod ttl;
mod value;

pub use builder::KvBuilder;
pub use calls::{
    CompareAndSet, Incr, List, ListAppendUnique, ListPopFront, ListPush, Mset, Pending,
    PurgeExpired, ScanPrefix, Set, SetIfAbsent, Watch, WatchEvent, WatchStream, DEFAULT_ID_KEY,
    DEFAULT_PURGE_LIMIT, DEFAULT_WATCH_CAPACITY, MAX_WATCH_CAPACITY,
};
#[cfg(feature = "durable")]
pub use durability::Durability;
#[cfg(feature = "durable")]
pub use error::DurableErrorKind;
pub use error::{BackendErrorKind, KvError};
pub use eviction::Eviction;
pub use handle::KvHandle;
pub use stats::Stats;
pub use ttl::Ttl;
pub use txn::Txn;
pub use value::MAX_DEPTH;

/// The README's code blocks, compiled and run as doctests so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
