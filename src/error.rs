//! [`KvError`]: everything a call can fail with.
//!
//! Every error is returned *before* the store changes: a call that fails leaves the store exactly as
//! it was. Keys named in errors are the full stored keys, prefix included, so that they match what
//! `tracing` logs.

use std::sync::Arc;
use std::time::Duration;

/// The error type of every fallible call on a [`KvHandle`](crate::KvHandle).
///
/// A call that returns an error has changed nothing in the store. The enum is `#[non_exhaustive]`:
/// match the variants you handle and keep a `_` arm.
///
/// ```
/// use ephemeral_kv::{KvError, KvHandle};
/// use serde_json::json;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let kv = KvHandle::spawn();
/// kv.set("name", "Alice").await.unwrap();
///
/// // "name" holds a string, not a list: the append is refused and the string is kept.
/// let err = kv.list_append_unique("name", vec![json!({"id": 1})]).await.unwrap_err();
/// assert!(matches!(err, KvError::WrongType { .. }));
/// assert_eq!(err.to_string(), "key `name` holds a string, but this call needs a list");
/// assert_eq!(kv.get("name").await.unwrap().as_deref(), Some(&json!("Alice")));
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KvError {
    /// The store was shut down by [`KvHandle::shutdown`](crate::KvHandle::shutdown) (on this
    /// handle or another of the same store); every later call gets this. Start a new store to go
    /// on.
    #[error("the store was shut down")]
    Closed,

    /// The store's owner task ended without a shutdown, almost always because the tokio runtime
    /// that ran it ended (say, a handle kept in a `static` or passed to another runtime outlived
    /// the runtime the store was spawned on). Every later call gets this. Keep that runtime alive
    /// for as long as the store's handles are used.
    ///
    /// ```
    /// let kv = tokio::runtime::Runtime::new()
    ///     .unwrap()
    ///     .block_on(async { ephemeral_kv::KvHandle::spawn() }); // that runtime ends here
    /// let other = tokio::runtime::Runtime::new().unwrap();
    /// let refused = other.block_on(kv.get("k"));
    /// assert!(matches!(refused, Err(ephemeral_kv::KvError::OwnerGone)));
    /// ```
    #[error("the store's owner task ended without a shutdown (its tokio runtime has ended)")]
    OwnerGone,

    /// A value could not be turned into JSON (for example a map with non-string keys).
    #[error("value for key `{key}` cannot be serialized to JSON")]
    Serialize {
        /// The key the value was meant for.
        key: String,
        /// What serde_json reported.
        #[source]
        source: serde_json::Error,
    },

    /// A stored value does not have the shape asked for by a typed read such as
    /// [`KvHandle::get_as`](crate::KvHandle::get_as).
    #[error("value at key `{key}` does not fit the requested type")]
    Deserialize {
        /// The key that was read.
        key: String,
        /// What serde_json reported.
        #[source]
        source: serde_json::Error,
    },

    /// The existing value has the wrong JSON type for this call, for example appending to a key that
    /// holds a string. The existing value is kept.
    #[error("key `{key}` holds {found}, but this call needs {expected}")]
    WrongType {
        /// The key whose value has the wrong type.
        key: String,
        /// What the call needs, such as `"a list"`.
        expected: &'static str,
        /// What the key holds, such as `"a string"`.
        found: &'static str,
    },

    /// An item given to [`KvHandle::list_append_unique`](crate::KvHandle::list_append_unique) is not
    /// a JSON object holding the id field. Nothing was appended.
    #[error("item {index} for key `{key}` is invalid: {reason}")]
    InvalidItem {
        /// The key of the list.
        key: String,
        /// The item's position in the call's `items`, from 0.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },

    /// An argument other than a value, an item or a TTL is out of range (say, `max_len(0)` on
    /// [`KvHandle::list_push`](crate::KvHandle::list_push)). Nothing was changed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// let refused = kv.list_push("log", [1]).max_len(0).await;
    /// assert!(matches!(refused, Err(ephemeral_kv::KvError::InvalidArgument { .. })));
    /// # }
    /// ```
    #[error("invalid argument for key `{key}`: {reason}")]
    InvalidArgument {
        /// The full key of the call.
        key: String,
        /// What is wrong, and what to do instead.
        reason: String,
    },

    /// A value nests deeper than [`MAX_DEPTH`](crate::MAX_DEPTH) levels. Nothing was sent or
    /// changed.
    #[error(
        "value for key `{key}` nests deeper than {limit} levels; store deep structures flattened \
         or as text"
    )]
    TooDeep {
        /// The key the value was meant for.
        key: String,
        /// The limit, [`MAX_DEPTH`](crate::MAX_DEPTH).
        limit: usize,
    },

    /// A call on a store was made from inside one of that store's own
    /// [`update`](crate::KvHandle::update) or [`transaction`](crate::KvHandle::transaction)
    /// closures. Those run on the store's owner task, which cannot answer the call until the
    /// closure returns: rather than wait forever, the call fails at once. Read what the closure
    /// needs through its argument (or the [`Txn`](crate::Txn)), and make other calls before or
    /// after.
    #[error(
        "`{op}` was called from inside an `update`/`transaction` closure of the same store, which \
         cannot answer until the closure returns; make the call before or after the closure"
    )]
    Reentrant {
        /// The call that was refused.
        op: &'static str,
    },

    /// A time-to-live of zero. A key that expires the instant it is written is almost always a bug
    /// (a TTL computed from a clock that went past its deadline, a unit mistake), so it is refused
    /// rather than silently deleting the key.
    #[error("TTL for key `{key}` must be greater than zero, got {ttl:?}")]
    InvalidTtl {
        /// The key the TTL was for (for `mset`, the batch's first key).
        key: String,
        /// The TTL that was given.
        ttl: Duration,
    },

    /// [`KvHandle::incr`](crate::KvHandle::incr) would take the counter past the bounds of `i64`.
    /// The counter is kept as it was.
    #[error("incrementing key `{key}` (holding {current}) by {by} would overflow an i64")]
    Overflow {
        /// The counter's key.
        key: String,
        /// The counter's value, unchanged.
        current: i64,
        /// The increment that was refused.
        by: i64,
    },

    /// The store holds [`max_entries`](crate::KvBuilder::max_entries) entries and the call would
    /// add a key (`key`, the first new one it names): expired entries were removed first, and
    /// still no room was left, either because the store refuses to evict
    /// ([`Eviction::Refuse`](crate::Eviction::Refuse), the default) or because too few keys have
    /// a TTL to evict ([`Eviction::VolatileTtl`](crate::Eviction::VolatileTtl), which never evicts
    /// a key without one, nor one the call writes). Nothing was changed: an `mset` or a
    /// `transaction` is refused whole. Overwriting a key the store holds is never refused.
    /// Only the in-process store returns it.
    ///
    /// To get room: delete keys, give keys TTLs, raise `max_entries`, or choose
    /// [`Eviction::VolatileTtl`](crate::Eviction::VolatileTtl).
    ///
    /// ```
    /// use ephemeral_kv::{KvError, KvHandle};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let kv = KvHandle::builder().prefix("app:").max_entries(1).spawn();
    /// kv.set("a", 1).await.unwrap();
    /// let err = kv.incr("hits", 1).await.unwrap_err();
    /// assert!(matches!(&err, KvError::Full { key, max_entries: 1 } if key == "app:hits"));
    /// assert!(err.to_string().starts_with("the store is full: adding key `app:hits` would exceed"));
    /// assert_eq!(kv.get("hits").await.unwrap(), None);
    /// # }
    /// ```
    #[error(
        "the store is full: adding key `{key}` would exceed `max_entries` = {max_entries} and no \
         entry may be evicted; raise `max_entries`, set TTLs (expired keys make room, and \
         `Eviction::VolatileTtl` evicts the keys closest to expiry), or choose \
         `Eviction::VolatileTtl`"
    )]
    Full {
        /// The full key the call would have added (for `mset` and `transaction`, the first new
        /// key they name).
        key: String,
        /// The store's bound, from [`KvBuilder::max_entries`](crate::KvBuilder::max_entries).
        max_entries: usize,
    },

    /// The closure given to [`KvHandle::update`](crate::KvHandle::update) panicked. The key is
    /// exactly as it was before the call, and the store keeps serving.
    #[error("the update closure for key `{key}` panicked: {message}")]
    UpdatePanicked {
        /// The key being updated.
        key: String,
        /// The panic's message, when it was a string.
        message: String,
    },

    /// The closure given to [`KvHandle::transaction`](crate::KvHandle::transaction) panicked. None
    /// of its writes were applied, and the store keeps serving.
    #[error("the transaction closure on handle prefix `{prefix}` panicked: {message}")]
    TransactionPanicked {
        /// The prefix of the handle the transaction ran on (its keys are relative to it).
        prefix: String,
        /// The panic's message, when it was a string.
        message: String,
    },

    /// A [`WatchStream`](crate::WatchStream) fell behind: its buffer was full, so `missed` events
    /// under `prefix` were dropped for it (the store never waits for a slow watcher). The stream
    /// goes on with the events that came after. Read the stream sooner, or open it with a larger
    /// [`capacity`](crate::Watch::capacity).
    #[error("watcher of prefix `{prefix}` fell behind and missed {missed} events")]
    Lagged {
        /// The full prefix being watched.
        prefix: String,
        /// How many events were dropped, in a row, just before the next item.
        missed: u64,
    },

    /// The backend failed the call: the Redis server answered with an error, could not be
    /// reached, or did not answer in time (see [`KvBuilder::redis`](crate::KvBuilder)). Never
    /// returned by the in-process store.
    ///
    /// Branch on [`kind`](BackendErrorKind) (or [`KvError::is_timeout`],
    /// [`KvError::is_connection`], [`KvError::is_refused`]) rather than on the message; the
    /// underlying error, when there is one (a `redis::RedisError`), is the
    /// [`source`](std::error::Error::source). A timeout or a lost connection says nothing about
    /// whether the call was applied: the handle keeps working and reconnects on its own, and a
    /// retry of a write that is not idempotent (`incr`, `list_push`) may apply it twice.
    ///
    /// ```
    /// use ephemeral_kv::{BackendErrorKind, KvError};
    /// fn retry_worth_it(error: &KvError) -> bool {
    ///     error.is_timeout() || error.is_connection()
    /// }
    /// let refused = KvError::Backend {
    ///     kind: BackendErrorKind::Refused,
    ///     message: "redis refused the command".into(),
    ///     source: None,
    /// };
    /// assert!(!retry_worth_it(&refused) && refused.is_refused());
    /// ```
    #[error("backend error: {message}")]
    Backend {
        /// What kind of failure it was.
        kind: BackendErrorKind,
        /// What failed, in words, with the server's or the connection's message.
        message: String,
        /// The error the backend's client gave, shared (one failed pipeline answers every call
        /// in it with the same cause).
        #[source]
        source: Option<Arc<dyn std::error::Error + Send + Sync>>,
    },

    /// This backend cannot do this call (for example [`KvHandle::watch`](crate::KvHandle::watch)
    /// on Redis). Nothing was changed.
    #[error("`{op}` is not supported on the {backend} backend")]
    Unsupported {
        /// The call, as the [`KvHandle`](crate::KvHandle) method is named.
        op: &'static str,
        /// The backend, such as `"redis"`.
        backend: &'static str,
    },

    /// An optimistic read-modify-write on Redis (`update`, `transaction`, `compare_and_set`,
    /// `get_del`, `list_push`, `list_pop_front`, `list_pop_all`) lost the race to other clients
    /// `attempts` times in a row (each time, a key it read changed before its writes were
    /// applied), or a transaction kept reading keys it had not read before; it gave up. Nothing
    /// was written; retrying later may succeed, and so may reading fewer keys.
    #[error("`{op}` on `{key}` gave up after {attempts} attempts: other clients kept writing")]
    Contended {
        /// The call: `"update"` or `"transaction"`.
        op: &'static str,
        /// The key updated, or the handle's prefix for a transaction.
        key: String,
        /// How many attempts were made.
        attempts: u32,
    },

    /// The SQLite file of a durable store ([`KvBuilder::durable`](crate::KvBuilder::durable),
    /// feature `durable`) could not be used: refused at open (another store holds it, it is not
    /// this crate's, it is from a newer version, it is corrupt), or a commit to it failed (a full
    /// or failing disk). Branch on [`kind`](DurableErrorKind); the SQLite or JSON error, when
    /// there is one, is the [`source`](std::error::Error::source).
    ///
    /// After a failed commit ([`DurableErrorKind::Commit`]) the store answers every later call
    /// with this error: its memory may hold changes the file does not. Open the file again (after
    /// [`KvHandle::shutdown`](crate::KvHandle::shutdown)) to go on from what was committed.
    ///
    /// ```
    /// use ephemeral_kv::{DurableErrorKind, KvError};
    /// let error = KvError::Durable {
    ///     path: "kv.db".into(),
    ///     kind: DurableErrorKind::Locked,
    ///     message: "another store has it open".into(),
    ///     source: None,
    /// };
    /// assert_eq!(error.to_string(), "durable store `kv.db`: another store has it open");
    /// ```
    #[cfg(feature = "durable")]
    #[error("durable store `{}`: {message}", path.display())]
    Durable {
        /// The file, as given to `durable`.
        path: std::path::PathBuf,
        /// What went wrong.
        kind: DurableErrorKind,
        /// What failed, in words.
        message: String,
        /// The underlying error, shared (one failed commit answers every write in it).
        #[source]
        source: Option<Arc<dyn std::error::Error + Send + Sync>>,
    },
}

