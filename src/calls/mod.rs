//! The awaitable call values for calls with options: [`Set`], [`ListAppendUnique`], [`Mset`],
//! [`PurgeExpired`], and for the coordination calls [`Incr`], [`SetIfAbsent`], [`CompareAndSet`]
//! and [`ScanPrefix`].
//!
//! The reference's keyword arguments (`ttl_s`, `id_key`, `limit`) become methods on these values,
//! which are then awaited directly (they implement [`IntoFuture`]):
//! `kv.set("k", 1).ttl(Duration::from_secs(60)).await`. Nothing is sent to the store until the
//! value is awaited.
//!
//! Input is checked here, on the caller's side, before a command is built, so that a bad call
//! changes nothing and costs the shared owner task nothing.

use std::future::IntoFuture;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::Serialize;
use serde_json::Value;

mod list;
mod watch;

pub use list::List;
pub use watch::{Watch, WatchEvent, WatchStream, DEFAULT_WATCH_CAPACITY, MAX_WATCH_CAPACITY};

use crate::command::Command;
use crate::error::{json_type_name, KvError};
use crate::handle::{relative_key, KvHandle};
use crate::ttl::check_ttl;

/// The limit of [`KvHandle::purge_expired`] when none is given, as in the reference.
///
/// ```
/// assert_eq!(ephemeral_kv::DEFAULT_PURGE_LIMIT, 1000);
/// ```
pub const DEFAULT_PURGE_LIMIT: usize = 1000;

/// The id field of [`KvHandle::list_append_unique`] when none is given, as in the reference.
///
/// ```
/// use serde_json::json;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ephemeral_kv::KvError> {
/// let kv = ephemeral_kv::KvHandle::spawn();
/// let id_key = ephemeral_kv::DEFAULT_ID_KEY;
/// assert_eq!(id_key, "id");
/// let list = kv.list_append_unique("l", [json!({ id_key: 1 })]).await?;
/// assert_eq!(list, vec![json!({"id": 1})]);
/// # Ok(())
/// # }
/// ```
pub const DEFAULT_ID_KEY: &str = "id";

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

/// What the writing calls ([`Set`], [`SetIfAbsent`], [`CompareAndSet`]) carry until awaited: the
/// key, the value as serialized when the call was made, and the TTL given so far.
#[derive(Debug)]
struct Write {
    key: String,
    value: Result<Value, KvError>,
    ttl: Option<Duration>,
}

impl Write {
    fn new<T: Serialize>(key: String, value: T) -> Self {
        let value = to_json(&key, value);
        Write {
            key,
            value,
            ttl: None,
        }
    }

    /// The parts of the command, or the first thing wrong with them: a value that did not
    /// serialize, then a zero TTL.
    fn checked(self) -> Result<(String, Value, Option<Duration>), KvError> {
        let value = self.value?;
        check_ttl(&self.key, self.ttl)?;
        Ok((self.key, value, self.ttl))
    }
}

/// A pending [`KvHandle::set`]. Await it to write.
///
/// ```
/// use std::time::Duration;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ephemeral_kv::KvError> {
/// let kv = ephemeral_kv::KvHandle::spawn();
/// let call: ephemeral_kv::Set<'_> = kv.set("k", 1);
/// call.ttl(Duration::from_secs(5)).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[must_use = "a call does nothing until it is awaited"]
pub struct Set<'a> {
    handle: &'a KvHandle,
    write: Write,
}

impl<'a> Set<'a> {
    pub(crate) fn new<T: Serialize>(handle: &'a KvHandle, key: String, value: T) -> Self {
        Set {
            handle,
            write: Write::new(key, value),
        }
    }

    /// Makes the key expire `ttl` from now (the reference's `ttl_s`). Must be greater than zero.
    ///
    /// ```
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// kv.set("user_id", 42).ttl(Duration::from_secs(600)).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.write.ttl = Some(ttl);
        self
    }
}

impl<'a> IntoFuture for Set<'a> {
    type Output = Result<(), KvError>;
    type IntoFuture = BoxFuture<'a, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let (key, value, ttl) = self.write.checked()?;
            self.handle
                .call(|reply| Command::Set {
                    key,
                    value,
                    ttl,
                    reply,
                })
                .await
        })
    }
}

