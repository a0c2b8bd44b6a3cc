//! The command enum: the single list of what the store can do.
//!
//! A [`KvHandle`](crate::KvHandle) call builds one [`Command`], sends it to the owner task, and
//! awaits the answer on the command's `reply` channel. [`Command::apply`] is where each command
//! meets the [`Store`]: one match, one arm per command, each arm one store call.
//!
//! Commands arrive here already checked: keys carry their prefix, values are serialized, TTLs are
//! non-zero and list items are objects holding their id field. What is left to fail is what only
//! the store can see (an existing value of the wrong type).

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{broadcast, oneshot};
use tokio::time::Instant;

use crate::error::KvError;
use crate::stats::Stats;
use crate::store::{Store, TxnFn, UpdateFn};
use crate::ttl::Ttl;
use crate::watchers::Delivery;

/// Where the owner task sends a command's answer. A caller that stopped waiting has dropped the
/// receiving end; the answer is then discarded, which is normal and not an error.
///
/// Every answer is a `Result`, even for commands the in-process store cannot fail, so that any
/// executor behind this enum (the Redis one can lose its server) can fail any call with a clear
/// [`KvError`] instead of dropping it.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, KvError>>;

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
    /// Answer everything queued before this, then stop. Handled by the owner task, not the store.
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
    /// Send every later change under `prefix` to `sender`. Handled by the owner task's
    /// [`Watchers`](crate::watchers::Watchers), not the store.
    Watch {
        prefix: String,
        sender: broadcast::Sender<Delivery>,
        reply: Reply<()>,
    },
    /// Answer with the key's value now if it has one, else as soon as it gets one. Handled by the
    /// owner task's [`Watchers`](crate::watchers::Watchers) with the store's help.
    WaitFor {
        key: String,
        reply: Reply<Arc<Value>>,
    },
}

impl Command {
    /// Applies the command to the store at instant `now` and sends the answer.
    ///
    /// [`Command::Shutdown`] is the owner task's business; here it only acknowledges.
    pub(crate) fn apply(self, store: &mut Store, now: Instant) {
        store.note_command();
        // `let _ =`: the caller may have dropped its future; the command is applied regardless.
        match self {
            Command::Get { key, reply } => {
                let _ = reply.send(Ok(store.get(&key, now)));
            }
            Command::Set {
                key,
                value,
                ttl,
                reply,
            } => {
                store.set(key, value, ttl, now);
                let _ = reply.send(Ok(()));
            }
            Command::Delete { key, reply } => {
                store.delete(&key);
                let _ = reply.send(Ok(()));
            }
            Command::ListAppendUnique {
                key,
                items,
                id_key,
                ttl,
                reply,
            } => {
                let _ = reply.send(store.list_append_unique(key, items, &id_key, ttl, now));
            }
            Command::ListPopAll { key, reply } => {
                let _ = reply.send(Ok(store.list_pop_all(&key, now)));
            }
            Command::ListPush {
                key,
                items,
                max_len,
                ttl,
                reply,
            } => {
                let _ = reply.send(store.list_push(key, items, max_len, ttl, now));
            }
            Command::ListPopFront { key, count, reply } => {
                let _ = reply.send(store.list_pop_front(&key, count, now));
            }
            Command::Mset {
                entries,
                ttl,
                reply,
            } => {
                store.mset(entries, ttl, now);
                let _ = reply.send(Ok(()));
            }
            Command::Mget { keys, reply } => {
                let _ = reply.send(Ok(store.mget(&keys, now)));
            }
            Command::Expire { key, ttl, reply } => {
                let _ = reply.send(Ok(store.expire(&key, ttl, now)));
            }
            Command::PurgeExpired { limit, reply } => {
                let _ = reply.send(Ok(store.purge_expired(limit, now)));
            }
            Command::Stats { reply } => {
                let _ = reply.send(Ok(store.stats()));
            }
            Command::Shutdown { reply } => {
                let _ = reply.send(Ok(()));
            }
            Command::Incr {
                key,
                by,
                ttl,
                reply,
            } => {
                let _ = reply.send(store.incr(key, by, ttl, now));
            }
            Command::SetIfAbsent {
                key,
                value,
                ttl,
                reply,
            } => {
                let _ = reply.send(Ok(store.set_if_absent(key, value, ttl, now)));
            }
            Command::CompareAndSet {
                key,
                expected,
                new,
                ttl,
                reply,
            } => {
                let _ = reply.send(Ok(store.compare_and_set(key, expected, new, ttl, now)));
            }
            Command::Update { key, f, reply } => {
                let _ = reply.send(store.update(key, f, now));
            }
            Command::Transaction { prefix, f, reply } => {
                let _ = reply.send(store.transaction(&prefix, f, now));
            }
            Command::GetDel { key, reply } => {
                let _ = reply.send(Ok(store.get_del(&key, now)));
            }
            Command::Exists { key, reply } => {
                let _ = reply.send(Ok(store.exists(&key, now)));
            }
            Command::Ttl { key, reply } => {
                let _ = reply.send(Ok(store.ttl(&key, now)));
            }
            Command::Persist { key, reply } => {
                let _ = reply.send(Ok(store.persist(&key, now)));
            }
            Command::ScanPrefix {
                prefix,
                limit,
                reply,
            } => {
                let _ = reply.send(Ok(store.scan_prefix(&prefix, limit, now)));
            }
            // The owner task's `Watchers` take these two before they get here (they need channels,
            // which the store has none of). Applied without watchers, there is no one to deliver
            // to: dropping the reply ends the caller's stream or wait with `KvError::Closed`.
            Command::Watch { .. } | Command::WaitFor { .. } => {}
        }
    }

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
