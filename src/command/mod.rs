//! The command enum: the single list of what the store can do, as plain data.
//!
//! A [`KvHandle`](crate::KvHandle) call builds one command struct (its arguments, checked) and
//! sends it, with the channel for its answer, as one [`Command`] to its executor's owner task:
//! the in-process one ([`local`](crate::local)) or the Redis one (`redis`). Each executor handles
//! every variant in one `match` with no catch-all arm, so a command added here does not compile
//! until every executor handles it.
//!
//! Each command is a struct of its own, in the file of its family, carrying its fields; its
//! [`Op`] impl beside it gives its name, the type of its answer and what its log line names. The
//! enum wraps each in a [`Call`], which adds the answer's channel.
//!
//! - [`read`]: `get`, `mget`, `exists`, `ttl`, `scan_prefix`;
//! - [`write`]: `set`, `mset`, `delete`, `expire`, `persist`, `incr`, `set_if_absent`,
//!   `compare_and_set`, `get_del`;
//! - [`list`]: `list_append_unique`, `list_pop_all`, `list_push`, `list_pop_front`;
//! - [`closures`]: `update`, `transaction`, and the closures they carry;
//! - [`feeds`]: `watch`, `wait_for`, and the changes a feed carries;
//! - [`store`]: `purge_expired`, `stats`, `shutdown`.
//!
//! Commands arrive already checked: keys carry their prefix, values are serialized, TTLs are
//! non-zero, and `list_append_unique`'s items are objects holding a scalar id. What is left to
//! fail is what only the executor can see (an existing value of the wrong type, a lost Redis
//! server).

mod closures;
mod feeds;
mod list;
mod read;
mod store;
mod write;

pub(crate) use closures::{Transaction, TxnFn, Update, UpdateFn};
pub(crate) use feeds::{drop_abandoned, queue as feed_queue, Change, ChangeKind, WaitFor, Watch};
pub(crate) use list::{ListAppendUnique, ListPopAll, ListPopFront, ListPush};
pub(crate) use read::{Exists, Get, Mget, ScanPrefix, Ttl};
pub(crate) use store::{PurgeExpired, Shutdown, Stats};
pub(crate) use write::{
    CompareAndSet, Delete, Expire, GetDel, Incr, Mset, Persist, Set, SetIfAbsent,
};

use tokio::sync::{mpsc, oneshot};

use crate::error::KvError;

/// Where the owner task sends a command's answer. A caller that stopped waiting has dropped the
/// receiving end; the answer is then discarded, which is normal and not an error.
///
/// Every answer is a `Result`, even for commands the in-process store cannot fail, so that any
/// executor behind this enum (the Redis one can lose its server) can fail any call with a clear
/// [`KvError`] instead of dropping it.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, KvError>>;

/// The most messages a channel of a store holds: its mailbox, or a change feed's ring. Tokio's
/// channels refuse more than `usize::MAX / 2`; a channel this size already holds a million.
pub(crate) const MAX_CAPACITY: usize = 1 << 20;

/// What every command struct says about itself.
pub trait Op: Sized + Send + 'static {
    /// The operation's name, as the reference API (or, for the coordination commands, the
    /// [`KvHandle`](crate::KvHandle) method) spells it.
    const NAME: &'static str;
    /// Whether the command may change the store (a write, a pop, a closure): a durable store
    /// under `EveryBatch` holds such a command's answer until its change is committed, and
    /// answers the others (reads, feeds, `stats`, `purge_expired`, `shutdown`) as it handles them.
    const WRITES: bool;
    /// What the executor answers the command with.
    type Answer: Send + 'static;
    /// What the command's debug line names: its key, prefix or number of keys, never a value.
    fn subject(&self) -> Subject;
}

/// One command's arguments and the channel for its answer: what each [`Command`] variant holds.
#[derive(Debug)]
pub struct Call<C: Op> {
    pub(crate) args: C,
    pub(crate) reply: Reply<C::Answer>,
}

impl<C: Op> Call<C> {
    /// Sends the answer. `let _ =`: the caller may have dropped its future; the command was
    /// applied regardless.
    pub(crate) fn answer(self, result: Result<C::Answer, KvError>) {
        let _ = self.reply.send(result);
    }
}

