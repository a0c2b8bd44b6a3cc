//! The caller side's call values: one generic [`Pending`] call, and the arguments of each call with
//! options.
//!
//! The reference's keyword arguments (`ttl_s`, `id_key`, `limit`) become methods on these values,
//! which are then awaited: `kv.set("k", 1).ttl(Duration::from_secs(60)).await`. Nothing is sent to
//! the store until the value is first polled.
//!
//! Input is checked here, on the caller's side, before a command is built, so that a bad call
//! changes nothing and costs the shared owner task nothing.
//!
//! - [`pending`]: [`Pending`], the future every call with options is, written once.
//! - [`write`]: `set`, `set_if_absent`, `compare_and_set`, `mset`, `incr`.
//! - [`list`]: `list_append_unique`, `list_push`, and the shared [`List`].
//! - [`scan`]: `purge_expired`, `scan_prefix`.
//! - [`watch`]: `watch`, and the stream and events it gives.

mod list;
mod pending;
mod scan;
mod watch;
mod write;

pub use list::{
    List, ListAppendUnique, ListAppendUniqueArgs, ListPush, ListPushArgs, DEFAULT_ID_KEY,
};
pub use pending::Pending;
pub use scan::{PurgeExpired, PurgeExpiredArgs, ScanPrefix, ScanPrefixArgs, DEFAULT_PURGE_LIMIT};
pub use watch::{
    Watch, WatchArgs, WatchEvent, WatchStream, DEFAULT_WATCH_CAPACITY, MAX_WATCH_CAPACITY,
};
pub use write::{
    CompareAndSet, CompareAndSetArgs, Incr, IncrArgs, Mset, MsetArgs, Set, SetArgs, SetIfAbsent,
    SetIfAbsentArgs,
};
