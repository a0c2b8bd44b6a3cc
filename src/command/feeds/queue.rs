//! The queue a change feed's events travel on, from the executor that makes them to one
//! [`WatchStream`](crate::calls::WatchStream), and how the versions of a list share their items on
//! it.
//!
//! A `watch` event carries the key's whole value as the change left it. For most changes that is
//! the store's own `Arc<Value>`, shared, not copied. A list changed in place (`list_push`,
//! `list_append_unique`, `list_pop_front`) is different: the store can change it in place only
//! while no one else holds its current version, and an event that carried that version would make
//! the next change copy the whole list, once per unread event. So once the queue holds an event
//! for a key (the key's value, whole), each later in-place change of that list travels as a
//! [`ListDelta`] (how many items left the front, which came at the end), and the stream rebuilds
//! each version from the one before when it reads it. An unread stream then holds one version of
//! the list and the items each change added, instead of a copy of the list per event.
//!
//! The queue is bounded: when it is full the oldest event goes, the stream is told how many it
//! lost before the events it still has, and a dropped delta is folded into the next one of its key
//! so that the versions after it are still exact. Sending never waits, and the sender never
//! rebuilds a version: that work, and any copy it needs, is the reader's, outside the lock.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use serde_json::Value;

use super::{Change, ChangeKind};

/// How a list changed in place: `skip` items left its front, then `appended` came at its end, so
/// that the new version is `old[skip..]` followed by `appended`, where `old` held `old_len` items.
/// (A push that trims the list to a length drops from the front, possibly some pushed items too:
/// those are left out of `appended`, and `skip` is then all of `old`.)
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ListDelta {
    old_len: usize,
    skip: usize,
    appended: Vec<Value>,
}

impl ListDelta {
    /// The change from a list of `old_len` items to `new`, whose first `new.len() - kept_new`
    /// items are the old list's last ones and whose last `kept_new` items are new.
    pub(crate) fn after(old_len: usize, new: &[Value], kept_new: usize) -> ListDelta {
        let kept_new = kept_new.min(new.len());
        let kept_old = new.len() - kept_new;
        ListDelta {
            old_len,
            skip: old_len.saturating_sub(kept_old),
            appended: new[new.len() - kept_new..].to_vec(),
        }
    }
}

/// Deltas of one key that the reader has not applied yet, because the queue dropped their events
/// (or the event before them) when it was full: what the next delta of the key applies first.
#[derive(Debug, Default)]
struct Debt {
    /// The version to start from: a dropped event's value. `None`: the version the reader last
    /// rebuilt ([`Key::head`]).
    base: Option<Arc<Value>>,
    /// The dropped deltas after `base`, folded into one.
    skip: usize,
    appended: VecDeque<Value>,
    /// How long the list `skip` counts into is (`None` until a delta is folded in).
    old_len: Option<usize>,
}

impl Debt {
    /// Folds `next` in after the deltas already here.
    fn then(&mut self, next: &ListDelta) {
        let old_len = *self.old_len.get_or_insert(next.old_len);
        let kept_old = old_len - self.skip.min(old_len);
        if next.skip <= kept_old {
            self.skip += next.skip;
        } else {
            self.skip = old_len;
            let from_appended = (next.skip - kept_old).min(self.appended.len());
            self.appended.drain(..from_appended);
        }
        self.appended.extend(next.appended.iter().cloned());
    }
}

/// One queued event: a change as it happened, or a list's in-place change as a delta.
#[derive(Debug)]
enum Event {
    Change(Change),
    Delta { key: String, delta: Arc<ListDelta> },
}

/// What the queue knows of one key that has events in it.
#[derive(Debug, Default)]
struct Key {
    /// How many of the queue's events are this key's.
    pending: usize,
    /// How many of those are deltas.
    deltas: usize,
    /// Whether the key's newest queued event gives it a value, so that a delta can follow it.
    open: bool,
    /// The version the reader rebuilt or read last, while deltas of the key wait behind it.
    head: Option<Arc<Value>>,
    /// What dropped events left for the next delta to apply first.
    debt: Option<Debt>,
}