/// A pending [`KvHandle::list_append_unique`]. Await it to append and get the whole list.
///
/// ```
/// use serde_json::json;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ephemeral_kv::KvError> {
/// let kv = ephemeral_kv::KvHandle::spawn();
/// let list = kv.list_append_unique("l", [json!({"id": 1})]).await?;
/// assert_eq!(list, vec![json!({"id": 1})]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[must_use = "a call does nothing until it is awaited"]
pub struct ListAppendUnique<'a> {
    handle: &'a KvHandle,
    key: String,
    items: Result<Vec<Value>, KvError>,
    id_key: String,
    ttl: Option<Duration>,
}

impl<'a> ListAppendUnique<'a> {
    pub(crate) fn new<I>(handle: &'a KvHandle, key: String, items: I) -> Self
    where
        I: IntoIterator,
        I::Item: Serialize,
    {
        let items = items.into_iter().map(|item| to_json(&key, item)).collect();
        ListAppendUnique {
            handle,
            key,
            items,
            id_key: DEFAULT_ID_KEY.to_owned(),
            ttl: None,
        }
    }

    /// The field that identifies an item (default `"id"`).
    ///
    /// ```
    /// use serde_json::json;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// let tasks = kv
    ///     .list_append_unique("tasks", vec![json!({"task_id": 42, "desc": "Review PR"})])
    ///     .id_key("task_id")
    ///     .await?;
    /// assert_eq!(tasks.len(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn id_key(mut self, id_key: impl Into<String>) -> Self {
        self.id_key = id_key.into();
        self
    }

    /// Makes the list expire `ttl` from now (the reference's `ttl_s`). Must be greater than zero.
    /// Without it the list never expires, even if it had a TTL before.
    ///
    /// ```
    /// use std::time::Duration;
    /// use serde_json::json;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// kv.list_append_unique("l", [json!({"id": 1})]).ttl(Duration::from_secs(3600)).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }
}

/// Checks that every item is an object holding `id_key`, naming the first that is not.
fn check_items(key: &str, items: &[Value], id_key: &str) -> Result<(), KvError> {
    for (index, item) in items.iter().enumerate() {
        let reason = match item {
            Value::Object(fields) => match fields.get(id_key) {
                Some(Value::Array(_) | Value::Object(_)) => format!(
                    "its `{id_key}` is {}; ids must be strings, numbers, booleans or null",
                    json_type_name(&fields[id_key])
                ),
                Some(_) => continue,
                None => format!(
                    "it has no `{id_key}` field (to use another field as the id, call \
                     `.id_key(\"field\")`)"
                ),
            },
            other => format!("it is {}, not a JSON object", json_type_name(other)),
        };
        return Err(KvError::InvalidItem {
            key: key.to_owned(),
            index,
            reason,
        });
    }
    Ok(())
}

impl<'a> IntoFuture for ListAppendUnique<'a> {
    type Output = Result<List, KvError>;
    type IntoFuture = BoxFuture<'a, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let ListAppendUnique {
                handle,
                key,
                items,
                id_key,
                ttl,
            } = self;
            let items = items?;
            check_items(&key, &items, &id_key)?;
            check_ttl(&key, ttl)?;
            let list = handle
                .call(|reply| Command::ListAppendUnique {
                    key,
                    items,
                    id_key,
                    ttl,
                    reply,
                })
                .await?;
            Ok(List::new(list))
        })
    }
}

/// A pending [`KvHandle::list_push`]. Await it to append and get the list's new length.
///
/// ```
/// use std::time::Duration;
/// use serde_json::json;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ephemeral_kv::KvError> {
/// let kv = ephemeral_kv::KvHandle::spawn();
/// let call: ephemeral_kv::ListPush<'_> = kv.list_push("log", [json!("started")]);
/// assert_eq!(call.max_len(100).ttl(Duration::from_secs(60)).await?, 1);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[must_use = "a call does nothing until it is awaited"]
pub struct ListPush<'a> {
    handle: &'a KvHandle,
    key: String,
    items: Result<Vec<Value>, KvError>,
    max_len: usize,
    ttl: Option<Duration>,
}

