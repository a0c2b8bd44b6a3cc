//! The commands that wait for changes: [`Watch`] and [`WaitFor`], and the [`Change`]s a change
//! feed carries.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use serde_json::Value;

use super::{Op, Reply, Subject};
use queue::FeedReceiver;

pub(crate) mod queue;

/// Open a change feed of every later change under `prefix`, holding up to `capacity` unread
/// changes; answer with its receiving end.
#[derive(Debug)]
pub struct Watch {
    pub(crate) prefix: String,
    pub(crate) capacity: usize,
}

impl Op for Watch {
    const NAME: &'static str = "watch";
    const WRITES: bool = false;
    type Answer = FeedReceiver;
    fn subject(&self) -> Subject {
        Subject::prefix(&self.prefix)
    }
}

/// Answer with the key's value now if it has one, else as soon as it gets one.
#[derive(Debug)]
pub struct WaitFor {
    pub(crate) key: String,
}

impl Op for WaitFor {
    const NAME: &'static str = "wait_for";
    const WRITES: bool = false;
    type Answer = Arc<Value>;
    fn subject(&self) -> Subject {
        Subject::key(&self.key)
    }
}

/// What happened to a key, as an executor publishes it to change feeds.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeKind {
    /// The key now holds this value.
    Set(Arc<Value>),
    /// The key was removed by a command.
    Deleted,
    /// The key's TTL ran out and the store removed it (lazily, by a purge, or by active expiry).
    Expired,
    /// The store removed the key, still live, to make room for a new one (a store bounded by
    /// `max_entries` with `Eviction::VolatileTtl`).
    Evicted,
    /// Not a change: this many changes before the next one were lost on the way to the feed (the
    /// Redis change stream was trimmed past its reader, or vanished: `u64::MAX`, an unknown
    /// number). The watcher sees [`KvError::Lagged`](crate::KvError::Lagged). The key is empty.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    Missed(u64),
}

/// One change to one key, with the full (prefixed) key: what a change feed carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub(crate) key: String,
    pub(crate) kind: ChangeKind,
}

/// Forgets the `wait_for` calls whose caller stopped waiting (dropped its future), and the keys
/// left with none: both executors do this before they look for values to answer with.
pub(crate) fn drop_abandoned<S: BuildHasher>(
    waiters: &mut HashMap<String, Vec<Reply<Arc<Value>>>, S>,
) {
    waiters.retain(|_, waiters| {
        waiters.retain(|waiter| !waiter.is_closed());
        !waiters.is_empty()
    });
}