/// Declares [`Command`] over the command structs, with its name and description taken from each
/// struct's [`Op`] impl and a `From<Call<_>>` for each, so that the list of commands is written
/// once.
macro_rules! commands {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// One request to the owner task: a command struct and the channel for its answer.
        pub enum Command {
            $($(#[$doc])* $name(Call<$name>),)*
        }

        impl Command {
            /// The operation's name (see [`Op::NAME`]).
            pub(crate) fn name(&self) -> &'static str {
                match self {
                    $(Command::$name(_) => $name::NAME,)*
                }
            }

            /// What the debug line about this command names: the operation and its key (or
            /// prefix, or number of keys), never a value. Taken before the command is handled,
            /// and only while debug logging is on: it copies the key.
            pub(crate) fn described(&self) -> Described {
                match self {
                    $(Command::$name(call) => Described {
                        op: $name::NAME,
                        subject: call.args.subject(),
                    },)*
                }
            }
        }

        #[cfg(feature = "durable")]
        impl Command {
            /// Answers the command with `error`, applying nothing.
            pub(crate) fn fail(self, error: KvError) {
                match self {
                    $(Command::$name(call) => call.answer(Err(error)),)*
                }
            }

            /// For a command that [`WRITES`](Op::WRITES): the command with a reply of the
            /// executor's own in place of the caller's, and what relays the answer to the caller
            /// once the command has answered: how a durable store holds a write's answer until
            /// its commit. Any other command comes back as it was, with `None`.
            pub(crate) fn detach_reply(self) -> (Command, Option<Detached>) {
                match self {
                    $(Command::$name(Call { args, reply }) => {
                        if !$name::WRITES {
                            return (Command::$name(Call { args, reply }), None);
                        }
                        let (inner, answer) = oneshot::channel();
                        let relay: Detached = Box::new(Relaying { answer, reply: Some(reply) });
                        (Command::$name(Call { args, reply: inner }), Some(relay))
                    })*
                }
            }
        }

        $(
            impl From<Call<$name>> for Command {
                fn from(call: Call<$name>) -> Command {
                    Command::$name(call)
                }
            }
        )*
    };
}

commands! {
    Get,
    Set,
    Delete,
    ListAppendUnique,
    ListPopAll,
    ListPush,
    ListPopFront,
    Mset,
    Mget,
    Expire,
    PurgeExpired,
    Stats,
    Shutdown,
    Incr,
    SetIfAbsent,
    CompareAndSet,
    Update,
    Transaction,
    GetDel,
    Exists,
    Ttl,
    Persist,
    ScanPrefix,
    Watch,
    WaitFor,
}

impl std::fmt::Debug for Command {
    // Not derived: closures have no `Debug`, and values are not for logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Command")
            .field("op", &self.name())
            .finish_non_exhaustive()
    }
}

/// An answer held until a commit: given the commit's error if it failed, it sends that error to
/// the caller in place of a success.
#[cfg(feature = "durable")]
pub(crate) type Ack = Box<dyn FnOnce(Option<KvError>) + Send>;

/// A detached command's answer on its way to the caller (see `Command::detach_reply`).
#[cfg(feature = "durable")]
pub(crate) type Detached = Box<dyn Relay>;

/// Relays a detached command's answer: [`Relay::poll`]ed once the command was handled, and again
/// after later batches while it is parked (a waiting pop).
#[cfg(feature = "durable")]
pub(crate) trait Relay: Send {
    /// What became of the answer so far.
    fn poll(&mut self) -> Polled;
}

/// What became of a detached command's answer.
#[cfg(feature = "durable")]
pub(crate) enum Polled {
    /// The command answered: this sends the answer on to the caller.
    Answered(Ack),
    /// The command parked its reply (a waiting pop) and its caller still waits.
    Parked,
    /// The command dropped its reply, or the caller stopped waiting: dropping the relay tells
    /// whoever holds the command's reply that no one listens (a waiting pop then takes nothing).
    Gone,
}

/// The one [`Relay`]: the executor's receiver and the caller's reply.
#[cfg(feature = "durable")]
struct Relaying<T> {
    answer: oneshot::Receiver<Result<T, KvError>>,
    /// `None` once the answer was relayed.
    reply: Option<Reply<T>>,
}

#[cfg(feature = "durable")]
impl<T: Send + 'static> Relay for Relaying<T> {
    fn poll(&mut self) -> Polled {
        let Some(reply) = self.reply.take() else {
            return Polled::Gone;
        };
        match self.answer.try_recv() {
            Ok(result) => Polled::Answered(Box::new(move |failed| {
                let result = match (failed, result) {
                    (Some(error), Ok(_)) => Err(error),
                    (_, result) => result,
                };
                let _ = reply.send(result);
            })),
            Err(oneshot::error::TryRecvError::Empty) if !reply.is_closed() => {
                self.reply = Some(reply);
                Polled::Parked
            }
            // Dropped unanswered (dropping `reply` tells the caller the same), or the caller left.
            Err(_) => Polled::Gone,
        }
    }
}

