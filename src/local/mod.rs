//! The in-process executor: one owner task that holds the map and applies every [`Command`](crate::command::Command).
//!
//! - [`actor`]: the owner task, an actor that takes commands from its mailbox in batches and
//!   handles each in one `match` over every command; between batches it runs active expiry.
//! - [`store`]: the map and its rules, plain synchronous code that takes `now`, so that tests drive
//!   it directly and the actor stays short.
//! - [`expiry`]: the index of deadlines that makes purging cost what it removes.
//! - [`changes`] and [`feeds`]: what the store changed during a command, and the change feeds
//!   (`watch`) and waiters (`wait_for`) it is handed to.
//!
//! Nothing here knows the caller side: a handle reaches this executor only through the
//! [`Message`]s it sends to the mailbox that [`spawn`] returns.

mod actor;
mod changes;
mod expiry;
mod feeds;
#[cfg(feature = "durable")]
pub(crate) mod journal;
mod store;

use tokio::sync::mpsc;

use crate::closure::StoreId;
use crate::command::Message;
use crate::eviction::Eviction;

/// Settings of the owner task, from [`KvBuilder`](crate::KvBuilder).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Config {
    /// Remove expired entries soon after their deadline, not only when touched or purged.
    pub(crate) active_expiry: bool,
    /// How many commands may wait in the mailbox before senders wait (at least 1).
    pub(crate) mailbox_capacity: usize,
    /// The store's id, which its closures run under.
    pub(crate) store: StoreId,
    /// How many entries the store's table is sized for from the start, and never shrunk below.
    pub(crate) capacity: usize,
    /// The most entries the map may hold, and what to do when a new key finds it full; `None`:
    /// unbounded.
    pub(crate) bound: Option<Bound>,
}

/// A bound on the number of entries, from [`KvBuilder::max_entries`](crate::KvBuilder::max_entries)
/// and [`KvBuilder::eviction`](crate::KvBuilder::eviction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bound {
    /// The most entries held at the end of any command, expired-but-not-yet-removed ones
    /// included (they hold memory too).
    pub(crate) max_entries: usize,
    /// What a new key that finds the store full of live entries does.
    pub(crate) eviction: Eviction,
}

/// Starts an owner task on the current tokio runtime; returns the sender of its mailbox.
///
/// # Panics
/// Outside a tokio runtime, as [`tokio::spawn`] does.
#[track_caller]
pub(crate) fn spawn(config: Config) -> mpsc::Sender<Message> {
    let (sender, mailbox) = mpsc::channel(config.mailbox_capacity);
    tokio::spawn(actor::Owner::new(config).run(mailbox));
    sender
}

/// Starts a durable store's owner task: the store starts with `loaded` (TTLs as deadlines on
/// tokio's clock) and journals every change to `journal`.
#[cfg(feature = "durable")]
#[track_caller]
pub(crate) fn spawn_durable(
    config: Config,
    journal: journal::Journal,
    loaded: Vec<(String, serde_json::Value, Option<tokio::time::Instant>)>,
) -> mpsc::Sender<Message> {
    let (sender, mailbox) = mpsc::channel(config.mailbox_capacity);
    journal.watch_mailbox(sender.downgrade());
    tokio::spawn(actor::Owner::durable(config, journal, loaded).run(mailbox));
    sender
}
