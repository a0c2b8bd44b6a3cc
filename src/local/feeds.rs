//! The owner task's change feeds and waiters: the open `watch` streams and the pending `wait_for`
//! calls, and the fan-out of the store's changes to them.
//!
//! The store records every change it makes into its [`ChangeLog`](super::changes::ChangeLog)
//! while anyone listens; after each command the actor calls [`Feeds::publish`], which drains that
//! log in the order the changes were made and hands each change to the feeds whose prefix it falls
//! under and to the `wait_for` calls waiting on its key.
//!
//! A slow watcher never slows the store: each feed is its own bounded
//! [`feed_queue`](crate::command::feed_queue), and sending into it never waits. When the queue is full the
//! oldest change goes, and the stream is told how many it lost before the changes it still has. A
//! list changed in place goes to a feed as a delta once the feed holds an event of the key, so an
//! unread feed holds the items each change added, not a copy of the list per change. A dropped
//! stream or a `wait_for` that gave up (say, by a timeout) is noticed and forgotten.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use serde_json::Value;
use tokio::time::Instant;

use super::changes::Taken;
use super::store::Store;
use crate::command::feed_queue::{self, FeedReceiver, FeedSender};
use crate::command::{self, ChangeKind, Reply};

/// One open change feed.
struct Feed {
    /// The full prefix watched.
    prefix: String,
    sender: FeedSender,
}

/// A `list_pop_front(..).wait(..)` parked on an empty list.
struct PopWaiter {
    count: usize,
    /// When to give up and answer with no items; `None`: a timeout too large to represent.
    deadline: Option<Instant>,
    reply: Reply<Vec<Value>>,
}

/// The change feeds, `wait_for` calls and waiting pops of one store.
#[derive(Default)]
pub(crate) struct Feeds {
    feeds: Vec<Feed>,
    /// Waiting pops by full key, oldest first: each push serves them in that order, so that one
    /// pushed item goes to one waiter and none starves.
    pops: HashMap<String, VecDeque<PopWaiter>>,
    /// How many waiting pops are held, dead or alive.
    popping: usize,
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
    pub(crate) fn subscribe(&mut self, prefix: String, capacity: usize) -> FeedReceiver {
        // Streams dropped since the last change are forgotten here too, so that a store nobody
        // writes to does not hold the queues of streams opened and dropped against it.
        self.drop_dead_feeds();
        let (sender, receiver) = feed_queue::channel(capacity);
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

    /// Parks a `list_pop_front(..).wait(..)` on an empty list until items arrive or `deadline`.
    pub(crate) fn wait_to_pop(
        &mut self,
        key: String,
        count: usize,
        deadline: Option<Instant>,
        reply: Reply<Vec<Value>>,
    ) {
        let waiter = PopWaiter {
            count,
            deadline,
            reply,
        };
        self.pops.entry(key).or_default().push_back(waiter);
        self.popping += 1;
    }

    /// The earliest instant a waiting pop gives up at.
    pub(crate) fn next_pop_deadline(&self) -> Option<Instant> {
        if self.popping == 0 {
            return None;
        }
        self.pops
            .values()
            .flatten()
            .filter_map(|waiter| waiter.deadline)
            .min()
    }

    /// Answers the waiting pops whose time is up with no items, and forgets those whose caller
    /// stopped waiting.
    pub(crate) fn time_out_pops(&mut self, now: Instant) {
        if self.popping == 0 {
            return;
        }
        for waiters in self.pops.values_mut() {
            waiters.retain(|waiter| !waiter.reply.is_closed());
            let (due, waiting): (VecDeque<_>, VecDeque<_>) = waiters
                .drain(..)
                .partition(|waiter| waiter.deadline.is_some_and(|deadline| deadline <= now));
            *waiters = waiting;
            for waiter in due {
                let _ = waiter.reply.send(Ok(Vec::new()));
            }
        }
        self.pops.retain(|_, waiters| !waiters.is_empty());
        self.popping = self.pops.values().map(VecDeque::len).sum();
    }

    /// Serves the pops waiting on `key`, oldest first, while the list has items.
    fn serve_pops(&mut self, store: &mut Store, key: &str, now: Instant) {
        let Some(waiters) = self.pops.get_mut(key) else {
            return;
        };
        while let Some(waiter) = waiters.pop_front() {
            self.popping -= 1;
            if waiter.reply.is_closed() {
                continue;
            }
            let count = waiter.count;
            let mut slot = Some(waiter);
            let popped = store.list_pop_front_to(key, count, now, |items| match slot.take() {
                // A caller that stopped waiting just now gives the items back: it takes nothing.
                Some(waiter) => waiter
                    .reply
                    .send(Ok(items))
                    .map_err(|unsent| unsent.unwrap_or_default()),
                None => Err(items),
            });
            match (popped, slot) {
                // Delivered, or given back by a caller that left: on to the next waiter.
                (Ok(_), None) => {}
                // The list is empty again: this waiter keeps its place at the front.
                (Ok(_), Some(waiter)) => {
                    waiters.push_front(waiter);
                    self.popping += 1;
                    break;
                }
                // The key now holds something else than a list: as for any pop.
                (Err(error), Some(waiter)) => {
                    let _ = waiter.reply.send(Err(error));
                }
                (Err(_), None) => {}
            }
        }
        if waiters.is_empty() {
            self.pops.remove(key);
        }
    }

    /// Hands every change the store recorded to the feeds and waiters it concerns, in order, and
    /// tells the store whether to keep recording. A list that got items serves the pops waiting
    /// on it, whose own changes are handed on in turn.
    pub(crate) fn publish(&mut self, store: &mut Store, now: Instant) {
        let mut delivered = false;
        loop {
            let changes = store.changes.take();
            if changes.is_empty() {
                break;
            }
            let mut pushed = Vec::new();
            for taken in changes {
                let key = &taken.change.key;
                if matches!(taken.change.kind, ChangeKind::Set(_)) && self.pops.contains_key(key) {
                    pushed.push(key.clone());
                }
                self.deliver(taken);
            }
            delivered = true;
            for key in pushed {
                self.serve_pops(store, &key, now);
            }
        }
        if delivered {
            self.drop_dead_feeds();
        }
        if store.changes.listeners() != self.listeners() {
            store.changes.set_listeners(self.listeners());
        }
    }

    /// Hands one change to the `wait_for` calls on its key and the feeds whose prefix it is under.
    fn deliver(&mut self, Taken { change, delta }: Taken) {
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
                // Never waits: a full queue drops its oldest change. A stream that is gone is
                // forgotten by `drop_dead_feeds`.
                feed.sender.send_list(change.clone(), delta.as_ref());
            }
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
        self.feeds.retain(|feed| !feed.sender.is_closed());
    }

    /// Forgets dropped streams and `wait_for` calls whose caller stopped waiting.
    fn prune(&mut self) {
        self.drop_dead_feeds();
        command::drop_abandoned(&mut self.waiters);
        self.waiting = self.waiters.values().map(Vec::len).sum();
        for waiters in self.pops.values_mut() {
            waiters.retain(|waiter| !waiter.reply.is_closed());
        }
        self.pops.retain(|_, waiters| !waiters.is_empty());
        self.popping = self.pops.values().map(VecDeque::len).sum();
        // Give back the room of waits that were abandoned en masse.
        if self.waiters.capacity() > 4 * self.waiters.len().max(FIRST_SWEEP) {
            self.waiters.shrink_to_fit();
        }
    }

    /// How many change feeds, `wait_for` calls and waiting pops are held.
    fn listeners(&self) -> usize {
        self.feeds.len() + self.waiting + self.popping
    }
}
