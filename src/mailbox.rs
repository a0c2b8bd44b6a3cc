//! [`Mailbox`]: the caller's end of a store: the sender to its owner task's mailbox and the key
//! prefix, and how one command is sent and answered.
//!
//! A [`KvHandle`](crate::KvHandle) is a `Mailbox` with the public calls on it; the call values in
//! [`calls`](crate::calls) hold a `&Mailbox`. This is the one place that puts commands in a
//! mailbox, whichever executor reads it.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use futures::future::BoxFuture;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};

use crate::closure::{self, StoreId};
use crate::command::{Call, CallerSpan, Command, Message, Op};
use crate::error::KvError;

/// The sender to a store's owner task and the key prefix of one handle. Cloning it is cheap.
#[derive(Debug, Clone)]
pub struct Mailbox {
    sender: mpsc::Sender<Message>,
    prefix: Arc<str>,
    /// Set by [`KvHandle::shutdown`](crate::KvHandle::shutdown) on any handle of the store, so that
    /// a call refused afterwards can tell a shutdown ([`KvError::Closed`]) from an owner task that
    /// ended without one ([`KvError::OwnerGone`]).
    shut_down: Arc<AtomicBool>,
    /// Which store this is, so that a call made from inside one of its own closures can be
    /// refused instead of waiting for itself.
    store: StoreId,
}

impl Mailbox {
    /// The caller's end of an owner task's mailbox, whichever executor runs behind it.
    pub(crate) fn new(sender: mpsc::Sender<Message>, prefix: String, store: StoreId) -> Mailbox {
        Mailbox {
            sender,
            prefix: prefix.into(),
            shut_down: Arc::default(),
            store,
        }
    }

    /// The same mailbox, with `prefix` added to the key prefix.
    pub(crate) fn with_prefix(&self, prefix: &str) -> Mailbox {
        Mailbox {
            sender: self.sender.clone(),
            prefix: format!("{}{prefix}", self.prefix).into(),
            shut_down: Arc::clone(&self.shut_down),
            store: self.store,
        }
    }

    /// The prefix put before every key.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// How many commands wait in the mailbox.
    pub(crate) fn depth(&self) -> usize {
        self.sender.max_capacity() - self.sender.capacity()
    }

    /// Whether the owner task has stopped taking commands.
    pub(crate) fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// Notes that `shutdown` was called, for [`Mailbox::closed`].
    pub(crate) fn shutting_down(&self) {
        self.shut_down.store(true, Ordering::Release);
    }

    /// The full key for `key`: this handle's prefix followed by `key`.
    ///
    /// A `String` given to a handle without a prefix is the full key as it is, moved into the
    /// command rather than copied: keys are usually built for the call (`format!("user:{id}")`),
    /// and a copy would cost an allocation per call, one the caller's thread cannot reuse, since
    /// the owner task frees the key it is sent.
    #[allow(unsafe_code)]
    pub(crate) fn key<K: AsRef<str>>(&self, key: K) -> String {
        if self.prefix.is_empty() && typeid::of::<K>() == typeid::of::<String>() {
            let key = std::mem::ManuallyDrop::new(key);
            // SAFETY: `K` is `String` (`typeid` compares types with lifetimes erased, and
            // `String` has none), so this reads a `String` from a `String` whose own drop is
            // suppressed: a move.
            return unsafe { std::ptr::read(&*key as *const K as *const String) };
        }
        let key = key.as_ref();
        let mut full = String::with_capacity(self.prefix.len() + key.len());
        full.push_str(&self.prefix);
        full.push_str(key);
        full
    }

