//! [`KvHandle`]: every call of the store, each turned into a [`Command`] for the executor behind
//! the handle.
//!
//! A handle is a sender to an owner task's mailbox plus a key prefix; it does not know which
//! executor reads the mailbox. Everything a call does on the caller's side happens here or in
//! [`calls`](crate::calls): prefixing the key, serializing the value, checking TTLs and list items,
//! and shaping the answer. The owner task only ever sees well-formed commands.
//!
//! The methods come in the order a reader needs them: starting a store, reading, writing, lists,
//! coordination, then housekeeping and lifecycle.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::calls::{
    CompareAndSet, CompareAndSetArgs, ExpireArgs, GetAs, GetDelArgs, Incr, IncrArgs,
    ListAppendUnique, ListAppendUniqueArgs, ListPopAllArgs, ListPopFront, ListPopFrontArgs,
    ListPush, ListPushArgs, Mset, MsetArgs, Pending, PurgeExpired, PurgeExpiredArgs, ScanPrefix,
    ScanPrefixArgs, Set, SetArgs, SetIfAbsent, SetIfAbsentArgs, ShutdownArgs, StatsArgs,
    TransactionArgs, WaitForAs, Watch, WatchArgs,
};
use crate::command::{self, UpdateFn};
use crate::error::KvError;
use crate::mailbox::Mailbox;
use crate::stats::Stats;
use crate::ttl::Ttl;
use crate::txn::Txn;

/// A cloneable handle to an ephemeral key-value store run by its own owner task.
///
/// # Guarantees
/// The precise, numbered rules behind these are in `docs/rules.md` in the repository.
/// - **Atomic, linearizable calls.** Each call is one command that the owner task applies whole
///   before it looks at the next, so no caller ever sees half of a call (not even of an
///   [`mset`](KvHandle::mset)), and all calls on all handles of one store take effect in one order.
/// - **No lock on the data path.** Only the owner task touches the map.
/// - **Expired keys are invisible.** A key is expired from the instant its TTL runs out; no call
///   returns it, appends to it or revives it, whether or not it has been removed yet. Active
///   expiry (on by default: [`KvBuilder::active_expiry`](crate::KvBuilder::active_expiry))
///   removes expired keys soon after their deadline, in bounded slices.
/// - **Failed calls change nothing, and say why.** A call that returns an error has not touched the
///   store, and the [`KvError`] names the key and the problem: a value that fails to serialize, a
///   zero TTL, a list item without its id field, a wrong-typed existing value.
/// - **Nothing a caller sends takes the store down.** A panic in an `update` or `transaction`
///   closure is caught and reported; a call on the store from inside one of its own closures fails
///   at once ([`KvError::Reentrant`]) instead of waiting for itself; a value nesting deeper than
///   [`MAX_DEPTH`](crate::MAX_DEPTH) levels is refused ([`KvError::TooDeep`]) before anything is
///   sent, and one holding a float with no JSON form (NaN, an infinity) is refused
///   ([`KvError::Serialize`]) rather than stored as `null`.
/// - **Bounded if asked.** With [`KvBuilder::max_entries`](crate::KvBuilder::max_entries), every
///   call that would add a key to a full store (`set`, `mset`, `set_if_absent`,
///   `compare_and_set`, `incr`, `update`, `transaction`, `list_append_unique`, `list_push`) first
///   lets expired entries go, then refuses with [`KvError::Full`] or evicts the keys closest to
///   expiry, as the builder's [`Eviction`](crate::Eviction) says. Overwriting never needs room.
/// - **Values are shared, not copied.** Reads hand out the store's own immutable `Arc<Value>`
///   (lists as a shared [`List`](crate::List)): in-process, the owner task never copies a value to
///   answer a call.
/// - **Watchers see whole commands.** A [`watch`](KvHandle::watch) stream gets one event per key
///   per command, with the key's state after it; [`wait_for`](KvHandle::wait_for) never resolves
///   on a state inside a command.
/// - **Cancellation is harmless.** Dropping a call's future before it completes never corrupts the
///   store; a command that already reached the owner task is applied whole.
///
/// # Lifetime
/// Clones share one store. The owner task ends, and frees the store, when the last handle is
/// dropped or when [`shutdown`](KvHandle::shutdown) is called; every call after that returns
/// [`KvError::Closed`]. Handles made by [`with_prefix`](KvHandle::with_prefix) count as clones.
///
/// # Time
/// TTLs are measured on tokio's clock ([`tokio::time::Instant`]), so a test that pauses and advances
/// tokio's time sees keys expire without waiting. (A handle from
/// [`KvBuilder::redis`](crate::KvBuilder) is the exception: see `docs/redis.md`.)
///
/// # Backends
/// [`KvBuilder::spawn`](crate::KvBuilder::spawn) runs the store in this process. With the `redis` cargo feature,
/// `KvBuilder::redis(url)` returns the same type running every call on a Redis server, shared by
/// every process connected to it; `docs/redis.md` in the repository lists what differs there.
///
/// # Example
/// ```
/// use std::time::Duration;
/// use ephemeral_kv::KvHandle;
/// use serde_json::json;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ephemeral_kv::KvError> {
/// let kv = KvHandle::spawn();
/// kv.set("session_token", "abc123").await?;
/// kv.set("user_id", 42).ttl(Duration::from_secs(600)).await?;
/// assert_eq!(kv.get("session_token").await?.as_deref(), Some(&json!("abc123")));
/// assert_eq!(kv.get_as::<u64>("user_id").await?, Some(42));
///
/// // Handles are cheap to clone and can move to other tasks.
/// let kv2 = kv.clone();
/// tokio::spawn(async move { kv2.delete("session_token").await }).await.unwrap()?;
/// assert_eq!(kv.get("session_token").await?, None);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct KvHandle {
    mailbox: Mailbox,
}