/// What kind of failure a [`KvError::Durable`] is. `#[non_exhaustive]`: keep a `_` arm.
///
/// ```
/// use ephemeral_kv::DurableErrorKind;
/// assert_ne!(DurableErrorKind::Locked, DurableErrorKind::Corrupt);
/// ```
#[cfg(feature = "durable")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DurableErrorKind {
    /// Another store, in this process or another, has the file open. Nothing was read.
    Locked,
    /// The file is not this crate's: not a SQLite database, or another program's one. It was
    /// left as it was.
    NotOurs,
    /// The file was written by a newer version of this crate (its `user_version` is higher than
    /// this one reads). It was left as it was.
    NewerFormat,
    /// The file is this crate's but cannot be read whole (SQLite reports corruption, or a value
    /// is not JSON). It was left as it was, not emptied.
    Corrupt,
    /// The file could not be opened or created (a missing directory, permissions).
    Open,
    /// The file holds more live keys than the builder's
    /// [`max_entries`](crate::KvBuilder::max_entries).
    TooManyKeys,
    /// A commit failed (a full or failing disk). The writes of that commit were answered with
    /// this error, and so is every later call.
    Commit,
}

/// What kind of failure a [`KvError::Backend`] is. `#[non_exhaustive]`: keep a `_` arm.
///
/// ```
/// use ephemeral_kv::BackendErrorKind;
/// assert_ne!(BackendErrorKind::Timeout, BackendErrorKind::Connection);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BackendErrorKind {
    /// The server did not answer in time. The call may or may not have been applied.
    Timeout,
    /// The connection could not be made or was lost. The call may or may not have been applied.
    Connection,
    /// The server answered, refusing the command (a permission, a wrong type of key made by
    /// another client, a server out of memory...). Nothing was applied.
    Refused,
    /// The server holds data at the key that this crate cannot read (text that is not JSON, or
    /// nested too deep). Nothing was changed.
    Data,
    /// The builder's settings cannot work (an invalid URL, an unsupported protocol).
    Config,
    /// The server answered in a way the call never expects.
    Protocol,
}

