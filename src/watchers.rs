//! The owner task's watchers: the open watch streams and the pending `wait_for` calls, and the
//! fan-out of the store's changes to them.
//!
//! The store records every change it makes into its [`ChangeLog`](crate::changes::ChangeLog)
//! while anyone listens; after each command, [`Watchers::apply`] drains that log here, in the order
//! the changes were made, and hands each change to the watchers whose prefix it falls under and to
//! the `wait_for` calls waiting on its key.
//!
//! A slow watcher never slows the store: each stream has its own bounded
//! [`tokio::sync::broadcast`] ring, and sending into it never waits. When the ring is full the
//! oldest event is overwritten, and the stream is told how many it lost (`RecvError::Lagged`) before
//! the events it still has. A dropped stream or a `wait_for` that gave up (say, by a timeout) is
//! noticed and forgotten.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::changes::{Change, ChangeKind};
use crate::command::{Command, Reply};
use crate::store::Store;

/// What the owner task sends a watch stream: one change, with the full key.
pub(crate) type Delivery = Change;

/// One open watch stream.
struct Subscriber {
    /// The full prefix watched.
    prefix: String,
    sender: broadcast::Sender<Delivery>,
}

/// The watch streams and `wait_for` calls of one store.
#[derive(Default)]
pub(crate) struct Watchers {
    subscribers: Vec<Subscriber>,
    /// Pending `wait_for` calls by full key.
    waiters: HashMap<String, Vec<Reply<Arc<Value>>>>,
    /// How many waiters are held, dead or alive.
    waiting: usize,
    /// Sweep dead waiters when `waiting` reaches this, so that calls that gave up on keys never
    /// written cannot pile up (amortized: the mark doubles with what survives the sweep).
    sweep_at: usize,
}

/// The first number of held waiters at which dead ones are swept.
const FIRST_SWEEP: usize = 64;

impl Watchers {
    /// Applies `command`: watch and `wait_for` registrations here, everything else on the store.
    /// Then hands the changes the command made to the watchers.
    pub(crate) fn apply(&mut self, command: Command, store: &mut Store, now: Instant) {
        match command {
            Command::Watch {
                prefix,
                sender,
                reply,
            } => {
                store.note_command();
                self.subscribers.push(Subscriber { prefix, sender });
                let _ = reply.send(Ok(()));
            }
            Command::WaitFor { key, reply } => {
                store.note_command();
                match store.get(&key, now) {
                    Some(value) => {
                        let _ = reply.send(Ok(value));
                    }
                    None => self.wait(key, reply),
                }
            }
            Command::Stats { .. } => {
                // So that the count of watchers in the answer is exact.
                self.prune();
                store.changes.set_listeners(self.listeners());
                command.apply(store, now);
            }
            Command::Delete { ref key, .. } if store.changes.listeners() > 0 => {
                // `Store::delete` takes no `now`; settle an expired key first, so that watchers
                // see it expire rather than see a deletion of a value no call could read.
                // The guard only saves that lookup when nobody listens: settling an expired key
                // before deleting it ends in the same store either way (cargo-mutants' `true` for
                // the guard survives for that reason).
                store.expire_if_due(key, now);
                command.apply(store, now);
            }
            command => command.apply(store, now),
        }
        self.publish(store);
    }

    /// Hands every change the store recorded to the watchers it concerns, in order, and tells the
    /// store whether to keep recording.
    pub(crate) fn publish(&mut self, store: &mut Store) {
        let mut delivered = false;
        for change in store.changes.drain() {
            delivered = true;
            if let ChangeKind::Set(value) = &change.kind {
                if let Some(waiters) = self.waiters.remove(&change.key) {
                    self.waiting -= waiters.len();
                    for waiter in waiters {
                        let _ = waiter.send(Ok(Arc::clone(value)));
                    }
                }
            }
            for subscriber in &self.subscribers {
                if change.key.starts_with(&subscriber.prefix) {
                    // Never waits: a full ring drops its oldest event. An error only means the
                    // stream is gone, which `prune` handles below.
                    let _ = subscriber.sender.send(change.clone());
                }
            }
        }
        if delivered {
            self.subscribers
                .retain(|subscriber| subscriber.sender.receiver_count() > 0);
        }
        if store.changes.listeners() != self.listeners() {
            store.changes.set_listeners(self.listeners());
        }
    }

    /// Parks a `wait_for` until its key gets a value.
    fn wait(&mut self, key: String, reply: Reply<Arc<Value>>) {
        self.waiters.entry(key).or_default().push(reply);
        self.waiting += 1;
        if self.waiting >= self.sweep_at.max(FIRST_SWEEP) {
            self.prune();
            self.sweep_at = self.waiting * 2;
        }
    }

    /// Forgets dropped streams and `wait_for` calls whose caller stopped waiting.
    fn prune(&mut self) {
        self.subscribers
            .retain(|subscriber| subscriber.sender.receiver_count() > 0);
        self.waiters.retain(|_, waiters| {
            waiters.retain(|waiter| !waiter.is_closed());
            !waiters.is_empty()
        });
        self.waiting = self.waiters.values().map(Vec::len).sum();
    }

    /// How many watch streams and `wait_for` calls are held.
    fn listeners(&self) -> usize {
        self.subscribers.len() + self.waiting
    }
}