impl fmt::Debug for KvHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KvHandle")
            .field("prefix", &self.prefix())
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// Starting a store, and the key prefix every call of a handle carries.
impl KvHandle {
    /// Returns a handle to the same store whose keys all start with this handle's prefix followed by
    /// `prefix`. Prefixes stack: `kv.with_prefix("a:").with_prefix("b:")` uses `a:b:`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// let run = kv.with_prefix("run:42:");
    /// run.set("step", 3).await?;
    /// assert_eq!(kv.get_as::<u32>("run:42:step").await?, Some(3));
    /// assert_eq!(run.prefix(), "run:42:");
    /// # Ok(())
    /// # }
    /// ```
    #[must_use = "a prefixed handle does nothing until it is used"]
    pub fn with_prefix(&self, prefix: impl AsRef<str>) -> KvHandle {
        KvHandle {
            mailbox: self.mailbox.with_prefix(prefix.as_ref()),
        }
    }

    /// The prefix this handle puts before every key (empty by default).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// assert_eq!(kv.prefix(), "");
    /// # }
    /// ```
    pub fn prefix(&self) -> &str {
        self.mailbox.prefix()
    }
}

/// Reading: values come back shared with the store (`Arc<Value>`), never copied.
impl KvHandle {
    /// The value at `key`, shared with the store, or `None` if it is missing or expired.
    ///
    /// The value is not copied: the store and every reader share one immutable `Arc<Value>`, as
    /// the Python reference hands out references to its stored objects (but here no one can change
    /// it under you). To own it, `Arc::unwrap_or_clone(value)` moves it out when no one else
    /// shares it and copies it otherwise; to read it as your own type, [`get_as`](KvHandle::get_as).
    ///
    /// To serialize it (an axum handler's `Json`, say), borrow it: `Json(&*value)`. `Arc<Value>`
    /// is not `Serialize` unless serde's `rc` feature is on.
    ///
    /// The reference's `get(key, default)` is `kv.get(key).await?.unwrap_or(default)` (with the
    /// default in an `Arc`). An expired key found here is removed.
    ///
    /// # Errors
    /// [`KvError::Closed`] if the store has stopped.
    ///
    /// ```
    /// use serde_json::json;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// kv.set("session_token", "abc123").await?;
    /// assert_eq!(kv.get("session_token").await?.as_deref(), Some(&json!("abc123")));
    /// let user_id = kv.get("user_id").await?.unwrap_or_default();
    /// assert_eq!(*user_id, json!(null));
    ///
    /// // Two reads share one value; owning it is the caller's choice.
    /// let (a, b) = (kv.get("session_token").await?, kv.get("session_token").await?);
    /// assert!(std::sync::Arc::ptr_eq(a.as_ref().unwrap(), b.as_ref().unwrap()));
    /// let owned: serde_json::Value = std::sync::Arc::unwrap_or_clone(a.unwrap());
    /// assert_eq!(owned, "abc123");
    /// # Ok(())
    /// # }
    /// ```
    pub fn get(
        &self,
        key: impl AsRef<str>,
    ) -> impl Future<Output = Result<Option<Arc<Value>>, KvError>> + Send + '_ {
        let key = self.mailbox.key(key);
        Pending::new(&self.mailbox, command::Get { key })
    }

    /// The value at `key` deserialized into `T`, or `None` if it is missing or expired.
    ///
    /// `T` is built straight from the shared value: no JSON copy is made on the way.
    ///
    /// # Errors
    /// [`KvError::Deserialize`] if the stored value does not fit `T` (the value is kept),
    /// [`KvError::Closed`] if the store has stopped.
    ///
    /// ```
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Serialize, Deserialize, Debug, PartialEq)]
    /// struct Profile { name: String, age: u8 }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// kv.set("profile", Profile { name: "Ada".into(), age: 36 }).await?;
    /// let profile: Option<Profile> = kv.get_as("profile").await?;
    /// assert_eq!(profile, Some(Profile { name: "Ada".into(), age: 36 }));
    /// assert!(kv.get_as::<u64>("profile").await.is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_as<'a, T: DeserializeOwned + 'a>(
        &'a self,
        key: impl AsRef<str>,
    ) -> impl Future<Output = Result<Option<T>, KvError>> + Send + 'a {
        Pending::new(&self.mailbox, GetAs::new(self.mailbox.key(key)))
    }

    /// The values of several keys in one atomic command, in the order given (duplicates included),
    /// with `None` for each missing or expired key. Values are shared with the store, as with
    /// [`get`](KvHandle::get).
    ///
    /// # Errors
    /// [`KvError::Closed`] if the store has stopped.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use serde_json::json;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// kv.set("bar", "bar_value").await?;
    /// let values = kv.mget(["foo", "bar"]).await?;
    /// assert_eq!(values, vec![None, Some(Arc::new(json!("bar_value")))]);
    /// let keys = vec!["bar".to_string(), "bar".to_string()];
    /// assert_eq!(kv.mget(&keys).await?.len(), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn mget<I>(
        &self,
        keys: I,
    ) -> impl Future<Output = Result<Vec<Option<Arc<Value>>>, KvError>> + Send + '_
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let keys: Vec<String> = keys.into_iter().map(|key| self.mailbox.key(key)).collect();
        Pending::new(&self.mailbox, command::Mget { keys })
    }

    /// Whether `key` holds a live value (without copying the value).
    ///
    /// # Errors
    /// [`KvError::Closed`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// kv.set("k", serde_json::Value::Null).await?;
    /// assert!(kv.exists("k").await?); // a stored null is still there
    /// assert!(!kv.exists("other").await?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn exists(
        &self,
        key: impl AsRef<str>,
    ) -> impl Future<Output = Result<bool, KvError>> + Send + '_ {
        let key = self.mailbox.key(key);
        Pending::new(&self.mailbox, command::Exists { key })
    }

    /// How long `key` has left: [`Ttl::Missing`], [`Ttl::NoExpiry`] or [`Ttl::Expires`] with the
    /// time left on tokio's clock.
    ///
    /// # Errors
    /// [`KvError::Closed`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use ephemeral_kv::Ttl;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// kv.set("k", 1).ttl(Duration::from_secs(60)).await?;
    /// tokio::time::advance(Duration::from_secs(15)).await;
    /// assert_eq!(kv.ttl("k").await?, Ttl::Expires(Duration::from_secs(45)));
    /// assert_eq!(kv.ttl("nothing").await?, Ttl::Missing);
    /// # Ok(())
    /// # }
    /// ```
    pub fn ttl(
        &self,
        key: impl AsRef<str>,
    ) -> impl Future<Output = Result<Ttl, KvError>> + Send + '_ {
        let key = self.mailbox.key(key);
        Pending::new(&self.mailbox, command::Ttl { key })
    }

    /// The live keys that start with `prefix`, sorted, relative to this handle's prefix (so they
    /// can be passed straight back to this handle). [`ScanPrefix::limit`] keeps the first few.
    ///
    /// In-process, it costs the keys under `prefix` it looks at, not the store: the keys are also
    /// kept in order, so `.limit(10)` in a store of a million keys costs about a `get`, and a scan
    /// returning 10,000 keys holds other callers up about as long in any store. On Redis it is a
    /// `SCAN MATCH`, which walks the server's whole keyspace (`docs/redis.md`).
    ///
    /// # Errors
    /// [`KvError::Closed`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// kv.mset([("run:42:b", 1), ("run:42:a", 2), ("run:7:a", 3)]).await?;
    /// assert_eq!(kv.scan_prefix("run:42:").limit(100).await?, vec!["run:42:a", "run:42:b"]);
    /// let run = kv.with_prefix("run:42:");
    /// assert_eq!(run.scan_prefix("").await?, vec!["a", "b"]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn scan_prefix(&self, prefix: impl AsRef<str>) -> ScanPrefix<'_> {
        Pending::new(&self.mailbox, ScanPrefixArgs::new(self.mailbox.key(prefix)))
    }
}