#[derive(Debug)]
struct State {
    events: VecDeque<Event>,
    capacity: usize,
    /// Events dropped since the reader last took one.
    missed: u64,
    keys: HashMap<String, Key>,
    waker: Option<Waker>,
    /// The sender is gone: once the events are read, the stream ends.
    closed: bool,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
}

impl Shared {
    /// The state. No code panics while holding it, so a poisoned lock still holds a whole state.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A new feed queue that holds up to `capacity` (at least 1) unread events.
pub(crate) fn channel(capacity: usize) -> (FeedSender, FeedReceiver) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            events: VecDeque::new(),
            capacity: capacity.max(1),
            missed: 0,
            keys: HashMap::new(),
            waker: None,
            closed: false,
        }),
    });
    (
        FeedSender {
            shared: Arc::clone(&shared),
        },
        FeedReceiver { shared },
    )
}

/// The executor's end of a feed queue. Dropping it ends the stream once its events are read.
#[derive(Debug)]
pub(crate) struct FeedSender {
    shared: Arc<Shared>,
}

impl FeedSender {
    /// Queues `change`, dropping the oldest event if the queue is full. Never waits.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn send(&self, change: Change) {
        self.send_list(change, None);
    }

    /// Queues `change`; if it is a list's in-place change described by `delta` and the queue
    /// holds an event the stream can rebuild it from, as that delta (the value is not kept).
    pub(crate) fn send_list(&self, change: Change, delta: Option<&Arc<ListDelta>>) {
        let mut state = self.shared.lock();
        if state.events.len() >= state.capacity {
            state.drop_oldest();
        }
        let sets = matches!(change.kind, ChangeKind::Set(_));
        let key = match state.keys.get_mut(&change.key) {
            Some(key) => key,
            None => state.keys.entry(change.key.clone()).or_default(),
        };
        let as_delta = delta.filter(|_| sets && key.open);
        key.pending += 1;
        key.open = sets;
        let event = match as_delta {
            Some(delta) => {
                key.deltas += 1;
                Event::Delta {
                    key: change.key,
                    delta: Arc::clone(delta),
                }
            }
            None => Event::Change(change),
        };
        state.events.push_back(event);
        let waker = state.waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Whether the stream has been dropped.
    pub(crate) fn is_closed(&self) -> bool {
        Arc::strong_count(&self.shared) == 1
    }
}

impl Drop for FeedSender {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.closed = true;
        let waker = state.waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl State {
    /// Drops the oldest event to make room, keeping the key's later versions exact.
    fn drop_oldest(&mut self) {
        let Some(event) = self.events.pop_front() else {
            return;
        };
        self.missed += 1;
        let (name, change) = match event {
            Event::Change(change) => (change.key.clone(), Some(change.kind)),
            Event::Delta { key, delta } => {
                if let Some(state) = self.keys.get_mut(&key) {
                    state.deltas -= 1;
                    state.debt.get_or_insert_with(Debt::default).then(&delta);
                }
                (key, None)
            }
        };
        let Some(key) = self.keys.get_mut(&name) else {
            return;
        };
        match change {
            // The key's next delta starts from this value.
            Some(ChangeKind::Set(value)) if key.deltas > 0 => {
                key.debt = Some(Debt {
                    base: Some(value),
                    ..Debt::default()
                });
                key.head = None;
            }
            Some(_) => {
                key.debt = None;
                key.head = None;
            }
            None => {}
        }
        key.pending -= 1;
        if key.pending == 0 {
            self.keys.remove(&name);
        }
    }
}

/// The stream's end of a feed queue (public in name only, as the answer of a public command type).
#[derive(Debug)]
pub struct FeedReceiver {
    shared: Arc<Shared>,
}

/// What [`FeedReceiver::poll_recv`] yields: a change, or how many were lost before the next one.
#[derive(Debug)]
pub(crate) enum Received {
    Change(Change),
    Lagged(u64),
}

impl FeedReceiver {
    /// The next event, rebuilt if it is a delta; `None` once the sender is gone and every event
    /// has been read.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Received>> {
        let mut state = self.shared.lock();
        if state.missed > 0 {
            return Poll::Ready(Some(Received::Lagged(std::mem::take(&mut state.missed))));
        }
        let Some(event) = state.events.pop_front() else {
            if state.closed {
                return Poll::Ready(None);
            }
            state.waker = Some(cx.waker().clone());
            return Poll::Pending;
        };
        let (name, delta) = match event {
            Event::Change(change) => {
                if let Some(key) = state.keys.get_mut(&change.key) {
                    key.debt = None;
                    key.head = match &change.kind {
                        ChangeKind::Set(value) if key.deltas > 0 => Some(Arc::clone(value)),
                        _ => None,
                    };
                    key.pending -= 1;
                    if key.pending == 0 {
                        state.keys.remove(&change.key);
                    }
                }
                return Poll::Ready(Some(Received::Change(change)));
            }
            Event::Delta { key, delta } => (key, delta),
        };
        let Some(key) = state.keys.get_mut(&name) else {
            // Not reached: a delta is queued only behind an event of its key.
            return Poll::Ready(Some(Received::Lagged(1)));
        };
        key.pending -= 1;
        key.deltas -= 1;
        let debt = key.debt.take().unwrap_or_default();
        let head = key.head.take();
        if key.pending == 0 {
            state.keys.remove(&name);
        }
        drop(state);

