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

use serde::Serialize;
use serde_json::Value;

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

use crate::error::KvError;

/// Serializes a value meant for `key`.
///
/// A `Value` is taken as it is: serializing it would build a deep copy and drop the original, which
/// doubled the cost of `set`/`mset` of a `Value` (the common case with `json!`).
fn to_json<T: Serialize>(key: &str, value: T) -> Result<Value, KvError> {
    if typeid::of::<T>() == typeid::of::<Value>() {
        let value = std::mem::ManuallyDrop::new(value);
        // SAFETY: `T` is `Value` (`typeid` compares types with lifetimes erased, and `Value` has
        // none), so this reads a `Value` from a `Value` whose own drop is suppressed: a move.
        return Ok(unsafe { std::ptr::read(&*value as *const T as *const Value) });
    }
    serde_json::to_value(value).map_err(|source| KvError::Serialize {
        key: key.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn to_json_moves_a_value_and_serializes_anything_else() {
        let value = json!({"id": 7, "tags": ["a", "b"], "nested": {"x": null}});
        assert_eq!(to_json("k", value.clone()).unwrap(), value);
        assert_eq!(to_json("k", &value).unwrap(), value);
        assert_eq!(to_json("k", ("a", 1)).unwrap(), json!(["a", 1]));
        let refused = to_json("k", std::collections::HashMap::from([((1, 2), 3)]));
        assert!(matches!(refused, Err(KvError::Serialize { key, .. }) if key == "k"));
    }
}