/// Writing values and TTLs.
impl KvHandle {
    /// Stores `value` at `key`, replacing any earlier value **and TTL**.
    ///
    /// The returned [`Set`] is awaited directly; [`Set::ttl`] makes the key expire. Without it the
    /// key never expires, even if it had a TTL before (as the reference's `ttl_s=None` says).
    ///
    /// # Errors
    /// [`KvError::Serialize`] if `value` cannot become JSON, [`KvError::InvalidTtl`] for a zero TTL,
    /// [`KvError::Closed`] if the store has stopped. Nothing is written on error.
    ///
    /// ```
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// kv.set("session_token", "abc123").await?;
    /// kv.set("user_id", 42).ttl(Duration::from_secs(600)).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn set<T: Serialize>(&self, key: impl AsRef<str>, value: T) -> Set<'_> {
        Pending::new(&self.mailbox, SetArgs::new(self.mailbox.key(key), value))
    }

    /// Stores several key-value pairs in one atomic command, all with the same TTL.
    ///
    /// All or nothing: if any value fails to serialize, or the TTL is zero, nothing is written, and
    /// no reader ever sees some of the pairs without the others. The last of duplicate keys wins.
    /// Without [`Mset::ttl`] the keys never expire.
    ///
    /// # Errors
    /// [`KvError::Serialize`], [`KvError::InvalidTtl`], [`KvError::Closed`].
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use serde_json::json;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// kv.mset([("foo", json!(1)), ("bar", json!("baz"))]).await?;
    /// kv.mset([("session", json!("abc")), ("count", json!(42))])
    ///     .ttl(Duration::from_secs(60))
    ///     .await?;
    /// let from_map: HashMap<String, u32> = HashMap::from([("x".to_string(), 7)]);
    /// kv.mset(from_map).await?;
    /// let values = kv.mget(["foo", "x"]).await?;
    /// assert_eq!(values, vec![Some(Arc::new(json!(1))), Some(Arc::new(json!(7)))]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn mset<I, K, V>(&self, entries: I) -> Mset<'_>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Serialize,
    {
        let entries = entries
            .into_iter()
            .map(|(key, value)| (self.mailbox.key(key), value));
        Pending::new(&self.mailbox, MsetArgs::new(entries))
    }

    /// Removes `key`. A missing key is a no-op, not an error.
    ///
    /// # Errors
    /// [`KvError::Closed`] if the store has stopped.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// kv.set("session_token", "abc123").await?;
    /// kv.delete("session_token").await?;
    /// kv.delete("session_token").await?; // already gone: still Ok
    /// assert_eq!(kv.get("session_token").await?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn delete(
        &self,
        key: impl AsRef<str>,
    ) -> impl Future<Output = Result<(), KvError>> + Send + '_ {
        let key = self.mailbox.key(key);
        Pending::new(&self.mailbox, command::Delete { key })
    }

    /// Gives `key` a new TTL, counted from now. Returns `true` if the key was live and got it,
    /// `false` if it is missing or expired (an expired key is not revived).
    ///
    /// A TTL too large to represent means the key no longer expires.
    ///
    /// # Errors
    /// [`KvError::InvalidTtl`] for a zero TTL (the key keeps its old TTL), [`KvError::Closed`].
    ///
    /// ```
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// kv.set("session_token", "abc123").await?;
    /// assert!(kv.expire("session_token", Duration::from_secs(300)).await?);
    /// assert!(!kv.expire("missing", Duration::from_secs(300)).await?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn expire(
        &self,
        key: impl AsRef<str>,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, KvError>> + Send + '_ {
        let key = self.mailbox.key(key);
        Pending::new(&self.mailbox, ExpireArgs(command::Expire { key, ttl }))
    }

    /// Makes a live key never expire. Returns `true` if it had a TTL that was removed, `false` if
    /// it had none or is missing or expired (an expired key is not revived).
    ///
    /// # Errors
    /// [`KvError::Closed`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use ephemeral_kv::Ttl;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// kv.set("k", 1).ttl(Duration::from_secs(60)).await?;
    /// assert!(kv.persist("k").await?);
    /// assert!(!kv.persist("k").await?);
    /// assert_eq!(kv.ttl("k").await?, Ttl::NoExpiry);
    /// # Ok(())
    /// # }
    /// ```
    pub fn persist(
        &self,
        key: impl AsRef<str>,
    ) -> impl Future<Output = Result<bool, KvError>> + Send + '_ {
        let key = self.mailbox.key(key);
        Pending::new(&self.mailbox, command::Persist { key })
    }
}

