//! `watch`, `wait_for` and the blocking `list_pop_front(..).wait(..)` on Redis, pushed by the
//! store's change stream (`docs/redis-feed.md`).
//!
//! Every writing script adds one entry per key it changed to the stream
//! `<builder prefix>ekv:changes`, in the same atomic step as the write, **if the stream exists**.
//! It exists only while someone watches: the first watch or wait of an owner task creates it
//! (`feed/open.lua`), and a **feed task** of that owner task ([`task`]) reads it on a connection of
//! its own with `XREAD BLOCK` (one blocked read on the server, nothing sent while nothing is
//! written), refreshing its TTL ([`STREAM_TTL`]) as it goes. When no one is left, the feed task
//! ends and the stream expires, so writes stop paying for it.
//!
//! - A **watch** takes the stream's end (`open.lua`: generation, last id, entries added, in one
//!   step) and then sees every entry after it, filtered by its prefix, in the stream's order (the
//!   order the server applied the writes, of every client). It is answered with its receiving end
//!   as soon as its start is known.
//! - A **`wait_for`** reads the key; if it is missing, it takes the stream's end and reads again
//!   in the same pipeline (so a write in between is seen by one or the other), then parks at the
//!   feed, which answers it with the first `set` of the key after that start.
//! - A **blocking pop** pops; if the list is empty it takes the stream's end and pops again in one
//!   pipeline, then parks; the feed hands the oldest parked pop of a key back to the owner task on
//!   each `set` of it, which pops again. The pop script is atomic, so across processes every item
//!   goes to exactly one caller.
//!
//! The owner task runs every pop and read itself, on its own connection: the feed task's
//! connection only reads the stream, and the owner's stays free of blocked reads.

mod entry;
mod task;

use std::sync::Arc;
use std::time::Duration;

use redis::{Cmd, Value as RedisValue};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::exec::{backend, connection_error, pipelined, plan, stream_name, Step, STREAM_MAXLEN};
use super::scripts::{query_loaded, Scripts};
use super::{answer, Batch, Owner};
use crate::command::feed_queue;
use crate::command::{Call, Command, Get, ListPopFront, Reply, WaitFor, Watch};
use crate::error::{BackendErrorKind, KvError};
use entry::{Gen, Mark, StreamId};
use task::{Control, PopWaiter, Task, Wake};

/// How long the change stream lives without a feed refreshing it: after the last watcher or
/// waiter of every process is gone, writes stop adding to it at most this long after.
pub(crate) const STREAM_TTL: Duration = Duration::from_secs(60);

/// What the feed task connects with: a client of one server, or of a cluster (whose
/// connection the feed task then has to itself, as its `XREAD BLOCK` holds the stream's node's
/// connection while it waits).
// One per store, cloned when a feed task starts: its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub(crate) enum FeedClient {
    Server(redis::Client),
    Cluster(redis::cluster::ClusterClient),
}

/// An owner task's side of its feed: the channel to its feed task (while it runs) and the one
/// back.
pub(crate) struct Feed {
    stream: String,
    client: FeedClient,
    /// The library holding the feed's scripts (`feed_open`, `feed_read`, `feed_push_front`).
    scripts: Arc<Scripts>,
    control: Option<mpsc::UnboundedSender<(u64, Control)>>,
    /// How many messages were sent to the feed task (each is numbered).
    sent: u64,
    wakes_sender: mpsc::UnboundedSender<Wake>,
    /// What the feed task hands back: read by the owner task's loop.
    pub(crate) wakes: mpsc::UnboundedReceiver<Wake>,
    /// Arrival numbers of blocking pops.
    pops: u64,
}

impl Feed {
    pub(crate) fn new(client: FeedClient, prefix: &str, scripts: Arc<Scripts>) -> Feed {
        let (wakes_sender, wakes) = mpsc::unbounded_channel();
        Feed {
            stream: stream_name(prefix),
            client,
            scripts,
            control: None,
            sent: 0,
            wakes_sender,
            wakes,
            pops: 0,
        }
    }

