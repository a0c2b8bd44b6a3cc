//! The owner task's change feeds and waiters: the open `watch` streams and the pending `wait_for`
//! calls, and the fan-out of the store's changes to them.
//!
//! The store records every change it makes into its [`ChangeLog`](super::changes::ChangeLog)
//! while anyone listens; after each command the actor calls [`Feeds::publish`], which drains that
//! log in the order the changes were made and hands each change to the feeds whose prefix it falls
//! under and to the `wait_for` calls waiting on its key.
//!
//! A slow watcher never slows the store: each feed is its own bounded
//! [`tokio::sync::broadcast`] ring, and sending into it never waits. When the ring is full the
//! oldest change is overwritten, and the stream is told how many it lost before the changes it
//! still has. A dropped stream or a `wait_for` that gave up (say, by a timeout) is noticed and
//! forgotten.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::broadcast;

use super::store::Store;
use crate::command::{self, Change, ChangeKind, Reply};

/// One open change feed.
struct Feed {
    /// The full prefix watched.
    prefix: String,
    sender: broadcast::Sender<Change>,
}

/// The change feeds and `wait_for` calls of one store.
#[derive(Default)]
pub(crate) struct Feeds {
    feeds: Vec<Feed>,
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

impl Feeds {
    /// Opens a feed of every later change under the full `prefix`, holding up to `capacity`
    /// unread changes.
    pub(crate) fn subscribe(
        &mut self,
        prefix: String,
        capacity: usize,
    ) -> broadcast::Receiver<Change> {
        // Streams dropped since the last change are forgotten here too, so that a store nobody
        // writes to does not hold the rings of streams opened and dropped against it.
        self.drop_dead_feeds();
        let (sender, receiver) = broadcast::channel(capacity);
        self.feeds.push(Feed { prefix, sender });
        receiver
    }

    /// Parks a `wait_for` until its key gets a value.
    pub(crate) fn wait(&mut self, key: String, reply: Reply<Arc<Value>>) {
        self.waiters.entry(key).or_default().push(reply);
        self.waiting += 1;
        if self.waiting >= self.sweep_at.max(FIRST_SWEEP) {
            self.prune();
            self.sweep_at = self.waiting * 2;
        }
    }

    /// Hands every change the store recorded to the feeds and waiters it concerns, in order, and
    /// tells the store whether to keep recording.
    pub(crate) fn publish(&mut self, store: &mut Store) {
        let mut delivered = false;
        for change in store.changes.take() {
            delivered = true;
            // Only a value answers a waiter: a removal (deleted, expired or evicted) does not.
            if let ChangeKind::Set(value) = &change.kind {
                if let Some(waiters) = self.waiters.remove(&change.key) {
                    self.waiting -= waiters.len();
                    for waiter in waiters {
                        let _ = waiter.send(Ok(Arc::clone(value)));
                    }
                }
            }
            for feed in &self.feeds {
                if change.key.starts_with(&feed.prefix) {
                    // Never waits: a full ring drops its oldest change. An error only means the
                    // stream is gone, which `drop_dead_feeds` below handles.
                    let _ = feed.sender.send(change.clone());
                }
            }
        }
        if delivered {
            self.drop_dead_feeds();
        }
        if store.changes.listeners() != self.listeners() {
            store.changes.set_listeners(self.listeners());
        }
    }

    /// Forgets what no one listens to any more and tells the store how many listeners are left,
    /// so that a count of them ([`Stats::watchers`](crate::Stats::watchers)) is exact.
    pub(crate) fn recount(&mut self, store: &mut Store) {
        self.prune();
        store.changes.set_listeners(self.listeners());
    }

    /// Forgets the feeds whose streams have all been dropped.
    fn drop_dead_feeds(&mut self) {
        self.feeds.retain(|feed| feed.sender.receiver_count() > 0);
    }

    /// Forgets dropped streams and `wait_for` calls whose caller stopped waiting.
    fn prune(&mut self) {
        self.drop_dead_feeds();
        command::drop_abandoned(&mut self.waiters);
        self.waiting = self.waiters.values().map(Vec::len).sum();
        // Give back the room of waits that were abandoned en masse.
        if self.waiters.capacity() > 4 * self.waiters.len().max(FIRST_SWEEP) {
            self.waiters.shrink_to_fit();
        }
    }

    /// How many change feeds and `wait_for` calls are held.
    fn listeners(&self) -> usize {
        self.feeds.len() + self.waiting
    }
}