/// Lists: inboxes of unique items, capped logs, work queues.
impl KvHandle {
    /// Appends to the list at `key` each item whose id (its `"id"` field, or the field named by
    /// [`ListAppendUnique::id_key`]) is not already there, and returns the whole list as a
    /// [`List`](crate::List), shared with the store rather than copied.
    ///
    /// Rules, where the reference is silent:
    /// - Every item must be a JSON object holding the id field, and the id must be a string, a
    ///   number, a boolean or null (a list or object id is refused, as the reference fails on
    ///   one), or the call fails and appends nothing.
    /// - Ids compare as JSON scalars, numbers by value: `1` and `1.0` are one id (as in the
    ///   reference, and on Redis); `1` and `"1"` are two.
    /// - An append costs what it adds, not the length of the list: the store keeps an index of
    ///   the list's ids beside it.
    /// - An item is skipped if its id is already in the list or earlier in the same call: the first
    ///   one wins.
    /// - A missing or expired key starts a new list (an empty one if every item was skipped).
    /// - Existing elements that are not objects, or lack the id field, stay and never match.
    /// - Like [`set`](KvHandle::set), the call sets the list's TTL: without
    ///   [`ListAppendUnique::ttl`] the list never expires.
    ///
    /// # Errors
    /// [`KvError::InvalidItem`] for an item that is not an object with the id field,
    /// [`KvError::WrongType`] if the key holds something other than a list (it is kept),
    /// [`KvError::Serialize`], [`KvError::InvalidTtl`], [`KvError::Closed`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use serde_json::json;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// kv.list_append_unique("recent_users", vec![json!({"id": 1, "name": "Alice"})]).await?;
    /// let users = kv
    ///     .list_append_unique("recent_users", vec![
    ///         json!({"id": 1, "name": "Alice again"}),
    ///         json!({"id": 2, "name": "Bob"}),
    ///     ])
    ///     .await?;
    /// assert_eq!(users, vec![json!({"id": 1, "name": "Alice"}), json!({"id": 2, "name": "Bob"})]);
    ///
    /// let tasks = kv
    ///     .list_append_unique("tasks", vec![json!({"task_id": 42, "desc": "Review PR"})])
    ///     .id_key("task_id")
    ///     .ttl(Duration::from_secs(3600))
    ///     .await?;
    /// assert_eq!(tasks.len(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn list_append_unique<I>(&self, key: impl AsRef<str>, items: I) -> ListAppendUnique<'_>
    where
        I: IntoIterator,
        I::Item: Serialize,
    {
        Pending::new(
            &self.mailbox,
            ListAppendUniqueArgs::new(self.mailbox.key(key), items),
        )
    }