    /// Sends a message to the feed task, starting one if none runs.
    fn send(&mut self, control: Control) {
        self.sent += 1;
        let control = match &self.control {
            Some(sender) => match sender.send((self.sent, control)) {
                Ok(()) => return,
                // It ended (it cannot without being told, unless it panicked): start another.
                Err(mpsc::error::SendError((_, control))) => control,
            },
            None => control,
        };
        let (sender, receiver) = mpsc::unbounded_channel();
        let task = Task::new(
            self.stream.clone(),
            self.client.clone(),
            Arc::clone(&self.scripts),
            receiver,
            self.wakes_sender.clone(),
        );
        tokio::spawn(task.run());
        let _ = sender.send((self.sent, control));
        self.control = Some(sender);
    }

    /// The feed task said it holds no one after message `seen`: if nothing was sent since, let
    /// it end (dropping its channel ends it).
    fn idle(&mut self, seen: u64) {
        if seen == self.sent {
            self.control = None;
        }
    }

    /// How many watchers and waiters the feed task holds.
    pub(crate) async fn count(&mut self) -> usize {
        if self.control.is_none() {
            return 0;
        }
        let (reply, count) = oneshot::channel();
        self.send(Control::Count { reply });
        count.await.unwrap_or(0)
    }

    /// The owner task stops: the feed hands out what the stream holds up to now, then ends every
    /// stream and drops every waiter (they get `Closed`).
    pub(crate) fn close(&mut self, connection: super::connection::Connection) {
        if self.control.is_some() {
            self.send(Control::Close { connection });
            self.control = None;
        }
    }

    fn open_command(&self) -> Cmd {
        let mut command = self.scripts.feed_open.call();
        command
            .arg(1)
            .arg(&self.stream)
            .arg(STREAM_TTL.as_millis() as u64);
        command
    }
}

/// Reads `open.lua`'s reply: `{generation, last id, entries added}`.
fn mark(reply: RedisValue) -> Result<Mark, KvError> {
    let unexpected = || {
        backend(
            BackendErrorKind::Protocol,
            "redis answered the change stream's open with an unexpected reply".to_owned(),
            None,
        )
    };
    match reply {
        RedisValue::ServerError(error) => Err(super::exec::backend_error("", &error)),
        RedisValue::Array(parts) => {
            let mut parts = parts.into_iter();
            let (Some(gen), Some(id), Some(pos)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(unexpected());
            };
            Ok(Mark {
                gen: Gen::parse(&entry::text(gen).ok_or_else(unexpected)?),
                id: entry::text(id)
                    .and_then(|id| StreamId::parse(&id))
                    .ok_or_else(unexpected)?,
                pos: entry::int(&pos).ok_or_else(unexpected)?,
            })
        }
        _ => Err(unexpected()),
    }
}

/// How many times a wait or pop the feed hands back tries on connection errors: the first call on
/// the owner's connection after an outage fails, and reconnects for the next.
const WOKEN_TRIES: u32 = 2;

/// Whether an error is worth one more try (the connection, not the call).
fn retry(error: &KvError) -> bool {
    error.is_connection() || error.is_timeout()
}

impl Owner {
    /// `watch`: takes the stream's end, then the feed sends every later change under the prefix.
    pub(super) async fn watch(&mut self, call: Call<Watch>) {
        let Call { args, reply } = call;
        let Watch { prefix, capacity } = args;
        match self.open().await {
            Ok(from) => {
                let (sender, receiver) = feed_queue::channel(capacity);
                self.feed.send(Control::Watch {
                    prefix,
                    sender,
                    from,
                });
                let _ = reply.send(Ok(receiver));
            }
            Err(error) => {
                let _ = reply.send(Err(error));
            }
        }
    }