impl<'a> ListPush<'a> {
    pub(crate) fn new<I>(handle: &'a KvHandle, key: String, items: I) -> Self
    where
        I: IntoIterator,
        I::Item: Serialize,
    {
        let items = items.into_iter().map(|item| to_json(&key, item)).collect();
        ListPush {
            handle,
            key,
            items,
            max_len: usize::MAX,
            ttl: None,
        }
    }

    /// Keeps at most `max_len` items: after appending, the oldest are dropped from the front
    /// (Redis `RPUSH` then `LTRIM`). Without it the list grows without bound. Zero is refused
    /// with [`KvError::InvalidArgument`].
    ///
    /// ```
    /// use serde_json::json;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// kv.list_push("log", [1, 2, 3]).await?;
    /// assert_eq!(kv.list_push("log", [4]).max_len(2).await?, 2);
    /// assert_eq!(kv.list_pop_all("log").await?, vec![json!(3), json!(4)]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn max_len(mut self, max_len: usize) -> Self {
        self.max_len = max_len;
        self
    }

    /// Gives the list this TTL, counted from now. Without it the list never expires, as with
    /// [`KvHandle::set`]: a push without a TTL removes one the list had.
    ///
    /// ```
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// kv.list_push("log", ["a"]).ttl(Duration::from_secs(7 * 24 * 3600)).await?;
    /// assert!(matches!(kv.ttl("log").await?, ephemeral_kv::Ttl::Expires(_)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }
}

impl<'a> IntoFuture for ListPush<'a> {
    type Output = Result<usize, KvError>;
    type IntoFuture = BoxFuture<'a, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let ListPush {
                handle,
                key,
                items,
                max_len,
                ttl,
            } = self;
            let items = items?;
            check_ttl(&key, ttl)?;
            if max_len == 0 {
                return Err(KvError::InvalidArgument {
                    key,
                    reason: "`max_len` must be at least 1 (to empty a list, call `delete`)"
                        .to_owned(),
                });
            }
            handle
                .call(|reply| Command::ListPush {
                    key,
                    items,
                    max_len,
                    ttl,
                    reply,
                })
                .await
        })
    }
}

/// A pending [`KvHandle::mset`]. Await it to write every pair at once.
///
/// ```
/// use serde_json::json;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ephemeral_kv::KvError> {
/// let kv = ephemeral_kv::KvHandle::spawn();
/// kv.mset([("a", json!(1)), ("b", json!(2))]).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[must_use = "a call does nothing until it is awaited"]
pub struct Mset<'a> {
    handle: &'a KvHandle,
    /// The first key, to name in a TTL error.
    first_key: String,
    entries: Result<Vec<(String, Value)>, KvError>,
    ttl: Option<Duration>,
}

impl<'a> Mset<'a> {
    pub(crate) fn new<V: Serialize>(
        handle: &'a KvHandle,
        entries: impl Iterator<Item = (String, V)>,
    ) -> Self {
        let entries: Result<Vec<_>, _> = entries
            .map(|(key, value)| to_json(&key, value).map(|value| (key, value)))
            .collect();
        let first_key = match &entries {
            Ok(entries) => entries.first().map(|(key, _)| key.clone()),
            Err(_) => None,
        };
        Mset {
            handle,
            first_key: first_key.unwrap_or_default(),
            entries,
            ttl: None,
        }
    }

    /// Makes every key of the batch expire `ttl` from now (the reference's `ttl_s`). Must be
    /// greater than zero.
    ///
    /// ```
    /// use std::time::Duration;
    /// use serde_json::json;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// kv.mset([("session", json!("abc")), ("count", json!(42))])
    ///     .ttl(Duration::from_secs(60))
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }
}

impl<'a> IntoFuture for Mset<'a> {
    type Output = Result<(), KvError>;
    type IntoFuture = BoxFuture<'a, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let Mset {
                handle,
                first_key,
                entries,
                ttl,
            } = self;
            let entries = entries?;
            check_ttl(&first_key, ttl)?;
            handle
                .call(|reply| Command::Mset {
                    entries,
                    ttl,
                    reply,
                })
                .await
        })
    }
}

