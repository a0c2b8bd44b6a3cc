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
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::error::KvError;
use crate::stats::Stats;
use crate::store::Store;

/// Where the owner task sends a command's answer. A caller that stopped waiting has dropped the
/// receiving end; the answer is then discarded, which is normal and not an error.
pub(crate) type Reply<T> = oneshot::Sender<T>;

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
        reply: Reply<Result<Arc<Value>, KvError>>,
    },
    /// Remove a list and answer with it.
    ListPopAll {
        key: String,
        reply: Reply<Option<Arc<Value>>>,
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
}

impl Command {
    /// Applies the command to the store at instant `now` and sends the answer.
    ///
    /// [`Command::Shutdown`] is the owner task's business; here it only acknowledges.
    pub(crate) fn apply(self, store: &mut Store, now: Instant) {
        // `let _ =`: the caller may have dropped its future; the command is applied regardless.
        match self {
            Command::Get { key, reply } => {
                let _ = reply.send(store.get(&key, now));
            }
            Command::Set {
                key,
                value,
                ttl,
                reply,
            } => {
                store.set(key, value, ttl, now);
                let _ = reply.send(());
            }
            Command::Delete { key, reply } => {
                store.delete(&key);
                let _ = reply.send(());
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
                let _ = reply.send(store.list_pop_all(&key, now));
            }
            Command::Mset {
                entries,
                ttl,
                reply,
            } => {
                store.mset(entries, ttl, now);
                let _ = reply.send(());
            }
            Command::Mget { keys, reply } => {
                let _ = reply.send(store.mget(&keys, now));
            }
            Command::Expire { key, ttl, reply } => {
                let _ = reply.send(store.expire(&key, ttl, now));
            }
            Command::PurgeExpired { limit, reply } => {
                let _ = reply.send(store.purge_expired(limit, now));
            }
            Command::Stats { reply } => {
                let _ = reply.send(store.stats());
            }
            Command::Shutdown { reply } => {
                let _ = reply.send(());
            }
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
            | Command::Expire { key, .. } => tracing::debug!(op = self.name(), key = %key),
            Command::Mset { entries, .. } => {
                tracing::debug!(op = self.name(), keys = entries.len())
            }
            Command::Mget { keys, .. } => tracing::debug!(op = self.name(), keys = keys.len()),
            Command::PurgeExpired { limit, .. } => tracing::debug!(op = self.name(), limit),
            Command::Stats { .. } | Command::Shutdown { .. } => tracing::debug!(op = self.name()),
        }
    }

    /// The operation's name, as the reference API spells it.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Command::Get { .. } => "get",
            Command::Set { .. } => "set",
            Command::Delete { .. } => "delete",
            Command::ListAppendUnique { .. } => "list_append_unique",
            Command::ListPopAll { .. } => "list_pop_all",
            Command::Mset { .. } => "mset",
            Command::Mget { .. } => "mget",
            Command::Expire { .. } => "expire",
            Command::PurgeExpired { .. } => "purge_expired",
            Command::Stats { .. } => "stats",
            Command::Shutdown { .. } => "shutdown",
        }
    }
}
