//! [`Pending`]: one generic pending call, written once for every call that takes options.
//!
//! A call with options (`kv.set(k, v).ttl(d)`) is built in two steps: the [`KvHandle`](crate::KvHandle) method makes
//! a `Pending` holding the call's arguments, and option methods change them. Nothing is sent until
//! the call is first polled (usually by `.await`); then its arguments are checked, turned into a
//! command and sent, and the answer is shaped for the caller. What differs between calls, the
//! arguments and how they become a command, is a [`Request`]; the rest is here, once.
//!
//! Calls without options (`get`, `delete`, ...) take the same path: their methods return the
//! same `Pending`, behind `impl Future`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use crate::command::{Call, Command, Op};
use crate::error::KvError;
use crate::mailbox::{Mailbox, Sending};

/// The arguments of one kind of call: how they are checked and become a command, and how its
/// answer becomes what the caller gets. Every call of [`KvHandle`](crate::KvHandle) has one, and
/// every one is sent by [`send`], the one way a call reaches the store.
///
/// Public only in name: it lives in a private module, so it cannot be named, implemented or
/// called from outside the crate (a sealed trait); it shows in [`Pending`]'s bounds.
pub trait Request: fmt::Debug + Send + Unpin + Sized {
    /// The command the arguments become.
    type Op: Op;
    /// What the caller gets.
    type Output;
    /// What [`output`](Request::output) needs of the arguments once they are sent.
    type Shape: Send + Unpin;

    /// Checks the arguments and builds the command, or says what is wrong with them: nothing is
    /// sent then.
    fn command(self) -> Result<(Self::Op, Self::Shape), KvError>;

    /// Shapes the executor's answer for the caller, on the caller's task.
    fn output(
        shape: Self::Shape,
        answer: <Self::Op as Op>::Answer,
        mailbox: &Mailbox,
    ) -> Result<Self::Output, KvError>;
}

/// The [`Request`] of a call that needs no check and no shaping: the command itself, answered as
/// the executor answers it.
macro_rules! plain_request {
    ($($op:ident),* $(,)?) => {
        $(
            impl Request for crate::command::$op {
                type Op = Self;
                type Output = <Self as Op>::Answer;
                type Shape = ();

                fn command(self) -> Result<(Self, ()), KvError> {
                    Ok((self, ()))
                }

                fn output(
                    (): (),
                    answer: Self::Output,
                    _: &Mailbox,
                ) -> Result<Self::Output, KvError> {
                    Ok(answer)
                }
            }
        )*
    };
}

plain_request!(Get, Mget, Exists, Ttl, Delete, Persist, WaitFor, Update);

/// A call that has been made but not sent yet: the handle, and the arguments `A` with the options
/// set so far; it resolves to a `Result<T, KvError>`. Every call with options is one (its type,
/// like [`Set`](crate::Set), names which).
///
/// It is a [`Future`]: await it, or hand it to any combinator (`join_all`, `select!`,
/// `tokio::time::timeout`). Nothing reaches the store until it is first polled; dropping it before
/// then sends nothing, and dropping it after changes nothing the store does with the command.
///
/// ```
/// use futures::future::join_all;
/// use serde_json::json;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ephemeral_kv::KvError> {
/// let kv = ephemeral_kv::KvHandle::spawn();
/// let writes = (0..3).map(|n| kv.set(format!("k{n}"), n));
/// for written in join_all(writes).await {
///     written?;
/// }
/// assert_eq!(kv.get("k2").await?.as_deref(), Some(&json!(2)));
/// # Ok(())
/// # }
/// ```
#[must_use = "a call does nothing until it is awaited"]
pub struct Pending<'a, A: Request> {
    mailbox: &'a Mailbox,
    state: State<'a, A>,
}

/// Where a [`Pending`] call is.
enum State<'a, A: Request> {
    /// Not sent yet: the arguments, with the options set so far.
    Unsent(A),
    /// Sent: waiting for room in the mailbox or for the answer, and what shapes it.
    Sent(Sending<'a, <A::Op as Op>::Answer>, A::Shape),
    /// Answered (or refused before it was sent): there is nothing more to give.
    Done,
}

impl<'a, A: Request> Pending<'a, A> {
    pub(crate) fn new(mailbox: &'a Mailbox, args: A) -> Self {
        Pending {
            mailbox,
            state: State::Unsent(args),
        }
    }

    /// Changes the arguments: what every option method does. Once the call has been sent there is
    /// nothing left to change, and the option is ignored.
    pub(crate) fn with(mut self, option: impl FnOnce(&mut A)) -> Self {
        if let State::Unsent(args) = &mut self.state {
            option(args);
        }
        self
    }
}

impl<A: Request> fmt::Debug for Pending<'_, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let args = match &self.state {
            State::Unsent(args) => Some(args),
            State::Sent(..) | State::Done => None,
        };
        f.debug_struct("Pending")
            .field("prefix", &self.mailbox.prefix())
            .field("args", &args)
            .field("sent", &matches!(self.state, State::Sent(..)))
            .finish()
    }
}

// The one path from every call to its command: on the first poll the arguments are checked and
// turned into a command, which `Mailbox::send` puts in the mailbox; the answer is shaped by
// `Request::output`. No future is boxed unless the mailbox is full.
impl<A: Request> Future for Pending<'_, A>
where
    Command: From<Call<A::Op>>,
{
    type Output = Result<A::Output, KvError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if let State::Unsent(_) = this.state {
            let State::Unsent(args) = std::mem::replace(&mut this.state, State::Done) else {
                return Poll::Pending;
            };
            let sent = args
                .command()
                .and_then(|(op, shape)| Ok((this.mailbox.send(op)?, shape)));
            match sent {
                Ok((sending, shape)) => this.state = State::Sent(sending, shape),
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
        let State::Sent(sending, _) = &mut this.state else {
            // Polled again after it answered: the answer was given once, and there is no other.
            return Poll::Pending;
        };
        let answer = ready!(sending.poll_answer(cx, this.mailbox));
        let State::Sent(_, shape) = std::mem::replace(&mut this.state, State::Done) else {
            return Poll::Pending;
        };
        Poll::Ready(answer.and_then(|answer| A::output(shape, answer, this.mailbox)))
    }
}

#[cfg(test)]
mod tests {
    use crate::KvHandle;

    #[tokio::test(flavor = "current_thread")]
    async fn a_pending_call_shows_its_prefix_and_arguments() {
        let kv = KvHandle::builder().prefix("app:").spawn();
        let call = kv.set("k", 1);
        let shown = format!("{call:?}");
        assert!(
            shown.starts_with("Pending { prefix: \"app:\", args: Some(SetArgs("),
            "{shown}"
        );
        assert!(
            shown.contains("key: \"app:k\"") && shown.ends_with("sent: false }"),
            "{shown}"
        );
    }
}