/// A pending [`KvHandle::purge_expired`]. Await it to get how many entries were removed.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ephemeral_kv::KvError> {
/// let kv = ephemeral_kv::KvHandle::spawn();
/// assert_eq!(kv.purge_expired().await?, 0);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[must_use = "a call does nothing until it is awaited"]
pub struct PurgeExpired<'a> {
    handle: &'a KvHandle,
    limit: usize,
}

impl<'a> PurgeExpired<'a> {
    pub(crate) fn new(handle: &'a KvHandle) -> Self {
        PurgeExpired {
            handle,
            limit: DEFAULT_PURGE_LIMIT,
        }
    }

    /// The most entries to remove in this call (default 1000).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// assert_eq!(kv.purge_expired().limit(500).await?, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }
}

impl<'a> IntoFuture for PurgeExpired<'a> {
    type Output = Result<usize, KvError>;
    type IntoFuture = BoxFuture<'a, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        let PurgeExpired { handle, limit } = self;
        Box::pin(handle.call(move |reply| Command::PurgeExpired { limit, reply }))
    }
}

/// A pending [`KvHandle::incr`]. Await it to get the counter's new value.
///
/// ```
/// use std::time::Duration;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ephemeral_kv::KvError> {
/// let kv = ephemeral_kv::KvHandle::spawn();
/// assert_eq!(kv.incr("hits", 1).ttl(Duration::from_secs(60)).await?, 1);
/// assert_eq!(kv.incr("hits", 5).await?, 6);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[must_use = "a call does nothing until it is awaited"]
pub struct Incr<'a> {
    handle: &'a KvHandle,
    key: String,
    by: i64,
    ttl: Option<Duration>,
}

impl<'a> Incr<'a> {
    pub(crate) fn new(handle: &'a KvHandle, key: String, by: i64) -> Self {
        Incr {
            handle,
            key,
            by,
            ttl: None,
        }
    }

    /// The TTL the counter gets **if this call creates it**. A counter that already exists keeps
    /// its TTL (or lack of one), which is what a fixed-window rate limiter needs: the window starts
    /// with the first hit and is not pushed back by later ones. Must be greater than zero.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ephemeral_kv::Ttl;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// kv.incr("window", 1).ttl(Duration::from_secs(60)).await?;
    /// tokio::time::advance(Duration::from_secs(10)).await;
    /// kv.incr("window", 1).ttl(Duration::from_secs(60)).await?;
    /// assert_eq!(kv.ttl("window").await?, Ttl::Expires(Duration::from_secs(50)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }
}

impl<'a> IntoFuture for Incr<'a> {
    type Output = Result<i64, KvError>;
    type IntoFuture = BoxFuture<'a, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let Incr {
                handle,
                key,
                by,
                ttl,
            } = self;
            check_ttl(&key, ttl)?;
            handle
                .call(|reply| Command::Incr {
                    key,
                    by,
                    ttl,
                    reply,
                })
                .await
        })
    }
}

/// A pending [`KvHandle::set_if_absent`]. Await it to learn whether the value was stored.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ephemeral_kv::KvError> {
/// let kv = ephemeral_kv::KvHandle::spawn();
/// assert!(kv.set_if_absent("lock", "worker-1").await?);
/// assert!(!kv.set_if_absent("lock", "worker-2").await?);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[must_use = "a call does nothing until it is awaited"]
pub struct SetIfAbsent<'a> {
    handle: &'a KvHandle,
    write: Write,
}

impl<'a> SetIfAbsent<'a> {
    pub(crate) fn new<T: Serialize>(handle: &'a KvHandle, key: String, value: T) -> Self {
        SetIfAbsent {
            handle,
            write: Write::new(key, value),
        }
    }

    /// Makes the key, if this call stores it, expire `ttl` from now: a lease that frees itself if
    /// its holder dies. Must be greater than zero.
    ///
    /// ```
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// assert!(kv.set_if_absent("lock", "w1").ttl(Duration::from_secs(30)).await?);
    /// tokio::time::advance(Duration::from_secs(30)).await;
    /// assert!(kv.set_if_absent("lock", "w2").ttl(Duration::from_secs(30)).await?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.write.ttl = Some(ttl);
        self
    }
}

