//! The change log: what the store changed during one command, kept for change feeds and waiters.
//!
//! The store is synchronous and knows nothing of channels, so it cannot tell subscribers anything
//! itself. Instead it writes each change (a key set, deleted, expired or evicted) here, and the owner task's
//! [`Feeds`](super::feeds::Feeds) drains the log after every command and fans the changes
//! out. While nobody listens the log is off and recording costs one branch per change, so a store
//! without watchers pays nothing for this.
//!
//! With the `durable` feature the log also keeps, while the store is journaled, the set of keys
//! any command changed (value or TTL) since the owner last sent the journal a batch: every change
//! the store makes comes through here (or [`ChangeLog::retimed`] for a TTL), so this is the one
//! place that sees them all.

use std::sync::Arc;

use foldhash::HashMap;
use serde_json::Value;

use crate::command::feed_queue::ListDelta;
use crate::command::{Change, ChangeKind};

/// The changes not yet handed to watchers, recorded only while someone listens.
#[derive(Debug, Default)]
pub(crate) struct ChangeLog {
    /// How many watch streams and `wait_for` calls want changes; the log records while it is > 0.
    listeners: usize,
    pending: Vec<Recorded>,
    /// The keys changed since the last [`ChangeLog::take_dirty`], while the store is journaled.
    #[cfg(feature = "durable")]
    dirty: Option<Dirty>,
}

/// The keys a journaled store changed since its last batch, and how many changes it made in all
/// (so that the owner can tell whether one command changed anything).
#[cfg(feature = "durable")]
#[derive(Debug, Default)]
struct Dirty {
    keys: foldhash::HashSet<String>,
    marks: u64,
}

/// One recorded change, and whether it brought the key into being: a key a command creates and
/// then removes again was never visible, so it is not reported at all.
#[derive(Debug)]
struct Recorded {
    change: Change,
    created: bool,
    /// For a list changed in place: how, so that a feed can send that instead of the list.
    delta: Option<Arc<ListDelta>>,
}

/// One change as the log hands it on: the change, and for a list changed in place, how it changed
/// ([`FeedSender::send_list`](crate::command::feed_queue::FeedSender::send_list)).
#[derive(Debug)]
pub(crate) struct Taken {
    pub(crate) change: Change,
    pub(crate) delta: Option<Arc<ListDelta>>,
}

/// What a key was, to calls, before the command that changed it.
#[derive(Debug, Clone, Copy)]
enum Before {
    /// It held a live value.
    Held,
    /// There was no entry.
    Absent,
    /// Its entry had expired, unseen by calls, and the command removed it first.
    Expired,
}

impl ChangeLog {
    /// Tells the log how many listeners there are; with none it stops recording.
    pub(crate) fn set_listeners(&mut self, listeners: usize) {
        self.listeners = listeners;
        // Defensive: the owner task drains the log after every command, so it is already empty
        // here. It keeps a future caller from leaking changes into a later feed.
        if listeners == 0 {
            self.pending.clear();
        }
    }

    /// How many listeners the log records for.
    pub(crate) fn listeners(&self) -> usize {
        self.listeners
    }

    /// Records that `key`, which held a value, now holds `value`.
    pub(crate) fn set(&mut self, key: &str, value: &Arc<Value>) {
        self.record(key, false, || ChangeKind::Set(Arc::clone(value)), None);
    }

    /// Records that the list at `key` changed in place to `value`, as `delta` tells (called only
    /// while someone listens).
    pub(crate) fn list_changed(
        &mut self,
        key: &str,
        value: &Arc<Value>,
        delta: impl FnOnce() -> ListDelta,
    ) {
        let delta = (self.listeners > 0).then(|| Arc::new(delta()));
        self.record(key, false, || ChangeKind::Set(Arc::clone(value)), delta);
    }

    /// Records that `key`, which held nothing, now holds `value`.
    pub(crate) fn created(&mut self, key: &str, value: &Arc<Value>) {
        self.record(key, true, || ChangeKind::Set(Arc::clone(value)), None);
    }

    /// Records that a command removed `key`.
    pub(crate) fn deleted(&mut self, key: &str) {
        self.record(key, false, || ChangeKind::Deleted, None);
    }