    /// `wait_for`: a key that holds a value costs one read (and creates no stream); else the
    /// wait parks at the feed.
    pub(super) async fn wait_for(&mut self, call: Call<WaitFor>) {
        let Call { args, reply } = call;
        let WaitFor { key } = args;
        let (_, found) = self.get(&key, false).await;
        let result = match found {
            Ok(None) => return self.wait_opened(key, reply, 1).await,
            Ok(Some(value)) => Ok(value),
            Err(error) => Err(error),
        };
        let _ = reply.send(result);
    }

    /// Takes the stream's end and reads the key again in one pipeline: answers, or parks the
    /// wait at the feed from that end. A wait the feed hands back after a reconnection tries
    /// `tries` times: the owner's connection may only now notice the outage (its next call
    /// reconnects).
    async fn wait_opened(&mut self, key: String, reply: Reply<Arc<Value>>, tries: u32) {
        for tried in 1.. {
            if reply.is_closed() {
                return;
            }
            let (from, found) = self.get(&key, true).await;
            let result = match (from, found) {
                (_, Ok(Some(value))) => Ok(value),
                (_, Err(error)) | (Err(error), _) => Err(error),
                (Ok(from), Ok(None)) => {
                    self.feed.send(Control::Wait { key, reply, from });
                    return;
                }
            };
            if matches!(&result, Err(error) if retry(error)) && tried < tries {
                continue;
            }
            let _ = reply.send(result);
            return;
        }
    }