    /// Sends one command: the one function that puts commands in a mailbox. The command goes in
    /// at once when the mailbox has room (no future, no allocation); a full mailbox is waited on
    /// by the returned [`Sending`]. A call made from inside one of this store's own closures is
    /// refused at once ([`KvError::Reentrant`]): the owner task is busy running that closure and
    /// would never get to it.
    pub(crate) fn send<C: Op>(&self, args: C) -> Result<Sending<'_, C::Answer>, KvError>
    where
        Command: From<Call<C>>,
    {
        if closure::inside(self.store) {
            return Err(KvError::Reentrant { op: C::NAME });
        }
        let (reply, answer) = oneshot::channel();
        let command = Command::from(Call { args, reply });
        let message = Message {
            command,
            span: CallerSpan::current(),
        };
        let room = match self.sender.try_send(message) {
            Ok(()) => None,
            Err(TrySendError::Full(message)) => {
                let room: BoxFuture<'_, Result<(), KvError>> =
                    Box::pin(
                        async move { self.sender.send(message).await.map_err(|_| self.closed()) },
                    );
                Some(room)
            }
            Err(TrySendError::Closed(_)) => return Err(self.closed()),
        };
        Ok(Sending { room, answer })
    }

    /// Why the owner task no longer answers: [`KvError::Closed`] after a [`shutdown`](crate::KvHandle::shutdown),
    /// else [`KvError::OwnerGone`].
    pub(crate) fn closed(&self) -> KvError {
        if self.shut_down.load(Ordering::Acquire) {
            KvError::Closed
        } else {
            KvError::OwnerGone
        }
    }
}

/// A command in the mailbox (or waiting for room in it), and the end its answer comes back on.
pub(crate) struct Sending<'a, T> {
    /// Waiting for room in a full mailbox; `None` once the command is in it.
    room: Option<BoxFuture<'a, Result<(), KvError>>>,
    answer: oneshot::Receiver<Result<T, KvError>>,
}

impl<T> Sending<'_, T> {
    /// Polls for the answer. Both ways the owner task can be gone (the mailbox is closed, or it
    /// dropped the command unanswered while stopping) read as [`Mailbox::closed`] says:
    /// [`KvError::Closed`] after a shutdown, else [`KvError::OwnerGone`].
    pub(crate) fn poll_answer(
        &mut self,
        cx: &mut Context<'_>,
        mailbox: &Mailbox,
    ) -> Poll<Result<T, KvError>> {
        if let Some(room) = &mut self.room {
            ready!(room.as_mut().poll(cx))?;
            self.room = None;
        }
        match ready!(Pin::new(&mut self.answer).poll(cx)) {
            Ok(answer) => Poll::Ready(answer),
            Err(_) => Poll::Ready(Err(mailbox.closed())),
        }
    }
}

/// Removes the first `strip` bytes (a handle's prefix) from a full key. Keys that come back from
/// the store always start with that prefix; the fallback only keeps this total.
pub(crate) fn relative_key(mut key: String, strip: usize) -> String {
    // `is_char_boundary` is false past the end, so this strips exactly when `key.get(strip..)`
    // would succeed, in place.
    if key.is_char_boundary(strip) {
        key.drain(..strip);
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox(prefix: &str) -> Mailbox {
        let (sender, _receiver) = mpsc::channel(1);
        Mailbox::new(sender, prefix.to_owned(), StoreId::new())
    }

    #[test]
    fn a_string_key_without_a_prefix_is_moved_not_copied() {
        let key = String::from("user:1");
        let buffer = key.as_ptr();
        let full = mailbox("").key(key);
        assert_eq!(full, "user:1");
        assert_eq!(full.as_ptr(), buffer);
    }

    #[test]
    fn every_other_key_is_copied_behind_the_prefix() {
        let plain = mailbox("");
        let scoped = mailbox("app:");
        let key = String::from("user:1");
        assert_eq!(plain.key("user:1"), "user:1");
        assert_eq!(plain.key(&key), "user:1");
        assert_eq!(scoped.key("user:1"), "app:user:1");
        assert_eq!(scoped.key(&key), "app:user:1");
        assert_eq!(scoped.key(key), "app:user:1");
        assert_eq!(plain.key(std::borrow::Cow::Borrowed("k")), "k");
        assert_eq!(plain.key(Box::<str>::from("k")), "k");
    }
}
