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

use crate::closure;
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
///
/// Dropping it catches a panic from what the closure captured ([`closure::drop_quietly`]),
/// wherever the command is dropped: after it ran, or unanswered in a mailbox that is closing.
pub(crate) struct UpdateFn(Box<UpdateClosure>);

/// What an [`UpdateFn`] boxes.
type UpdateClosure = dyn FnMut(Option<&Value>) -> Option<Value> + Send;

impl UpdateFn {
    pub(crate) fn new(f: impl FnMut(Option<&Value>) -> Option<Value> + Send + 'static) -> Self {
        UpdateFn(Box::new(f))
    }

    /// Runs the closure on the key's current value.
    pub(crate) fn call(&mut self, current: Option<&Value>) -> Option<Value> {
        (self.0)(current)
    }
}

impl Drop for UpdateFn {
    fn drop(&mut self) {
        closure::drop_quietly(std::mem::replace(&mut self.0, Box::new(|_| None)));
    }
}

/// A `transaction` closure, reading and staging writes through a [`Txn`]. `FnMut`, and dropped
/// quietly, for the same reasons as [`UpdateFn`].
pub(crate) struct TxnFn(Box<dyn FnMut(&mut Txn<'_>) + Send>);

impl TxnFn {
    pub(crate) fn new(f: impl FnMut(&mut Txn<'_>) + Send + 'static) -> Self {
        TxnFn(Box::new(f))
    }

    /// Runs the closure on a transaction.
    pub(crate) fn call(&mut self, txn: &mut Txn<'_>) {
        (self.0)(txn)
    }
}

impl Drop for TxnFn {
    fn drop(&mut self) {
        closure::drop_quietly(std::mem::replace(&mut self.0, Box::new(|_| {})));
    }
}

/// What happened to a key, as an executor publishes it to change feeds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ChangeKind {
    /// The key now holds this value.
    Set(Arc<Value>),
    /// The key was removed by a command.
    Deleted,
    /// The key's TTL ran out and the store removed it (lazily, by a purge, or by active expiry).
    Expired,
    /// The store removed the key, still live, to make room for a new one (a store bounded by
    /// `max_entries` with `Eviction::VolatileTtl`).
    Evicted,
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
    /// What the debug line about this command names: the operation and its key (or prefix, or
    /// number of keys), never a value. Taken before the command is handled, and only while debug
    /// logging is on: it copies the key.
    pub(crate) fn described(&self) -> Described {
        let subject = match self {
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
            | Command::WaitFor { key, .. } => Subject::Key(key.clone()),
            Command::Transaction { prefix, .. }
            | Command::ScanPrefix { prefix, .. }
            | Command::Watch { prefix, .. } => Subject::Prefix(prefix.clone()),
            Command::Mset { entries, .. } => Subject::Keys(entries.len()),
            Command::Mget { keys, .. } => Subject::Keys(keys.len()),
            Command::PurgeExpired { limit, .. } => Subject::Limit(*limit),
            Command::Stats { .. } | Command::Shutdown { .. } => Subject::Store,
        };
        Described {
            op: self.name(),
            subject,
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

impl std::fmt::Debug for Command {
    // Not derived: closures have no `Debug`, and values are not for logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Command")
            .field("op", &self.name())
            .finish_non_exhaustive()
    }
}

/// A command as its debug line names it: see [`Command::described`].
#[derive(Debug)]
pub(crate) struct Described {
    op: &'static str,
    subject: Subject,
}

/// What a command is about, for its debug line.
#[derive(Debug)]
enum Subject {
    Key(String),
    Prefix(String),
    Keys(usize),
    Limit(usize),
    Store,
}

impl Described {
    /// Logs the command at debug level with what came of it (`hit`, `miss`, `applied`,
    /// `refused`, `ok`, or the error's kind) and how long the executor took, in microseconds.
    pub(crate) fn log(&self, outcome: &str, took: std::time::Duration) {
        let op = self.op;
        let took_us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        match &self.subject {
            Subject::Key(key) => tracing::debug!(op, key = %key, outcome, took_us),
            Subject::Prefix(prefix) => tracing::debug!(op, prefix = %prefix, outcome, took_us),
            Subject::Keys(keys) => tracing::debug!(op, keys, outcome, took_us),
            Subject::Limit(limit) => tracing::debug!(op, limit, outcome, took_us),
            Subject::Store => tracing::debug!(op, outcome, took_us),
        }
    }
}

/// A command as it travels the mailbox: with the caller's span, so that the executor's log lines
/// about it appear inside the span the call was made in (a request's span, say).
#[derive(Debug)]
pub(crate) struct Message {
    pub(crate) command: Command,
    pub(crate) span: tracing::Span,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_names_the_operation_and_leaves_out_keys_and_values() {
        let (reply, _answer) = oneshot::channel();
        let command = Command::Set {
            key: "secret-key".into(),
            value: Value::from("secret-value"),
            ttl: None,
            reply,
        };
        assert_eq!(format!("{command:?}"), r#"Command { op: "set", .. }"#);
    }
}