    /// Appends `items` (any JSON values) to the end of the list at `key` and returns the list's
    /// new length; with [`ListPush::max_len`], the oldest items are then dropped from the front so
    /// that at most that many remain (Redis `RPUSH` then `LTRIM`): the shape of a log of recent
    /// events.
    ///
    /// - A missing or expired key starts a list; pushing nothing onto it creates nothing.
    /// - Unlike [`list_append_unique`](KvHandle::list_append_unique), items are not checked for
    ///   ids: any JSON value may be pushed, duplicates included.
    /// - Like [`set`](KvHandle::set), the call sets the list's TTL: without [`ListPush::ttl`] the
    ///   list never expires.
    /// - The list is changed in place: no copy is made of the items already there, unless a
    ///   reader still holds the previous version (then it is copied once).
    ///
    /// # Errors
    /// [`KvError::WrongType`] if the key holds something other than a list (it is kept),
    /// [`KvError::InvalidArgument`] for `max_len(0)`, [`KvError::Serialize`],
    /// [`KvError::InvalidTtl`], [`KvError::Closed`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use serde_json::json;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// for n in 0..5 {
    ///     let event = json!({"n": n, "text": "something happened"});
    ///     kv.list_push("events", [event])
    ///         .max_len(3)
    ///         .ttl(Duration::from_secs(7 * 24 * 3600))
    ///         .await?;
    /// }
    /// let events = kv.get("events").await?.unwrap();
    /// let kept: Vec<_> = events.as_array().unwrap().iter().map(|e| e["n"].clone()).collect();
    /// assert_eq!(kept, vec![json!(2), json!(3), json!(4)]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn list_push<I>(&self, key: impl AsRef<str>, items: I) -> ListPush<'_>
    where
        I: IntoIterator,
        I::Item: Serialize,
    {
        Pending::new(
            &self.mailbox,
            ListPushArgs::new(self.mailbox.key(key), items),
        )
    }

    /// Takes up to `count` items from the front of the list at `key`, oldest first, and removes
    /// the key once the list is empty.
    ///
    /// This is how several workers share one inbox: each takes a few items at a time, and every
    /// item goes to exactly one of them ([`list_pop_all`](KvHandle::list_pop_all) would give the
    /// first caller everything). The list keeps its TTL.
    ///
    /// A missing or expired key, or a `count` of 0, gives an empty `Vec` and changes nothing. The
    /// items move out of the store, copied only if a reader still holds that version of the list.
    ///
    /// To wait for items when the list is empty (a worker's blocking pop, like Redis `BLMPOP`),
    /// add [`.wait(timeout)`](crate::ListPopFront::wait).
    ///
    /// # Errors
    /// [`KvError::WrongType`] if the key holds something other than a list (it is kept),
    /// [`KvError::Closed`].
    ///
    /// ```
    /// use serde_json::json;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// kv.list_push("jobs", [json!("a"), json!("b"), json!("c")]).await?;
    /// assert_eq!(kv.list_pop_front("jobs", 2).await?, vec![json!("a"), json!("b")]);
    /// assert_eq!(kv.list_pop_front("jobs", 2).await?, vec![json!("c")]);
    /// assert!(!kv.exists("jobs").await?); // emptied, so removed
    /// assert!(kv.list_pop_front("jobs", 2).await?.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn list_pop_front(&self, key: impl AsRef<str>, count: usize) -> ListPopFront<'_> {
        Pending::new(
            &self.mailbox,
            ListPopFrontArgs::new(self.mailbox.key(key), count),
        )
    }

    /// Removes the list at `key` and returns its items, atomically: no item is lost or returned
    /// twice, however many tasks pop at once.
    ///
    /// A missing or expired key gives an empty `Vec`. So does a key holding something other than a
    /// list, and that value is left untouched (the reference returns `[]` there; deleting a value
    /// the call cannot return would lose data). A list stored with [`set`](KvHandle::set) counts.
    ///
    /// # Errors
    /// [`KvError::Closed`] if the store has stopped.
    ///
    /// ```
    /// use serde_json::json;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// kv.set("recent_events", json!(["a", "b"])).await?;
    /// assert_eq!(kv.list_pop_all("recent_events").await?, vec![json!("a"), json!("b")]);
    /// assert_eq!(kv.list_pop_all("logs").await?, Vec::<serde_json::Value>::new());
    /// # Ok(())
    /// # }
    /// ```
    pub fn list_pop_all(
        &self,
        key: impl AsRef<str>,
    ) -> impl Future<Output = Result<Vec<Value>, KvError>> + Send + '_ {
        let key = self.mailbox.key(key);
        Pending::new(&self.mailbox, ListPopAllArgs(command::ListPopAll { key }))
    }
}

