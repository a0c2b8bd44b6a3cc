//! The command enum: the single list of what the store can do, as plain data.
//!
//! A [`KvHandle`](crate::KvHandle) call builds one [`Command`] and sends it to its executor's
//! owner task: the in-process one ([`local`](crate::local)) or the Redis one (`redis`). Each
//! executor handles every variant in one `match` with no catch-all arm, so a command added here
//! does not compile until every executor handles it. Each command carries the channel for its
//! answer.
//!
//! Commands arrive already checked: keys carry their prefix, values are serialized, TTLs are
//! non-zero and list items are objects holding a scalar id. What is left to fail is what only the
//! executor can see (an existing value of the wrong type, a lost Redis server).

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{broadcast, oneshot};

use crate::error::KvError;
use crate::stats::Stats;
use crate::ttl::Ttl;
use crate::txn::Txn;

/// Where the owner task sends a command's answer. A caller that stopped waiting has dropped the
/// receiving end; the answer is then discarded, which is normal and not an error.
///
/// Every answer is a `Result`, even for commands the in-process store cannot fail, so that any
/// executor behind this enum (the Redis one can lose its server) can fail any call with a clear
/// [`KvError`] instead of dropping it.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, KvError>>;

/// An `update` closure: the key's current value in, its new value (or `None`: delete) out.
///
/// `FnMut`, not `FnOnce`: the Redis executor runs it again when another client wrote the key
/// between its read and its write. In-process it runs exactly once.
pub(crate) type UpdateFn = Box<dyn FnMut(Option<&Value>) -> Option<Value> + Send>;

/// A `transaction` closure, reading and staging writes through a [`Txn`]. `FnMut` for the same
/// reason as [`UpdateFn`].
pub(crate) type TxnFn = Box<dyn FnMut(&mut Txn<'_>) + Send>;

/// What happened to a key, as an executor publishes it to change feeds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ChangeKind {
    /// The key now holds this value.
    Set(Arc<Value>),
    /// The key was removed by a command.
    Deleted,
    /// The key's TTL ran out and the store removed it (lazily, by a purge, or by active expiry).
    Expired,
}

/// One change to one key, with the full (prefixed) key: what a change feed carries.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Change {
    pub(crate) key: String,
    pub(crate) kind: ChangeKind,
}

/// One request to the owner task, with the channel for its answer.
pub(crate) enum Command {
    /// Read one key.
    Get {
        key: String,
        reply: Reply<Option<Arc<Value>>>,
    },
    /// Write one key, replacing value and TTL.
    Set {
        key: String,
        value: Value,
        ttl: Option<Duration>,
        reply: Reply<()>,
    },
    /// Remove one key.
    Delete { key: String, reply: Reply<()> },
    /// Append items with new ids to a list; answer with the whole list.
    ListAppendUnique {
        key: String,
        items: Vec<Value>,
        id_key: String,
        ttl: Option<Duration>,
        reply: Reply<Arc<Value>>,
    },
    /// Remove a list and answer with it.
    ListPopAll {
        key: String,
        reply: Reply<Option<Arc<Value>>>,
    },
    /// Append items to a list, then drop its oldest so that at most `max_len` remain; answer with
    /// the new length.
    ListPush {
        key: String,
        items: Vec<Value>,
        max_len: usize,
        ttl: Option<Duration>,
        reply: Reply<usize>,
    },
    /// Take up to `count` items from the front of a list; remove the key once it is empty.
    ListPopFront {
        key: String,
        count: usize,
        reply: Reply<Vec<Value>>,
    },
    /// Write several keys at once, all with the same TTL.
    Mset {
        entries: Vec<(String, Value)>,
        ttl: Option<Duration>,
        reply: Reply<()>,
    },
    /// Read several keys at once.
    Mget {
        keys: Vec<String>,
        reply: Reply<Vec<Option<Arc<Value>>>>,
    },
    /// Give a live key a new TTL.
    Expire {
        key: String,
        ttl: Duration,
        reply: Reply<bool>,
    },
    /// Remove up to `limit` expired entries.
    PurgeExpired { limit: usize, reply: Reply<usize> },
    /// Count what the store holds.
    Stats { reply: Reply<Stats> },
    /// Answer everything queued before this, then stop.
    Shutdown { reply: Reply<()> },
    /// Add to an integer; a missing key counts as 0 and is created with `ttl`.
    Incr {
        key: String,
        by: i64,
        ttl: Option<Duration>,
        reply: Reply<i64>,
    },
    /// Write a key only if it is missing.
    SetIfAbsent {
        key: String,
        value: Value,
        ttl: Option<Duration>,
        reply: Reply<bool>,
    },
    /// Write a key only if it holds `expected` (`None`: only if it is missing).
    CompareAndSet {
        key: String,
        expected: Option<Value>,
        new: Value,
        ttl: Option<Duration>,
        reply: Reply<bool>,
    },
    /// Replace a key's value with what a closure makes of it.
    Update {
        key: String,
        f: UpdateFn,
        reply: Reply<Option<Arc<Value>>>,
    },
    /// Run a closure over several keys; apply all of its writes or none.
    Transaction {
        prefix: String,
        f: TxnFn,
        reply: Reply<()>,
    },
    /// Remove a key and answer with its value.
    GetDel {
        key: String,
        reply: Reply<Option<Arc<Value>>>,
    },
    /// Whether a key is live.
    Exists { key: String, reply: Reply<bool> },
    /// How long a key has left.
    Ttl { key: String, reply: Reply<Ttl> },
    /// Remove a key's TTL.
    Persist { key: String, reply: Reply<bool> },
    /// The live keys under a prefix, sorted.
    ScanPrefix {
        prefix: String,
        limit: usize,
        reply: Reply<Vec<String>>,
    },
    /// Open a change feed of every later change under `prefix`, holding up to `capacity` unread
    /// changes; answer with its receiving end.
    Watch {
        prefix: String,
        capacity: usize,
        reply: Reply<broadcast::Receiver<Change>>,
    },
    /// Answer with the key's value now if it has one, else as soon as it gets one.
    WaitFor {
        key: String,
        reply: Reply<Arc<Value>>,
    },
}