        // Rebuilt outside the lock: a copy, if the caller still holds the version before, must
        // not hold up the sender.
        let Some(mut value) = debt.base.or(head) else {
            return Poll::Ready(Some(Received::Lagged(1)));
        };
        if let Value::Array(list) = Arc::make_mut(&mut value) {
            list.drain(..debt.skip.min(list.len()));
            list.extend(debt.appended);
            list.drain(..delta.skip.min(list.len()));
            list.extend(delta.appended.iter().cloned());
        }

        let mut state = self.shared.lock();
        if let Some(key) = state.keys.get_mut(&name) {
            if key.deltas > 0 && key.head.is_none() {
                key.head = Some(Arc::clone(&value));
            }
        }
        drop(state);
        Poll::Ready(Some(Received::Change(Change {
            key: name,
            kind: ChangeKind::Set(value),
        })))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn items(range: std::ops::Range<usize>) -> Vec<Value> {
        range.map(|i| json!(i)).collect()
    }

    fn applied(old: &[Value], delta: &ListDelta) -> Vec<Value> {
        assert_eq!(old.len(), delta.old_len);
        let mut list = old[delta.skip..].to_vec();
        list.extend(delta.appended.iter().cloned());
        list
    }

    #[test]
    fn a_delta_names_what_left_the_front_and_what_came_at_the_end() {
        // Ten items, three pushed, trimmed to eight: five old ones and the three new ones stay.
        let new = items(5..13);
        let delta = ListDelta::after(10, &new, 3);
        assert_eq!((delta.skip, delta.appended.clone()), (5, items(10..13)));
        // Trimmed to two: two of the pushed items, none of the old.
        let delta = ListDelta::after(10, &items(11..13), 3);
        assert_eq!((delta.skip, delta.appended.clone()), (10, items(11..13)));
        // Two popped.
        let delta = ListDelta::after(10, &items(2..10), 0);
        assert_eq!((delta.skip, delta.appended.len()), (2, 0));
    }

    proptest! {
        /// Folding dropped deltas into one debt gives the version applying them one by one does.
        #[test]
        fn a_debt_applies_as_its_deltas_in_turn(
            start in 0..6usize,
            changes in proptest::collection::vec((0..8usize, 0..4usize, 1..9usize), 1..12),
        ) {
            let mut list = items(0..start);
            let mut debt = Debt::default();
            let mut next = 100;
            for (skip, added, max) in changes {
                let old_len = list.len();
                let mut new = list[skip.min(old_len)..].to_vec();
                new.extend(items(next..next + added));
                next += added;
                let kept_new = added.min(max);
                let new = new[new.len().saturating_sub(max)..].to_vec();
                let delta = ListDelta::after(old_len, &new, kept_new);
                prop_assert_eq!(applied(&list, &delta), new.clone());
                debt.then(&delta);
                list = new;
            }
            let mut folded = items(0..start);
            folded.drain(..debt.skip.min(folded.len()));
            folded.extend(debt.appended);
            prop_assert_eq!(folded, list);
        }
    }
}
