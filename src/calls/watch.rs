//! The caller's side of [`KvHandle::watch`](crate::KvHandle::watch): the [`Watch`] call value, the
//! [`WatchStream`] it opens and the [`WatchEvent`]s it yields.
//!
//! Registration is a command like any other, so a stream sees exactly the changes applied after it
//! was opened, in the order the owner task applied them. The owner side is
//! [`feeds`](crate::local) of the in-process executor.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use futures::stream::Stream;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::pending::{Pending, Request};
use crate::command::feed_queue::{FeedReceiver, Received};
use crate::command::{self, Change, ChangeKind};
use crate::error::KvError;
use crate::mailbox::{relative_key, Mailbox};
use crate::value::decode;

/// How many events a [`WatchStream`] buffers by default before it starts losing the oldest.
pub const DEFAULT_WATCH_CAPACITY: usize = 1024;

/// The largest buffer a [`WatchStream`] may ask for; larger requests are lowered to it.
pub const MAX_WATCH_CAPACITY: usize = crate::command::MAX_CAPACITY;

/// A change to one key under a watched prefix.
///
/// Keys are relative to the prefix of the handle that opened the stream (not to the watched
/// prefix), so `kv.get(event.key())` reads the key the event is about. Only changes to values are
/// events: a TTL change (`expire`, `persist`) is not, nor is a call that failed or changed nothing.
///
/// ```
/// use std::sync::Arc;
/// use ephemeral_kv::WatchEvent;
/// use futures::StreamExt;
/// use serde_json::json;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ephemeral_kv::KvError> {
/// let kv = ephemeral_kv::KvHandle::spawn();
/// let mut events = kv.watch("job:").await?;
/// kv.set("job:1", "queued").await?;
/// kv.delete("job:1").await?;
/// assert_eq!(
///     events.next().await.transpose()?,
///     Some(WatchEvent::Set { key: "job:1".into(), value: Arc::new(json!("queued")) })
/// );
/// assert_eq!(events.next().await.transpose()?.map(|e| e.key().to_owned()), Some("job:1".into()));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum WatchEvent {
    /// The key now holds `value` (written by any call: `set`, `mset`, a list append, `incr`,
    /// `update`, a transaction...).
    Set {
        /// The key, relative to the watching handle's prefix.
        key: String,
        /// The value it holds, shared with the store (not a copy).
        value: Arc<Value>,
    },
    /// A call removed the key (`delete`, `get_del`, `list_pop_all`, `update` returning `None`, a
    /// transaction).
    Deleted {
        /// The key, relative to the watching handle's prefix.
        key: String,
    },
    /// The key's TTL ran out and the store removed it. Reported when the removal happens: at once
    /// with active expiry (the default), else when a call touches the key or a purge runs.
    Expired {
        /// The key, relative to the watching handle's prefix.
        key: String,
    },
    /// The store removed the key, still live, to make room for a new key: only a store bounded by
    /// [`max_entries`](crate::KvBuilder::max_entries) with
    /// [`Eviction::VolatileTtl`](crate::Eviction::VolatileTtl) evicts, always the keys closest to
    /// expiry. Reported in the order of the command that needed the room, before that command's
    /// own changes. An eviction is not a write: it does not answer a `wait_for`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ephemeral_kv::{Eviction, KvHandle, WatchEvent};
    /// use futures::StreamExt;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = KvHandle::builder().max_entries(1).eviction(Eviction::VolatileTtl).spawn();
    /// kv.set("old", 1).ttl(Duration::from_secs(60)).await?;
    /// let mut events = kv.watch("").await?;
    /// kv.set("new", 2).await?;
    /// let first = events.next().await.transpose()?;
    /// assert_eq!(first, Some(WatchEvent::Evicted { key: "old".into() }));
    /// assert_eq!(events.next().await.transpose()?.map(|e| e.key().to_owned()), Some("new".into()));
    /// # Ok(())
    /// # }
    /// ```
    Evicted {
        /// The key, relative to the watching handle's prefix.
        key: String,
    },
}