impl Command {
    /// Logs the command at debug level: its operation and key, never its value.
    pub(crate) fn trace(&self) {
        match self {
            Command::Get { key, .. }
            | Command::Set { key, .. }
            | Command::Delete { key, .. }
            | Command::ListAppendUnique { key, .. }
            | Command::ListPopAll { key, .. }
            | Command::ListPush { key, .. }
            | Command::ListPopFront { key, .. }
            | Command::Expire { key, .. }
            | Command::Incr { key, .. }
            | Command::SetIfAbsent { key, .. }
            | Command::CompareAndSet { key, .. }
            | Command::Update { key, .. }
            | Command::GetDel { key, .. }
            | Command::Exists { key, .. }
            | Command::Ttl { key, .. }
            | Command::Persist { key, .. }
            | Command::WaitFor { key, .. } => tracing::debug!(op = self.name(), key = %key),
            Command::Transaction { prefix, .. }
            | Command::ScanPrefix { prefix, .. }
            | Command::Watch { prefix, .. } => {
                tracing::debug!(op = self.name(), prefix = %prefix)
            }
            Command::Mset { entries, .. } => {
                tracing::debug!(op = self.name(), keys = entries.len())
            }
            Command::Mget { keys, .. } => tracing::debug!(op = self.name(), keys = keys.len()),
            Command::PurgeExpired { limit, .. } => tracing::debug!(op = self.name(), limit),
            Command::Stats { .. } | Command::Shutdown { .. } => tracing::debug!(op = self.name()),
        }
    }

    /// The operation's name, as the reference API (or, for the coordination commands, the
    /// [`KvHandle`](crate::KvHandle) method) spells it.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Command::Get { .. } => "get",
            Command::Set { .. } => "set",
            Command::Delete { .. } => "delete",
            Command::ListAppendUnique { .. } => "list_append_unique",
            Command::ListPopAll { .. } => "list_pop_all",
            Command::ListPush { .. } => "list_push",
            Command::ListPopFront { .. } => "list_pop_front",
            Command::Mset { .. } => "mset",
            Command::Mget { .. } => "mget",
            Command::Expire { .. } => "expire",
            Command::PurgeExpired { .. } => "purge_expired",
            Command::Stats { .. } => "stats",
            Command::Shutdown { .. } => "shutdown",
            Command::Incr { .. } => "incr",
            Command::SetIfAbsent { .. } => "set_if_absent",
            Command::CompareAndSet { .. } => "compare_and_set",
            Command::Update { .. } => "update",
            Command::Transaction { .. } => "transaction",
            Command::GetDel { .. } => "get_del",
            Command::Exists { .. } => "exists",
            Command::Ttl { .. } => "ttl",
            Command::Persist { .. } => "persist",
            Command::ScanPrefix { .. } => "scan_prefix",
            Command::Watch { .. } => "watch",
            Command::WaitFor { .. } => "wait_for",
        }
    }
}