    /// `list_pop_front(..).wait(..)`: pops at once; if the list is empty, waits for pushes.
    pub(super) async fn blocking_pop(&mut self, call: Call<ListPopFront>) {
        let Call { args, reply } = call;
        let ListPopFront { key, count, wait } = args;
        let now = Instant::now();
        let deadline = now
            .checked_add(wait.unwrap_or_default())
            .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600));
        self.feed.pops += 1;
        let waiter = PopWaiter {
            seq: self.feed.pops,
            key,
            count,
            deadline,
            reply,
        };
        let (_, popped) = self.pop(&waiter.key, waiter.count, false).await;
        match popped {
            Ok(items) if items.is_empty() => self.pop_opened(waiter, 1).await,
            Ok(items) => self.hand_over(waiter, items).await,
            Err(error) => {
                let _ = waiter.reply.send(Err(error));
            }
        }
    }

    /// Takes the stream's end and pops in one pipeline: answers, or parks the pop at the feed.
    /// Tries `tries` times on a connection error, as [`wait_opened`](Self::wait_opened).
    async fn pop_opened(&mut self, waiter: PopWaiter, tries: u32) {
        for tried in 1.. {
            if waiter.reply.is_closed() {
                // It may have been woken by a push: the next waiter gets the wake-up instead.
                self.feed.send(Control::Rewake { key: waiter.key });
                return;
            }
            let (from, popped) = self.pop(&waiter.key, waiter.count, true).await;
            let result = match (from, popped) {
                (_, Ok(items)) if !items.is_empty() => return self.hand_over(waiter, items).await,
                (_, Err(error)) | (Err(error), _) => Err(error),
                (Ok(_), Ok(_)) if Instant::now() >= waiter.deadline => Ok(Vec::new()),
                (Ok(from), Ok(_)) => {
                    self.feed.send(Control::Pop { waiter, from });
                    return;
                }
            };
            if matches!(&result, Err(error) if retry(error)) && tried < tries {
                continue;
            }
            let _ = waiter.reply.send(result);
            return;
        }
    }

    /// Answers a blocking pop with the items it took; if its caller stopped waiting meanwhile,
    /// puts them back at the front of the list.
    async fn hand_over(&mut self, waiter: PopWaiter, items: Vec<Value>) {
        let PopWaiter { key, reply, .. } = waiter;
        if let Err(Ok(items)) = reply.send(Ok(items)) {
            self.push_front(&key, items).await;
        }
    }

    async fn push_front(&mut self, key: &str, items: Vec<Value>) {
        let mut command = self.scripts.feed_push_front.call();
        command
            .arg(2)
            .arg(key)
            .arg(&self.feed.stream)
            .arg(STREAM_MAXLEN);
        for item in &items {
            command.arg(item.to_string());
        }
        let outcome = query_loaded(&mut self.connection, &self.scripts, &command).await;
        match outcome.and_then(|reply| Ok(redis::from_redis_value::<i64>(reply)?)) {
            Ok(1) => {}
            Ok(_) => tracing::error!(
                key,
                ?items,
                "a blocking pop's caller left after the pop and the key no longer holds a list: \
                 its items are lost"
            ),
            Err(error) => tracing::error!(
                key,
                ?items,
                %error,
                "a blocking pop's caller left after the pop and its items could not be put back"
            ),
        }
    }

    /// What the feed task hands back.
    pub(super) async fn woken(&mut self, wake: Wake) {
        match wake {
            Wake::Recheck { key, reply } => self.wait_opened(key, reply, WOKEN_TRIES).await,
            Wake::Pop(waiter) => self.pop_opened(waiter, WOKEN_TRIES).await,
            Wake::Idle { seen } => self.feed.idle(seen),
        }
    }

    /// Creates the stream if missing and refreshes its TTL; answers where it ends.
    async fn open(&mut self) -> Result<Mark, KvError> {
        let command = self.feed.open_command();
        let reply = query_loaded(&mut self.connection, &self.scripts, &command)
            .await
            .map_err(|error| connection_error("redis change stream open failed", &error))?;
        mark(reply)
    }

    async fn get(&mut self, key: &str, opened: bool) -> (Result<Mark, KvError>, GetAnswer) {
        let key = key.to_owned();
        self.run_with(opened, |reply| {
            Command::from(Call {
                args: Get { key },
                reply,
            })
        })
        .await
    }

    async fn pop(
        &mut self,
        key: &str,
        count: usize,
        opened: bool,
    ) -> (Result<Mark, KvError>, Result<Vec<Value>, KvError>) {
        let key = key.to_owned();
        self.run_with(opened, |reply| {
            Command::from(Call {
                args: ListPopFront {
                    key,
                    count,
                    wait: None,
                },
                reply,
            })
        })
        .await
    }

    /// Runs a command of our own as the executor runs it (its pipelined entries, or alone), on
    /// the owner's connection, and waits for its answer. With `opened`, `open.lua` goes first in
    /// the same pipeline, and its mark comes back too (else a mark of no use).
    async fn run_with<T: Send + 'static>(
        &mut self,
        opened: bool,
        command: impl FnOnce(Reply<T>) -> Command,
    ) -> (Result<Mark, KvError>, Result<T, KvError>) {
        let (reply, answer_here) = oneshot::channel();
        let (mark_reply, mark_here) = oneshot::channel();
        let mut batch = Batch::new();
        if opened {
            batch.pipe.add_command(self.feed.open_command());
            let step = pipelined(1, mark_reply, |replies: Vec<RedisValue>| {
                mark(replies.into_iter().next().unwrap_or(RedisValue::Nil))
            });
            if let Step::Pipelined(open) = step {
                batch.queued.push(open);
            }
        }
        let alone = match plan(command(reply), &mut batch.pipe, &self.scripts, &self.stream) {
            Step::Pipelined(pipelined) => {
                batch.queued.push(pipelined);
                None
            }
            Step::Alone(alone) => Some(alone),
        };
        answer(batch, self.connection.clone(), Arc::clone(&self.scripts)).await;
        if let Some(alone) = alone {
            Box::pin(self.alone(alone)).await;
        }
        let dropped = || {
            backend(
                BackendErrorKind::Protocol,
                "the redis executor dropped a call".to_owned(),
                None,
            )
        };
        let from = if opened {
            mark_here.await.unwrap_or_else(|_| Err(dropped()))
        } else {
            Ok(Mark::default())
        };
        (from, answer_here.await.unwrap_or_else(|_| Err(dropped())))
    }
}

type GetAnswer = Result<Option<Arc<Value>>, KvError>;