/// A command as its debug line names it: see `Command::described`.
#[derive(Debug)]
pub(crate) struct Described {
    op: &'static str,
    subject: Subject,
}

/// What a command is about, for its debug line.
#[derive(Debug)]
pub enum Subject {
    Key(String),
    Prefix(String),
    Keys(usize),
    Limit(usize),
    Store,
}

impl Subject {
    fn key(key: &str) -> Subject {
        Subject::Key(key.to_owned())
    }

    fn prefix(prefix: &str) -> Subject {
        Subject::Prefix(prefix.to_owned())
    }
}

impl Described {
    /// Logs the command at debug level with what came of it (`hit`, `miss`, `applied`,
    /// `refused`, `ok`, or the error's kind) and how long the executor took, in microseconds.
    pub(crate) fn log(&self, outcome: &str, took: std::time::Duration) {
        let op = self.op;
        let took_us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        match &self.subject {
            Subject::Key(key) => tracing::debug!(op, key = %key, outcome, took_us),
            Subject::Prefix(prefix) => tracing::debug!(op, prefix = %prefix, outcome, took_us),
            Subject::Keys(keys) => tracing::debug!(op, keys, outcome, took_us),
            Subject::Limit(limit) => tracing::debug!(op, limit, outcome, took_us),
            Subject::Store => tracing::debug!(op, outcome, took_us),
        }
    }
}

/// A command as it travels the mailbox: with the caller's span, so that the executor's log lines
/// about it appear inside the span the call was made in (a request's span, say).
#[derive(Debug)]
pub(crate) struct Message {
    pub(crate) command: Command,
    pub(crate) span: CallerSpan,
}

/// The caller's span, boxed when there is one: 8 bytes in the mailbox instead of a `Span`'s 40,
/// so that a command's trip through the mailbox is a short copy. With no subscriber, or outside
/// any span, there is nothing to box.
pub(crate) struct CallerSpan(Option<Box<tracing::Span>>);

impl CallerSpan {
    /// The span the calling code is in.
    pub(crate) fn current() -> CallerSpan {
        let span = tracing::Span::current();
        CallerSpan((!span.is_none()).then(|| Box::new(span)))
    }

    /// The span, to enter.
    pub(crate) fn into_span(self) -> tracing::Span {
        self.0.map_or_else(tracing::Span::none, |span| *span)
    }
}

impl std::fmt::Debug for CallerSpan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(span) => span.fmt(f),
            None => f.write_str("none"),
        }
    }
}

/// The owner task's end of its mailbox, when it stops taking commands, in either executor: closes
/// `mailbox` and drops every command still in it unanswered, so that each caller's answer channel
/// closes and the call fails as on a stopped store. It takes them until the channel says it is
/// empty, not only those queued at the close: tokio's channel lets a sender that found room just
/// before the close put its command in just after it, and a command left in the channel would
/// keep its caller waiting for as long as any handle lives. No sender holds room across an
/// `await`, so this ends as soon as those few are in.
pub(crate) async fn refuse_the_rest(mailbox: &mut mpsc::Receiver<Message>) {
    mailbox.close();
    while mailbox.recv().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_names_the_operation_and_leaves_out_keys_and_values() {
        let (reply, _answer) = oneshot::channel();
        let command = Command::from(Call {
            args: Set {
                key: "secret-key".into(),
                value: serde_json::Value::from("secret-value"),
                ttl: None,
            },
            reply,
        });
        assert_eq!(format!("{command:?}"), r#"Command { op: "set", .. }"#);
    }

    #[test]
    fn a_caller_span_is_boxed_only_when_there_is_one() {
        assert!(CallerSpan::current().0.is_none());
        assert!(CallerSpan::current().into_span().is_none());
        let subscriber = tracing_subscriber::fmt()
            .with_writer(std::io::sink)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            // A subscriber, but no span entered: still nothing to box.
            assert!(CallerSpan::current().0.is_none());
            let request = tracing::info_span!("request");
            let caller = request.in_scope(CallerSpan::current);
            assert_eq!(format!("{caller:?}"), format!("{request:?}"));
            assert_eq!(caller.into_span().id(), request.id());
        });
        assert_eq!(std::mem::size_of::<CallerSpan>(), 8);
    }
}
