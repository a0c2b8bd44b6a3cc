//! The call values: one generic [`Pending`] call that every [`KvHandle`](crate::KvHandle) method
//! returns, and the arguments of each call with options.
//!
//! The reference's keyword arguments (`ttl_s`, `id_key`, `limit`) become methods on these values,
//! which are then awaited: `kv.set("k", 1).ttl(Duration::from_secs(60)).await`. Nothing is sent to
//! the store until the value is first polled.
//!
//! Every call takes one path: its arguments are checked here, on the caller's side, when it is
//! first polled, then turned into one command and sent by one function, so that a bad call
//! changes nothing and costs the shared owner task nothing. Calls with options return a named
//! `Pending` (`Set<'_>` is `Pending<'_, SetArgs>`), whose argument types are exported here so
//! that they can be named (stored in a struct, say) but not built or taken apart: their fields
//! are private, and they are sent only by awaiting. Calls without options return the same
//! `Pending` behind `impl Future` (`stats` and `shutdown`, `async fn`s, await one).
//!
//! - [`Pending`], the future every call is, written once;
//! - `write`: `set`, `set_if_absent`, `compare_and_set`, `mset`, `incr`, and `expire`'s and
//!   `get_del`'s shaping;
//! - `list`: `list_append_unique`, `list_push`, `list_pop_all`'s shaping, and the shared
//!   [`List`];
//! - `read`: the typed reads `get_as` and `wait_for_as`;
//! - `scan`: `purge_expired`, `scan_prefix`;
//! - `transaction`: `transaction` and the slot its result comes back in;
//! - `store`: `stats`, `shutdown`;
//! - `watch`: `watch`, and the stream and events it gives.

mod list;
mod pending;
mod read;
mod scan;
mod store;
mod transaction;
mod watch;
mod write;

pub use list::{
    List, ListAppendUnique, ListAppendUniqueArgs, ListPopFront, ListPopFrontArgs, ListPush,
    ListPushArgs, DEFAULT_ID_KEY,
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

pub(crate) use list::ListPopAllArgs;
pub(crate) use read::{GetAs, WaitForAs};
pub(crate) use store::{ShutdownArgs, StatsArgs};
pub(crate) use transaction::TransactionArgs;
pub(crate) use write::{ExpireArgs, GetDelArgs};