impl WatchEvent {
    /// The key the event is about, relative to the watching handle's prefix.
    ///
    /// ```
    /// let event = ephemeral_kv::WatchEvent::Deleted { key: "k".into() };
    /// assert_eq!(event.key(), "k");
    /// ```
    pub fn key(&self) -> &str {
        match self {
            WatchEvent::Set { key, .. }
            | WatchEvent::Deleted { key }
            | WatchEvent::Expired { key }
            | WatchEvent::Evicted { key } => key,
        }
    }

    /// The value the key now holds, for a [`WatchEvent::Set`]; `None` for a removal.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use serde_json::json;
    /// let event = ephemeral_kv::WatchEvent::Set { key: "k".into(), value: Arc::new(json!(1)) };
    /// assert_eq!(event.value().map(|v| &**v), Some(&json!(1)));
    /// ```
    pub fn value(&self) -> Option<&Arc<Value>> {
        match self {
            WatchEvent::Set { value, .. } => Some(value),
            WatchEvent::Deleted { .. }
            | WatchEvent::Expired { .. }
            | WatchEvent::Evicted { .. } => None,
        }
    }

    /// The value the key now holds deserialized into `T`, for a [`WatchEvent::Set`]; `None` for a
    /// removal.
    ///
    /// # Errors
    /// [`KvError::Deserialize`] if the value does not fit `T`, naming the key as this event has it
    /// (relative to the watching handle's prefix, like [`WatchEvent::key`]).
    ///
    /// ```
    /// use futures::StreamExt;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// let mut progress = kv.watch("progress:").await?;
    /// kv.set("progress:job-7", 40u8).await?;
    /// let event = progress.next().await.transpose()?.unwrap();
    /// assert_eq!(event.value_as::<u8>()?, Some(40));
    /// # Ok(())
    /// # }
    /// ```
    pub fn value_as<T: DeserializeOwned>(&self) -> Result<Option<T>, KvError> {
        match self {
            WatchEvent::Set { key, value } => decode(key, value).map(Some),
            WatchEvent::Deleted { .. }
            | WatchEvent::Expired { .. }
            | WatchEvent::Evicted { .. } => Ok(None),
        }
    }

    /// Turns the owner task's change into the caller's event, on the caller's task.
    fn from_change(change: Change, strip: usize) -> WatchEvent {
        let key = relative_key(change.key, strip);
        match change.kind {
            ChangeKind::Set(value) => WatchEvent::Set { key, value },
            ChangeKind::Deleted => WatchEvent::Deleted { key },
            ChangeKind::Expired => WatchEvent::Expired { key },
            ChangeKind::Evicted => WatchEvent::Evicted { key },
            // Taken out by the stream before it gets here.
            ChangeKind::Missed(_) => unreachable!("a missed-changes marker is not an event"),
        }
    }
}

/// A pending [`KvHandle::watch`](crate::KvHandle::watch). Await it to open the stream.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ephemeral_kv::KvError> {
/// let kv = ephemeral_kv::KvHandle::spawn();
/// let call: ephemeral_kv::Watch<'_> = kv.watch("inbox:");
/// let events = call.capacity(64).await?;
/// # drop(events);
/// # Ok(())
/// # }
/// ```
pub type Watch<'a> = Pending<'a, WatchArgs>;

/// The arguments of [`Watch`]: the command itself.
#[derive(Debug)]
pub struct WatchArgs(command::Watch);

impl WatchArgs {
    pub(crate) fn new(prefix: String) -> Self {
        WatchArgs(command::Watch {
            prefix,
            capacity: DEFAULT_WATCH_CAPACITY,
        })
    }
}

impl Request for WatchArgs {
    type Op = command::Watch;
    type Output = WatchStream;
    /// The full prefix watched, for [`WatchStream::prefix`].
    type Shape = String;