impl KvError {
    /// Whether this is a [`Backend`](KvError::Backend) error of kind
    /// [`Timeout`](BackendErrorKind::Timeout).
    ///
    /// ```
    /// assert!(!ephemeral_kv::KvError::Closed.is_timeout());
    /// ```
    pub fn is_timeout(&self) -> bool {
        self.backend_kind() == Some(BackendErrorKind::Timeout)
    }

    /// Whether this is a [`Backend`](KvError::Backend) error of kind
    /// [`Connection`](BackendErrorKind::Connection).
    ///
    /// ```
    /// assert!(!ephemeral_kv::KvError::Closed.is_connection());
    /// ```
    pub fn is_connection(&self) -> bool {
        self.backend_kind() == Some(BackendErrorKind::Connection)
    }

    /// Whether this is a [`Backend`](KvError::Backend) error of kind
    /// [`Refused`](BackendErrorKind::Refused).
    ///
    /// ```
    /// assert!(!ephemeral_kv::KvError::Closed.is_refused());
    /// ```
    pub fn is_refused(&self) -> bool {
        self.backend_kind() == Some(BackendErrorKind::Refused)
    }

    /// The kind of a [`Backend`](KvError::Backend) error; `None` for every other variant.
    ///
    /// ```
    /// assert_eq!(ephemeral_kv::KvError::Closed.backend_kind(), None);
    /// ```
    pub fn backend_kind(&self) -> Option<BackendErrorKind> {
        match self {
            KvError::Backend { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// The variant's name in snake case, for logs: what came of a command that failed.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            KvError::Closed => "closed",
            KvError::OwnerGone => "owner_gone",
            KvError::Serialize { .. } => "serialize",
            KvError::Deserialize { .. } => "deserialize",
            KvError::WrongType { .. } => "wrong_type",
            KvError::InvalidItem { .. } => "invalid_item",
            KvError::InvalidArgument { .. } => "invalid_argument",
            KvError::InvalidTtl { .. } => "invalid_ttl",
            KvError::Overflow { .. } => "overflow",
            KvError::Full { .. } => "full",
            KvError::TooDeep { .. } => "too_deep",
            KvError::Reentrant { .. } => "reentrant",
            KvError::UpdatePanicked { .. } => "update_panicked",
            KvError::TransactionPanicked { .. } => "transaction_panicked",
            KvError::Lagged { .. } => "lagged",
            KvError::Backend { .. } => "backend",
            KvError::Unsupported { .. } => "unsupported",
            KvError::Contended { .. } => "contended",
            #[cfg(feature = "durable")]
            KvError::Durable { .. } => "durable",
        }
    }
}

/// The message of a caught panic: the text of `panic!("...")`, or a placeholder.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}

/// The JSON type of a value, in words, for [`KvError::WrongType`].
pub(crate) fn json_type_name(value: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