    /// Records that `key` expired and was removed.
    pub(crate) fn expired(&mut self, key: &str) {
        self.record(key, false, || ChangeKind::Expired, None);
    }

    /// Records that `key` was evicted, live, to make room for a new key.
    pub(crate) fn evicted(&mut self, key: &str) {
        self.record(key, false, || ChangeKind::Evicted, None);
    }

    /// Takes the recorded changes: one per key, the key's state after the command, in the order
    /// the keys first changed. A command that sets a key twice (`mset` with a repeated key), or
    /// sets then deletes it (a transaction), shows only where it left the key, and a key the
    /// command created and then deleted again is not shown at all: no watcher or waiter sees a
    /// state no call could have read.
    ///
    /// A list's in-place change keeps its delta only when it is its key's one change in the
    /// command (two deltas are not folded into one here: the feed then sends the list whole).
    ///
    /// The log's buffer goes with the changes, so one large command does not leave a large buffer
    /// behind for the store's life.
    pub(crate) fn take(&mut self) -> Vec<Taken> {
        if self.pending.is_empty() {
            // The common case, checked after every batch: nothing recorded, nothing to build.
            return Vec::new();
        }
        let recorded = std::mem::take(&mut self.pending);
        if recorded.len() < 2 {
            // One change alone cannot both create and remove a key.
            return recorded
                .into_iter()
                .map(|r| Taken {
                    change: r.change,
                    delta: r.delta,
                })
                .collect();
        }
        let mut position: HashMap<String, usize> =
            HashMap::with_capacity_and_hasher(recorded.len(), Default::default());
        // Per key: its last change, what its first change says the key was before, and the delta
        // of its change while it is the key's only one.
        let mut last: Vec<(Change, Before, Option<Arc<ListDelta>>)> =
            Vec::with_capacity(recorded.len());
        for Recorded {
            change,
            created,
            delta,
        } in recorded
        {
            match position.get(&change.key) {
                Some(&at) => last[at] = (change, last[at].1, None),
                None => {
                    let before = match change.kind {
                        _ if created => Before::Absent,
                        ChangeKind::Expired => Before::Expired,
                        _ => Before::Held,
                    };
                    position.insert(change.key.clone(), last.len());
                    last.push((change, before, delta));
                }
            }
        }
        last.into_iter()
            .filter_map(|(mut change, before, delta)| {
                if matches!(change.kind, ChangeKind::Deleted) {
                    match before {
                        // Created and removed within the command: no call saw it.
                        Before::Absent => return None,
                        // Expired, then written and removed: what calls saw is an expiry.
                        Before::Expired => change.kind = ChangeKind::Expired,
                        Before::Held => {}
                    }
                }
                Some(Taken { change, delta })
            })
            .collect()
    }

    /// Starts keeping the set of changed keys, for the journal.
    #[cfg(feature = "durable")]
    pub(crate) fn journal(&mut self) {
        self.dirty = Some(Dirty::default());
    }

    /// Records that `key`'s deadline changed (its value may not have).
    #[cfg(feature = "durable")]
    pub(crate) fn retimed(&mut self, key: &str) {
        if let Some(dirty) = &mut self.dirty {
            dirty.marks += 1;
            if !dirty.keys.contains(key) {
                dirty.keys.insert(key.to_owned());
            }
        }
    }

    /// How many changes the store has made since it began journaling: equal before and after a
    /// command that changed nothing.
    #[cfg(feature = "durable")]
    pub(crate) fn marks(&self) -> u64 {
        self.dirty.as_ref().map_or(0, |dirty| dirty.marks)
    }

    /// Takes the keys changed since the last call.
    #[cfg(feature = "durable")]
    pub(crate) fn take_dirty(&mut self) -> foldhash::HashSet<String> {
        self.dirty
            .as_mut()
            .map(|dirty| std::mem::take(&mut dirty.keys))
            .unwrap_or_default()
    }

    fn record(
        &mut self,
        key: &str,
        created: bool,
        kind: impl FnOnce() -> ChangeKind,
        delta: Option<Arc<ListDelta>>,
    ) {
        #[cfg(feature = "durable")]
        self.retimed(key);
        if self.listeners > 0 {
            self.pending.push(Recorded {
                change: Change {
                    key: key.to_owned(),
                    kind: kind(),
                },
                created,
                delta,
            });
        }
    }
}