/// Coordination: counters, leases, conditional writes, atomic closures, change feeds and
/// hand-offs. Each is one command, so each read-modify-write is atomic.
impl KvHandle {
    /// Adds `by` (which may be negative) to the integer at `key` and returns the new value. A
    /// missing or expired key counts as 0.
    ///
    /// [`Incr::ttl`] sets a TTL only when this call creates the key; an existing counter keeps its
    /// TTL (or lack of one).
    ///
    /// # Errors
    /// [`KvError::WrongType`] if the key holds anything but an integer that fits `i64`,
    /// [`KvError::Overflow`] if the sum would leave `i64`'s range, [`KvError::InvalidTtl`] for a
    /// zero TTL, [`KvError::Closed`]. The counter is unchanged on error.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ephemeral_kv::KvError;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// assert_eq!(kv.incr("attempts", 1).await?, 1);
    /// assert_eq!(kv.incr("attempts", -3).await?, -2);
    /// let n = kv.incr("rate:1.2.3.4", 1).ttl(Duration::from_secs(60)).await?;
    /// assert_eq!(n, 1);
    ///
    /// kv.set("name", "Ada").await?;
    /// assert!(matches!(kv.incr("name", 1).await, Err(KvError::WrongType { .. })));
    /// # Ok(())
    /// # }
    /// ```
    pub fn incr(&self, key: impl AsRef<str>, by: i64) -> Incr<'_> {
        Pending::new(&self.mailbox, IncrArgs::new(self.mailbox.key(key), by))
    }

    /// Stores `value` at `key` only if the key is missing or expired, and returns whether it did.
    /// With [`SetIfAbsent::ttl`] this is a lease: whoever stores it holds it until it is deleted or
    /// expires.
    ///
    /// # Errors
    /// [`KvError::Serialize`], [`KvError::InvalidTtl`], [`KvError::Closed`].
    ///
    /// ```
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// let got = kv.set_if_absent("lock:job:7", "worker-1").ttl(Duration::from_secs(30)).await?;
    /// assert!(got);
    /// assert!(!kv.set_if_absent("lock:job:7", "worker-2").await?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_if_absent<T: Serialize>(&self, key: impl AsRef<str>, value: T) -> SetIfAbsent<'_> {
        Pending::new(
            &self.mailbox,
            SetIfAbsentArgs::new(self.mailbox.key(key), value),
        )
    }

    /// Stores `new` at `key` only if the key currently holds `expected` (with `None`: only if it is
    /// missing or expired), and returns whether it did.
    ///
    /// Without [`CompareAndSet::ttl`] an existing key keeps its TTL and a created one never
    /// expires.
    ///
    /// # Errors
    /// [`KvError::Serialize`], [`KvError::InvalidTtl`], [`KvError::Closed`].
    ///
    /// ```
    /// use serde_json::json;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// kv.set("state", "idle").await?;
    /// assert!(kv.compare_and_set("state", Some(json!("idle")), "busy").await?);
    /// assert!(!kv.compare_and_set("state", Some(json!("idle")), "busy").await?);
    /// assert!(!kv.compare_and_set("state", None, "idle").await?); // not absent
    /// assert_eq!(kv.get("state").await?.as_deref(), Some(&json!("busy")));
    /// # Ok(())
    /// # }
    /// ```
    pub fn compare_and_set<T: Serialize>(
        &self,
        key: impl AsRef<str>,
        expected: Option<Value>,
        new: T,
    ) -> CompareAndSet<'_> {
        Pending::new(
            &self.mailbox,
            CompareAndSetArgs::new(self.mailbox.key(key), expected, new),
        )
    }

    /// Removes `key` and returns the value it held, atomically: of many tasks taking one key, one
    /// gets the value and the rest get `None`.
    ///
    /// # Errors
    /// [`KvError::Closed`].
    ///
    /// ```
    /// use serde_json::json;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// kv.set("job:7:result", "done").await?;
    /// assert_eq!(kv.get_del("job:7:result").await?, Some(json!("done")));
    /// assert_eq!(kv.get_del("job:7:result").await?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_del(
        &self,
        key: impl AsRef<str>,
    ) -> impl Future<Output = Result<Option<Value>, KvError>> + Send + '_ {
        let key = self.mailbox.key(key);
        Pending::new(&self.mailbox, GetDelArgs(command::GetDel { key }))
    }

    /// Replaces the value at `key` with what `f` makes of it, atomically, and returns the new
    /// value. `f` gets the current value (`None` if missing or expired) and returns the new one, or
    /// `None` to delete the key. An existing key keeps its TTL; a created one never expires.
    ///
    /// `f` runs on the owner task, which serves every caller of the store: **keep it short**, and
    /// never block or wait in it. If it panics, the panic is caught, the key is left exactly as it
    /// was, the call returns [`KvError::UpdatePanicked`], and the store keeps serving.
    ///
    /// `f` is `FnMut` because of the Redis backend: in-process it runs exactly once, but on Redis
    /// (an optimistic `WATCH`/`MULTI`/`EXEC`) it runs again when another client changed the key
    /// between the read and the write, up to a bounded number of attempts. Keep it free of side
    /// effects other than its return value.
    ///
    /// # Errors
    /// [`KvError::UpdatePanicked`], [`KvError::Closed`]; on Redis also [`KvError::Backend`] and
    /// [`KvError::Contended`].
    ///
    /// ```
    /// use serde_json::json;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// let add_apple = |cur: Option<&serde_json::Value>| {
    ///     let mut cart = cur.cloned().unwrap_or(json!([]));
    ///     cart.as_array_mut()?.push(json!("apple"));
    ///     Some(cart)
    /// };
    /// let cart = kv.update("cart:9", add_apple).await?;
    /// assert_eq!(cart.as_deref(), Some(&json!(["apple"])));
    /// assert_eq!(kv.update("cart:9", |_| None).await?, None); // deletes
    /// assert_eq!(kv.exists("cart:9").await?, false);
    /// # Ok(())
    /// # }
    /// ```
    pub fn update<F>(
        &self,
        key: impl AsRef<str>,
        f: F,
    ) -> impl Future<Output = Result<Option<Arc<Value>>, KvError>> + Send + '_
    where
        F: FnMut(Option<&Value>) -> Option<Value> + Send + 'static,
    {
        let key = self.mailbox.key(key);
        let f = UpdateFn::new(f);
        Pending::new(&self.mailbox, command::Update { key, f })
    }

    /// Runs `f` over several keys at once and returns what it returns. Through its [`Txn`], `f`
    /// reads ([`Txn::get`]) and stages writes ([`Txn::set`], [`Txn::delete`], [`Txn::expire`]);
    /// when it returns, all the staged writes are applied together, and no other call runs in
    /// between. [`Txn::abort`] drops them. Keys are relative to this handle's prefix.
    ///
    /// `f` runs on the owner task, which serves every caller of the store: **keep it short**, and
    /// never block or wait in it. If it panics, the panic is caught, none of its writes are
    /// applied, the call returns [`KvError::TransactionPanicked`], and the store keeps serving.
    ///
    /// `f` is `FnMut` because of the Redis backend: in-process it runs exactly once, but on Redis
    /// it runs against the values fetched so far and again after fetching any key it read that was
    /// not fetched yet, and again from scratch when another client changed a key it read before
    /// the writes were applied (an optimistic `WATCH`/`MULTI`/`EXEC`, with a bounded number of
    /// attempts). Only the run whose writes are applied returns its value to the caller. Keep it
    /// free of side effects other than its return value and its [`Txn`] calls.
    ///
    /// # Errors
    /// [`KvError::TransactionPanicked`], [`KvError::Closed`]; on Redis also [`KvError::Backend`]
    /// and [`KvError::Contended`].
    ///
    /// ```
    /// use serde_json::json;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// kv.mset([("acct:a", 100), ("acct:b", 0)]).await?;
    /// let moved = kv
    ///     .transaction(|txn| {
    ///         let a = txn.get("acct:a").and_then(|v| v.as_i64()).unwrap_or(0);
    ///         let b = txn.get("acct:b").and_then(|v| v.as_i64()).unwrap_or(0);
    ///         let amount = a.min(30);
    ///         txn.set("acct:a", a - amount);
    ///         txn.set("acct:b", b + amount);
    ///         amount
    ///     })
    ///     .await?;
    /// assert_eq!(moved, 30);
    /// let [a, b] = <[_; 2]>::try_from(kv.mget(["acct:a", "acct:b"]).await?).unwrap();
    /// assert_eq!((a.as_deref(), b.as_deref()), (Some(&json!(70)), Some(&json!(30))));
    /// # Ok(())
    /// # }
    /// ```
    pub fn transaction<F, R>(&self, f: F) -> impl Future<Output = Result<R, KvError>> + Send + '_
    where
        F: FnMut(&mut Txn<'_>) -> R + Send + 'static,
        R: Send + 'static,
    {
        let prefix = self.prefix().to_owned();
        Pending::new(&self.mailbox, TransactionArgs::new(prefix, f))
    }

    /// Opens a stream of the changes to keys under `prefix` (relative to this handle's prefix):
    /// [`WatchEvent::Set`](crate::WatchEvent::Set), [`Deleted`](crate::WatchEvent::Deleted),
    /// [`Expired`](crate::WatchEvent::Expired) and [`Evicted`](crate::WatchEvent::Evicted), in the
    /// order the owner task applied them.
    ///
    /// Awaiting the returned [`Watch`] registers the stream; every change applied after that is
    /// seen. A reader that falls behind by more than [`Watch::capacity`] events loses the oldest
    /// and is told how many with [`KvError::Lagged`]: the store never waits for it. Dropping the
    /// stream unsubscribes; the stream ends when the store stops.
    ///
    /// One event per key per command, with the key's state after the command: a command that
    /// writes a key twice shows only where it left it, and a transaction that creates a key and
    /// deletes it again sends nothing for it, since no call could have seen it.
    ///
    /// What a stream costs: each unread [`WatchEvent::Set`](crate::WatchEvent::Set) holds the
    /// value as it was then, shared with the store, not copied. A list changed in place
    /// (`list_push`, `list_append_unique`, `list_pop_front`) is the exception that would cost a
    /// copy of the list per event, so the stream holds, for such a list, the first version it was
    /// sent and then only what each change took off the front and added at the end, and rebuilds
    /// each version when it is read (in the reading task). An unread stream on a list that keeps
    /// growing therefore costs one copy of the list, made by the store at the first change after
    /// the stream took a version (as for any caller still holding one), and a copy of each
    /// appended item. The in-process store only; on Redis every event's value is read from the
    /// server anyway.
    ///
    /// # Errors
    /// [`KvError::Closed`] if the store has stopped; on Redis, [`KvError::Backend`] if the change
    /// stream cannot be opened. On Redis the writes of every client are seen, in the server's
    /// order, expiries are not events, and writes pay for the stream only while someone watches
    /// (`docs/redis-feed.md`).
    ///
    /// ```
    /// use ephemeral_kv::WatchEvent;
    /// use futures::StreamExt;
    /// use serde_json::json;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// let mut events = kv.watch("inbox:").await?;
    /// kv.set("elsewhere", 1).await?; // not under the prefix: not seen
    /// kv.set("inbox:1", "hi").await?;
    /// let event = events.next().await.transpose()?;
    /// assert_eq!(event, Some(WatchEvent::Set { key: "inbox:1".into(), value: json!("hi").into() }));
    /// # Ok(())
    /// # }
    /// ```
    pub fn watch(&self, prefix: impl AsRef<str>) -> Watch<'_> {
        Pending::new(&self.mailbox, WatchArgs::new(self.mailbox.key(prefix)))
    }

    /// Waits until `key` holds a value and returns it: at once if it already does, else as soon as
    /// any call gives it one.
    ///
    /// It waits for as long as it takes; bound it with [`tokio::time::timeout`]. A wait that is
    /// dropped (by a timeout or otherwise) is forgotten by the store. On Redis it is pushed by the
    /// change stream: woken within a round trip of the write (by any client), sending nothing
    /// while it waits.
    ///
    /// # Errors
    /// [`KvError::Closed`] if the store stops before the key gets a value; on Redis,
    /// [`KvError::Backend`] if the first read fails.
    ///
    /// ```
    /// use std::time::Duration;
    /// use serde_json::json;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// let worker = kv.clone();
    /// tokio::spawn(async move { worker.set("job:7:result", "done").await });
    /// let v = kv.wait_for("job:7:result").await?;
    /// assert_eq!(*v, json!("done"));
    ///
    /// let late = tokio::time::timeout(Duration::from_millis(10), kv.wait_for("never")).await;
    /// assert!(late.is_err()); // timed out
    /// # Ok(())
    /// # }
    /// ```
    pub fn wait_for(
        &self,
        key: impl AsRef<str>,
    ) -> impl Future<Output = Result<Arc<Value>, KvError>> + Send + '_ {
        let key = self.mailbox.key(key);
        Pending::new(&self.mailbox, command::WaitFor { key })
    }

    /// [`wait_for`](KvHandle::wait_for), deserializing the value into `T`: a typed hand-off.
    ///
    /// # Errors
    /// [`KvError::Deserialize`] if the value that arrived does not fit `T` (it stays in the store),
    /// and the errors of `wait_for`.
    ///
    /// ```
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Serialize, Deserialize, Debug, PartialEq)]
    /// struct Report { rows: u32 }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// let worker = kv.clone();
    /// tokio::spawn(async move { worker.set("job:7:result", Report { rows: 3 }).await });
    /// let report: Report = kv.wait_for_as("job:7:result").await?;
    /// assert_eq!(report, Report { rows: 3 });
    /// # Ok(())
    /// # }
    /// ```
    pub fn wait_for_as<'a, T: DeserializeOwned + 'a>(
        &'a self,
        key: impl AsRef<str>,
    ) -> impl Future<Output = Result<T, KvError>> + Send + 'a {
        Pending::new(&self.mailbox, WaitForAs::new(self.mailbox.key(key)))
    }
}