impl<'a> IntoFuture for SetIfAbsent<'a> {
    type Output = Result<bool, KvError>;
    type IntoFuture = BoxFuture<'a, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let (key, value, ttl) = self.write.checked()?;
            self.handle
                .call(|reply| Command::SetIfAbsent {
                    key,
                    value,
                    ttl,
                    reply,
                })
                .await
        })
    }
}

/// A pending [`KvHandle::compare_and_set`]. Await it to learn whether the swap happened.
///
/// ```
/// use serde_json::json;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ephemeral_kv::KvError> {
/// let kv = ephemeral_kv::KvHandle::spawn();
/// assert!(kv.compare_and_set("state", None, "idle").await?);
/// assert!(kv.compare_and_set("state", Some(json!("idle")), "busy").await?);
/// assert!(!kv.compare_and_set("state", Some(json!("idle")), "busy").await?);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[must_use = "a call does nothing until it is awaited"]
pub struct CompareAndSet<'a> {
    handle: &'a KvHandle,
    expected: Option<Value>,
    write: Write,
}

impl<'a> CompareAndSet<'a> {
    pub(crate) fn new<T: Serialize>(
        handle: &'a KvHandle,
        key: String,
        expected: Option<Value>,
        new: T,
    ) -> Self {
        CompareAndSet {
            handle,
            expected,
            write: Write::new(key, new),
        }
    }

    /// If the swap happens, the key expires `ttl` from now (instead of keeping its TTL). Swapping a
    /// lease for itself with a TTL renews it, but only while the caller still holds it. Must be
    /// greater than zero.
    ///
    /// ```
    /// use std::time::Duration;
    /// use serde_json::json;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// let lease = Duration::from_secs(10);
    /// kv.set_if_absent("lock", "w1").ttl(lease).await?;
    /// tokio::time::advance(Duration::from_secs(8)).await;
    /// let renewed = kv.compare_and_set("lock", Some(json!("w1")), "w1").ttl(lease).await?;
    /// assert!(renewed);
    /// tokio::time::advance(Duration::from_secs(8)).await;
    /// assert_eq!(kv.get("lock").await?.as_deref(), Some(&json!("w1")));
    /// # Ok(())
    /// # }
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.write.ttl = Some(ttl);
        self
    }
}

impl<'a> IntoFuture for CompareAndSet<'a> {
    type Output = Result<bool, KvError>;
    type IntoFuture = BoxFuture<'a, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let (key, new, ttl) = self.write.checked()?;
            self.handle
                .call(|reply| Command::CompareAndSet {
                    key,
                    expected: self.expected,
                    new,
                    ttl,
                    reply,
                })
                .await
        })
    }
}

/// A pending [`KvHandle::scan_prefix`]. Await it to get the keys.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ephemeral_kv::KvError> {
/// let kv = ephemeral_kv::KvHandle::spawn();
/// kv.set("run:1:b", 0).await?;
/// kv.set("run:1:a", 0).await?;
/// assert_eq!(kv.scan_prefix("run:1:").await?, vec!["run:1:a", "run:1:b"]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[must_use = "a call does nothing until it is awaited"]
pub struct ScanPrefix<'a> {
    handle: &'a KvHandle,
    prefix: String,
    limit: usize,
}

impl<'a> ScanPrefix<'a> {
    pub(crate) fn new(handle: &'a KvHandle, prefix: String) -> Self {
        ScanPrefix {
            handle,
            prefix,
            limit: usize::MAX,
        }
    }

    /// The most keys to return: the first `limit` in sorted order (default: all).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// kv.mset([("job:3", 0), ("job:1", 0), ("job:2", 0)]).await?;
    /// assert_eq!(kv.scan_prefix("job:").limit(2).await?, vec!["job:1", "job:2"]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }
}

impl<'a> IntoFuture for ScanPrefix<'a> {
    type Output = Result<Vec<String>, KvError>;
    type IntoFuture = BoxFuture<'a, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let ScanPrefix {
                handle,
                prefix,
                limit,
            } = self;
            let keys = handle
                .call(|reply| Command::ScanPrefix {
                    prefix,
                    limit,
                    reply,
                })
                .await?;
            // Keys come back full; strip the handle's prefix here, off the owner task.
            let strip = handle.prefix().len();
            Ok(keys
                .into_iter()
                .map(|key| relative_key(key, strip))
                .collect())
        })
    }
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