    fn command(self) -> Result<(command::Watch, String), KvError> {
        let mut command = self.0;
        command.capacity = command.capacity.clamp(1, MAX_WATCH_CAPACITY);
        let prefix = command.prefix.clone();
        Ok((command, prefix))
    }

    fn output(
        prefix: String,
        receiver: FeedReceiver,
        mailbox: &Mailbox,
    ) -> Result<WatchStream, KvError> {
        Ok(WatchStream::new(receiver, mailbox.prefix().len(), prefix))
    }
}

impl Watch<'_> {
    /// How many events the stream holds for its reader (default 1024, at least 1, at most
    /// [`MAX_WATCH_CAPACITY`]). When the reader
    /// falls further behind, the oldest events are dropped and the stream yields
    /// [`KvError::Lagged`] with their number; the store itself never waits.
    ///
    /// ```
    /// use ephemeral_kv::KvError;
    /// use futures::StreamExt;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// let mut events = kv.watch("n:").capacity(2).await?;
    /// for i in 0..5 {
    ///     kv.set(format!("n:{i}"), i).await?;
    /// }
    /// assert!(matches!(events.next().await, Some(Err(KvError::Lagged { missed: 3, .. }))));
    /// assert_eq!(events.next().await.transpose()?.map(|e| e.key().to_owned()), Some("n:3".into()));
    /// # Ok(())
    /// # }
    /// ```
    pub fn capacity(self, capacity: usize) -> Self {
        self.with(|args| args.0.capacity = capacity)
    }
}

/// The changes under a prefix, as a [`Stream`], in the order the owner task applied them. Made by
/// [`KvHandle::watch`](crate::KvHandle::watch).
///
/// Each item is a [`WatchEvent`], or [`KvError::Lagged`] when the reader fell behind and events
/// were dropped for it (the stream then goes on). The stream ends when the store stops. Dropping
/// it unsubscribes.
///
/// ```
/// use futures::StreamExt;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ephemeral_kv::KvError> {
/// let kv = ephemeral_kv::KvHandle::spawn();
/// let mut events = kv.watch("").await?;
/// kv.set("k", 1).await?;
/// kv.shutdown().await;
/// assert_eq!(events.next().await.transpose()?.map(|e| e.key().to_owned()), Some("k".into()));
/// assert!(events.next().await.is_none());
/// # Ok(())
/// # }
/// ```
pub struct WatchStream {
    /// The full watched prefix, for [`KvError::Lagged`].
    prefix: String,
    receiver: FeedReceiver,
    /// How long the handle's own prefix is, to take off each event's key.
    strip: usize,
}

impl WatchStream {
    fn new(receiver: FeedReceiver, strip: usize, prefix: String) -> WatchStream {
        WatchStream {
            prefix,
            receiver,
            strip,
        }
    }

    /// The error for `missed` events lost on the way to this stream.
    fn lagged(&self, missed: u64) -> KvError {
        KvError::Lagged {
            prefix: self.prefix.clone(),
            missed,
        }
    }

    /// The full prefix this stream watches.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn().with_prefix("app:");
    /// assert_eq!(kv.watch("inbox:").await?.prefix(), "app:inbox:");
    /// # Ok(())
    /// # }
    /// ```
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

impl fmt::Debug for WatchStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchStream")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Stream for WatchStream {
    type Item = Result<WatchEvent, KvError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = match ready!(self.receiver.poll_recv(cx)) {
            None => return Poll::Ready(None),
            Some(Received::Change(Change {
                kind: ChangeKind::Missed(missed),
                ..
            })) => {
                tracing::warn!(prefix = %self.prefix, missed, "watch feed lost changes");
                Err(self.lagged(missed))
            }
            Some(Received::Change(change)) => Ok(WatchEvent::from_change(change, self.strip)),
            Some(Received::Lagged(missed)) => {
                tracing::warn!(prefix = %self.prefix, missed, "watch stream fell behind");
                Err(self.lagged(missed))
            }
        };
        Poll::Ready(Some(item))
    }
}