/// Housekeeping and lifecycle.
impl KvHandle {
    /// Removes expired entries, up to [`PurgeExpired::limit`] (1000 by default), and returns how
    /// many it removed.
    ///
    /// It works on the whole store, not only on this handle's prefix. Its cost grows with the
    /// number it removes, not with the size of the store. With active expiry on (the default) the
    /// owner task already does this on its own, so calling it is rarely needed.
    ///
    /// On Redis it returns `Ok(0)`: Redis removes expired keys itself, and they are invisible
    /// there too.
    ///
    /// # Errors
    /// [`KvError::Closed`] if the store has stopped.
    ///
    /// ```
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::builder().active_expiry(false).spawn();
    /// kv.set("a", 1).ttl(Duration::from_secs(1)).await?;
    /// kv.set("b", 2).ttl(Duration::from_secs(1)).await?;
    /// tokio::time::advance(Duration::from_secs(2)).await;
    /// assert_eq!(kv.purge_expired().limit(1).await?, 1);
    /// assert_eq!(kv.purge_expired().await?, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn purge_expired(&self) -> PurgeExpired<'_> {
        Pending::new(&self.mailbox, PurgeExpiredArgs::new())
    }

    /// A snapshot of what the store holds and how it has been used (the whole store, not only
    /// this handle's prefix).
    ///
    /// On Redis, `entries` counts the keys under the builder's prefix, `commands` the commands
    /// this handle's owner task handled, `watchers` its open streams and pending waits; the other
    /// counters are 0.
    ///
    /// # Errors
    /// [`KvError::Closed`] if the store has stopped.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// kv.set("a", 1).await?;
    /// assert_eq!(kv.stats().await?.entries, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn stats(&self) -> Result<Stats, KvError> {
        let mailbox_depth = self.mailbox.depth();
        Pending::new(&self.mailbox, StatsArgs { mailbox_depth }).await
    }

    /// Whether the store has stopped, so that every call would return [`KvError::Closed`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// assert!(!kv.is_closed());
    /// kv.shutdown().await;
    /// assert!(kv.is_closed());
    /// # }
    /// ```
    pub fn is_closed(&self) -> bool {
        self.mailbox.is_closed()
    }

    /// Stops the store: the owner task answers every command queued before this one, then ends and
    /// frees the store. Every later call, on any handle, returns [`KvError::Closed`]. Returns once
    /// the owner task has stopped (for a [`durable`](crate::KvBuilder::durable) store, once its
    /// changes are committed and its file closed); calling it on a stopped store returns at once.
    ///
    /// ```
    /// use ephemeral_kv::KvError;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// let other = kv.clone();
    /// kv.shutdown().await;
    /// assert!(matches!(other.get("k").await, Err(KvError::Closed)));
    /// # }
    /// ```
    pub async fn shutdown(&self) {
        self.mailbox.shutting_down();
        // An error here means the store had already stopped, which is what was asked for.
        let _ = Pending::new(&self.mailbox, ShutdownArgs).await;
    }
}

/// What the crate's other parts need of a handle.
impl KvHandle {
    /// A handle on the store behind `mailbox`.
    pub(crate) fn new(mailbox: Mailbox) -> KvHandle {
        KvHandle { mailbox }
    }
}
