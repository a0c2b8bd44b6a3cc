//! The feed task: reads the change stream on a connection of its own and hands each entry to the
//! watchers, `wait_for` calls and blocking pops it concerns (see [`feed`](super)).
//!
//! It keeps one read on the wire at a time: `XREAD BLOCK` for one entry after its cursor (which
//! waits on the server, sending nothing while nothing happens), pipelined with `read.lua`, which
//! runs as soon as the `XREAD` returns and reads, in one atomic step, the entries after the cursor
//! and the stream's counters. Those counters say exactly how many entries were trimmed from the
//! stream before the feed read them. The owner task's messages (a new watcher, a waiter, a count)
//! are handled while the read waits on the server.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use redis::{AsyncConnectionConfig, RedisError, Value as RedisValue};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::entry::{self, Entry, Gen, Mark, StreamId};
use super::{FeedClient, STREAM_TTL};
use crate::command::feed_queue::FeedSender;
use crate::command::{Change, ChangeKind, Reply};
use crate::redis::connection::Connection;
use crate::redis::scripts::{self, query_loaded, Scripts};

/// How long one `XREAD BLOCK` waits on the server before the feed reads again anyway (refreshing
/// the stream's TTL and noticing a stream that vanished).
pub(crate) const BLOCK: Duration = Duration::from_secs(5);

/// How long past [`BLOCK`] a read may take before the connection is taken for dead.
const READ_MARGIN: Duration = Duration::from_secs(2);

/// How many entries one read takes at most.
const READ_COUNT: usize = 512;

/// How many of the entries read last the feed keeps, so that a watcher or waiter whose start the
/// feed has already read past gets them (its start was taken on the owner's connection a moment
/// before it reached the feed).
const RING: usize = 1024;

/// How long to wait before connecting again after a failure: doubled up to the maximum.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The feed's connection's name (`CLIENT LIST` shows it).
pub(crate) const CLIENT_NAME: &str = "ekv:feed";

/// A blocking pop waiting for items: held by the feed while parked, by the owner task while it
/// tries to pop.
#[derive(Debug)]
pub(crate) struct PopWaiter {
    /// Arrival order at the owner task: the oldest parked waiter of a key is woken first.
    pub(crate) seq: u64,
    pub(crate) key: String,
    pub(crate) count: usize,
    pub(crate) deadline: Instant,
    pub(crate) reply: Reply<Vec<Value>>,
}

/// What the owner task tells its feed.
pub(crate) enum Control {
    /// A new watcher: every change under `prefix` after `from`.
    Watch {
        prefix: String,
        sender: FeedSender,
        from: Mark,
    },
    /// A `wait_for` whose key had no value at `from`.
    Wait {
        key: String,
        reply: Reply<Arc<Value>>,
        from: Mark,
    },
    /// A blocking pop whose list was empty at `from`.
    Pop { waiter: PopWaiter, from: Mark },
    /// A woken blocking pop's caller had stopped waiting: wake the next one of `key`.
    Rewake { key: String },
    /// How many watchers and waiters are held (for `stats`).
    Count { reply: oneshot::Sender<usize> },
    /// The owner task stops: read the stream up to now (on the owner's connection, free now),
    /// hand out what it holds, and end every stream.
    Close { connection: Connection },
}

/// What the feed hands back to the owner task, which owns the connection that reads and pops.
pub(crate) enum Wake {
    /// A `wait_for` to read again: its key may have been written while the feed could not see
    /// (after a reconnection, or changes lost from the stream).
    Recheck {
        key: String,
        reply: Reply<Arc<Value>>,
    },
    /// A blocking pop to try again: its list got items (or may have).
    Pop(PopWaiter),
    /// The feed holds no one: it may end, unless the owner task sent something after message
    /// number `seen`.
    Idle { seen: u64 },
}

struct Watcher {
    prefix: String,
    sender: FeedSender,
    from: Mark,
}

struct Waiter {
    reply: Reply<Arc<Value>>,
    from: Mark,
}

struct Parked {
    waiter: PopWaiter,
    from: Mark,
}

/// Where a watcher's or waiter's start is, against what the feed has read.
enum Place {
    /// At or after the feed's cursor: it gets what the feed reads next.
    Ahead,
    /// In a generation of the stream the feed has left: what it missed is unknown.
    Stale,
    /// Before the cursor: it gets the kept entries from `start` on, after `lost` it cannot get.
    Behind { start: usize, lost: u64 },
}

/// What the one operation on the server in progress gives.
enum Io {
    Connected(Result<Connection, RedisError>),
    Read(Result<RedisValue, RedisError>),
}

type IoFuture = Pin<Box<dyn Future<Output = Io> + Send>>;

pub(crate) struct Task {
    stream: String,
    client: FeedClient,
    /// The library holding `feed_read` (loaded again if the server lost it).
    scripts: Arc<Scripts>,
    control: mpsc::UnboundedReceiver<(u64, Control)>,
    wakes: mpsc::UnboundedSender<Wake>,
    /// The number of the last message handled.
    seen: u64,
    /// `seen` when the feed last said it was idle.
    idle_said: Option<u64>,
    /// The last entry read; `None` until the first watcher or waiter gives a start.
    at: Option<Mark>,
    ring: VecDeque<Entry>,
    watchers: Vec<Watcher>,
    waiters: HashMap<String, Vec<Waiter>>,
    /// Parked blocking pops by key, oldest first.
    pops: HashMap<String, Vec<Parked>>,
    /// Send every waiter back to be read again after the next read (a reconnection).
    recheck: bool,
}

impl Task {
    pub(crate) fn new(
        stream: String,
        client: FeedClient,
        scripts: Arc<Scripts>,
        control: mpsc::UnboundedReceiver<(u64, Control)>,
        wakes: mpsc::UnboundedSender<Wake>,
    ) -> Task {
        Task {
            stream,
            client,
            scripts,
            control,
            wakes,
            seen: 0,
            idle_said: None,
            at: None,
            ring: VecDeque::new(),
            watchers: Vec::new(),
            waiters: HashMap::new(),
            pops: HashMap::new(),
            recheck: false,
        }
    }

    pub(crate) async fn run(mut self) {
        let mut connection: Option<Connection> = None;
        let mut delay = Duration::ZERO;
        loop {
            let mut io: Option<IoFuture> = match (&connection, self.at) {
                (_, None) => None,
                (None, Some(_)) => Some(Box::pin(connect(
                    self.client.clone(),
                    delay,
                    self.recheck.then(|| Arc::clone(&self.scripts)),
                ))),
                // After a reconnection, read at once: a stream that vanished is made again now,
                // not after a block.
                (Some(connection), Some(at)) => Some(Box::pin(read(
                    connection.clone(),
                    Arc::clone(&self.scripts),
                    self.stream.clone(),
                    at,
                    !self.recheck,
                ))),
            };
            let done = loop {
                let deadline = self.next_deadline();
                tokio::select! {
                    biased;
                    message = self.control.recv() => match message {
                        None => return, // the owner task is gone
                        Some((seen, Control::Close { connection })) => {
                            self.seen = seen;
                            drop(io);
                            self.close(connection).await;
                            return;
                        }
                        Some((seen, control)) => {
                            self.seen = seen;
                            let started = self.at.is_some();
                            self.handle(control);
                            if !started && self.at.is_some() {
                                break None; // now there is something to read
                            }
                            self.say_if_idle();
                        }
                    },
                    () = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)),
                        if deadline.is_some() => self.time_out_pops(),
                    done = async { io.as_mut().expect("checked").await }, if io.is_some() => {
                        break Some(done);
                    }
                }
            };
            match done {
                None => {}
                Some(Io::Connected(Ok(c))) => connection = Some(c),
                Some(Io::Connected(Err(error))) => {
                    tracing::warn!(%error, stream = %self.stream, "change feed cannot connect");
                    delay = (delay * 2).clamp(BACKOFF_MIN, BACKOFF_MAX);
                }
                Some(Io::Read(Ok(reply))) => {
                    delay = Duration::ZERO;
                    self.apply(reply);
                    if std::mem::take(&mut self.recheck) {
                        self.recheck_all();
                    }
                    self.prune();
                    self.say_if_idle();
                }
                Some(Io::Read(Err(error))) => {
                    tracing::warn!(%error, stream = %self.stream, "change feed read failed; reconnecting");
                    connection = None;
                    self.recheck = true;
                    delay = (delay * 2).clamp(BACKOFF_MIN, BACKOFF_MAX);
                }
            }
        }
    }

    fn handle(&mut self, control: Control) {
        match control {
            Control::Watch {
                prefix,
                sender,
                from,
            } => self.add_watcher(prefix, sender, from),
            Control::Wait { key, reply, from } => self.add_waiter(key, reply, from),
            Control::Pop { waiter, from } => self.add_pop(waiter, from),
            Control::Rewake { key } => self.wake_pop(&key, None),
            Control::Count { reply } => {
                self.prune();
                let _ = reply.send(self.count());
            }
            Control::Close { .. } => unreachable!("handled by the loop"),
        }
    }

    /// The first start sets the cursor.
    fn start(&mut self, from: Mark) -> Mark {
        *self.at.get_or_insert(from)
    }

    fn place(&self, from: &Mark) -> Place {
        let Some(at) = self.at else {
            return Place::Ahead;
        };
        if from.gen > at.gen {
            return Place::Ahead;
        }
        if from.gen < at.gen {
            return Place::Stale;
        }
        if from.id >= at.id {
            return Place::Ahead;
        }
        let start = self.ring.partition_point(|entry| entry.id <= from.id);
        let first = self.ring.get(start).map_or(at.pos + 1, |entry| entry.pos);
        Place::Behind {
            start,
            lost: first.saturating_sub(from.pos + 1),
        }
    }

    fn add_watcher(&mut self, prefix: String, sender: FeedSender, from: Mark) {
        self.start(from);
        let mut watcher = Watcher {
            prefix,
            sender,
            from,
        };
        match self.place(&from) {
            Place::Ahead => {}
            Place::Stale => {
                watcher.sender.send(missed(u64::MAX));
                watcher.from = self.at.expect("started");
            }
            Place::Behind { start, lost } => {
                if lost > 0 {
                    watcher.sender.send(missed(lost));
                }
                for entry in self.ring.range_mut(start..) {
                    if let Some(raw) = &mut entry.change {
                        if raw.key.starts_with(&watcher.prefix) {
                            if let Some(change) = raw.change() {
                                watcher.sender.send(change);
                            }
                        }
                    }
                }
                watcher.from = self.at.expect("started");
            }
        }
        self.watchers.push(watcher);
    }

    fn add_waiter(&mut self, key: String, reply: Reply<Arc<Value>>, from: Mark) {
        self.start(from);
        match self.place(&from) {
            Place::Ahead => {}
            Place::Stale | Place::Behind { lost: 1.., .. } => {
                let _ = self.wakes.send(Wake::Recheck { key, reply });
                return;
            }
            Place::Behind { start, lost: 0 } => {
                for entry in self.ring.range_mut(start..) {
                    if let Some(raw) = entry.change.as_mut().filter(|raw| raw.key == key) {
                        if let Some(Change {
                            kind: ChangeKind::Set(value),
                            ..
                        }) = raw.change()
                        {
                            let _ = reply.send(Ok(value));
                            return;
                        }
                    }
                }
            }
        }
        self.waiters
            .entry(key)
            .or_default()
            .push(Waiter { reply, from });
    }

    fn add_pop(&mut self, waiter: PopWaiter, from: Mark) {
        self.start(from);
        let missed_a_push = match self.place(&from) {
            Place::Ahead => false,
            Place::Stale | Place::Behind { lost: 1.., .. } => true,
            Place::Behind { start, lost: 0 } => self.ring.range(start..).any(|entry| {
                entry
                    .change
                    .as_ref()
                    .is_some_and(|raw| raw.is_set() && raw.key == waiter.key)
            }),
        };
        if missed_a_push {
            let _ = self.wakes.send(Wake::Pop(waiter));
            return;
        }
        let parked = self.pops.entry(waiter.key.clone()).or_default();
        let at = parked.partition_point(|p| p.waiter.seq < waiter.seq);
        parked.insert(at, Parked { waiter, from });
    }

    /// Hands the oldest live parked pop of `key` back to the owner task to try again: one whose
    /// start is before the entry `after` (a push), or any (`None`).
    fn wake_pop(&mut self, key: &str, after: Option<(Gen, StreamId)>) {
        let Some(parked) = self.pops.get_mut(key) else {
            return;
        };
        parked.retain(|p| !p.waiter.reply.is_closed());
        let eligible = parked.iter().position(|p| match after {
            None => true,
            Some((gen, id)) => p.from.gen == gen && p.from.id < id,
        });
        if let Some(index) = eligible {
            let Parked { waiter, .. } = parked.remove(index);
            let _ = self.wakes.send(Wake::Pop(waiter));
        }
        if parked.is_empty() {
            self.pops.remove(key);
        }
    }

    /// Takes in one reply of `read.lua`: `{generation, entries added, length, entries}`.
    fn apply(&mut self, reply: RedisValue) {
        let RedisValue::Array(parts) = reply else {
            tracing::warn!(stream = %self.stream, "change feed read gave an unexpected reply");
            return;
        };
        let mut parts = parts.into_iter();
        let (Some(gen), Some(added), Some(length), Some(RedisValue::Array(entries))) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            tracing::warn!(stream = %self.stream, "change feed read gave an unexpected reply");
            return;
        };
        let gen = Gen::parse(&entry::text(gen).unwrap_or_default());
        let gone = entry::int(&added)
            .unwrap_or(0)
            .saturating_sub(entry::int(&length).unwrap_or(0));
        let Some(mut at) = self.at else { return };
        if gen != at.gen {
            // The stream vanished and was made again: the entries came from its start.
            self.switch(gen, gone);
            at = self.at.expect("started");
        } else if gone > at.pos {
            self.trimmed(gone);
            at = self.at.expect("started");
        }
        for raw in entries {
            let pos = at.pos + 1;
            let Some(mut entry) = entry::decode(raw, pos) else {
                tracing::warn!(stream = %self.stream, "change feed skipped an entry it cannot read");
                continue;
            };
            at.id = entry.id;
            at.pos = pos;
            self.publish(&mut entry, gen);
            if self.ring.len() == RING {
                self.ring.pop_front();
            }
            self.ring.push_back(entry);
        }
        self.at = Some(at);
    }

    /// Hands one entry to every watcher, waiter and parked pop it concerns.
    fn publish(&mut self, entry: &mut Entry, gen: Gen) {
        let Some(raw) = entry.change.as_mut() else {
            return;
        };
        let id = entry.id;
        let after = |from: &Mark| from.gen == gen && from.id < id;
        let mut change: Option<Option<Change>> = None;
        for watcher in &self.watchers {
            if after(&watcher.from) && raw.key.starts_with(&watcher.prefix) {
                if let Some(change) = change.get_or_insert_with(|| raw.change()) {
                    // Never waits: a full ring drops its oldest change (the reader gets Lagged).
                    watcher.sender.send(change.clone());
                }
            }
        }
        if !raw.is_set() {
            return;
        }
        if let Some(waiters) = self.waiters.get_mut(&raw.key) {
            if waiters.iter().any(|waiter| after(&waiter.from)) {
                if let Some(Change {
                    kind: ChangeKind::Set(value),
                    ..
                }) = change.get_or_insert_with(|| raw.change())
                {
                    let (ready, waiting): (Vec<Waiter>, Vec<Waiter>) = std::mem::take(waiters)
                        .into_iter()
                        .partition(|waiter| after(&waiter.from));
                    for waiter in ready {
                        let _ = waiter.reply.send(Ok(Arc::clone(value)));
                    }
                    if waiting.is_empty() {
                        self.waiters.remove(&raw.key);
                    } else {
                        *waiters = waiting;
                    }
                }
            }
        }
        let key = raw.key.clone();
        self.wake_pop(&key, Some((gen, id)));
    }

    /// The stream is a new generation: everyone who started in another one may have missed
    /// writes nobody recorded.
    fn switch(&mut self, gen: Gen, gone: u64) {
        tracing::warn!(stream = %self.stream, "change stream vanished and was made again; watchers are told they lagged");
        self.ring.clear();
        let start = Mark {
            gen,
            id: StreamId::default(),
            pos: gone,
        };
        self.at = Some(start);
        for watcher in &mut self.watchers {
            if watcher.from.gen < gen {
                watcher.sender.send(missed(u64::MAX));
                watcher.from = start;
            }
        }
        self.send_back(|from| from.gen != gen);
    }

    /// Entries after the cursor were trimmed (MAXLEN) before the feed read them.
    fn trimmed(&mut self, gone: u64) {
        let mut at = self.at.expect("started");
        tracing::warn!(stream = %self.stream, lost = gone - at.pos, "change stream trimmed past its feed");
        for watcher in &self.watchers {
            if watcher.from.gen == at.gen {
                let lost = gone.saturating_sub(at.pos.max(watcher.from.pos));
                if lost > 0 {
                    watcher.sender.send(missed(lost));
                }
            }
        }
        self.send_back(|from| from.gen == at.gen && from.pos < gone);
        self.ring.clear();
        at.pos = gone;
        self.at = Some(at);
    }

    /// Sends the waiters and parked pops whose start passes `test` back to the owner task.
    fn send_back(&mut self, test: impl Fn(&Mark) -> bool) {
        for (key, waiters) in &mut self.waiters {
            for waiter in std::mem::take(waiters) {
                if test(&waiter.from) {
                    let key = key.clone();
                    let _ = self.wakes.send(Wake::Recheck {
                        key,
                        reply: waiter.reply,
                    });
                } else {
                    waiters.push(waiter);
                }
            }
        }
        self.waiters.retain(|_, waiters| !waiters.is_empty());
        for parked in self.pops.values_mut() {
            for p in std::mem::take(parked) {
                if test(&p.from) {
                    let _ = self.wakes.send(Wake::Pop(p.waiter));
                } else {
                    parked.push(p);
                }
            }
        }
        self.pops.retain(|_, parked| !parked.is_empty());
    }

    /// After a reconnection: every waiter and parked pop is read again.
    fn recheck_all(&mut self) {
        self.send_back(|_| true);
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.pops
            .values()
            .flatten()
            .map(|p| p.waiter.deadline)
            .min()
    }

    /// Answers the parked pops whose time is up with no items.
    fn time_out_pops(&mut self) {
        let now = Instant::now();
        for parked in self.pops.values_mut() {
            let (due, waiting): (Vec<Parked>, Vec<Parked>) = std::mem::take(parked)
                .into_iter()
                .partition(|p| p.waiter.deadline <= now);
            for p in due {
                let _ = p.waiter.reply.send(Ok(Vec::new()));
            }
            *parked = waiting;
        }
        self.pops.retain(|_, parked| !parked.is_empty());
        self.say_if_idle();
    }

    /// Forgets dropped watchers and abandoned waits.
    fn prune(&mut self) {
        self.watchers.retain(|watcher| !watcher.sender.is_closed());
        self.waiters.retain(|_, waiters| {
            waiters.retain(|waiter| !waiter.reply.is_closed());
            !waiters.is_empty()
        });
        self.pops.retain(|_, parked| {
            parked.retain(|p| !p.waiter.reply.is_closed());
            !parked.is_empty()
        });
    }

    fn count(&self) -> usize {
        self.watchers.len()
            + self.waiters.values().map(Vec::len).sum::<usize>()
            + self.pops.values().map(Vec::len).sum::<usize>()
    }

    fn say_if_idle(&mut self) {
        if self.count() == 0 && self.idle_said != Some(self.seen) {
            self.idle_said = Some(self.seen);
            let _ = self.wakes.send(Wake::Idle { seen: self.seen });
        }
    }

    /// Reads what the stream holds up to now and hands it out; then everything held is dropped,
    /// which ends the watchers' streams and answers waiters with `Closed`.
    async fn close(&mut self, mut connection: Connection) {
        let Some(mut at) = self.at else { return };
        loop {
            let command = read_command(&self.scripts, &self.stream, at);
            let reply = query_loaded(&mut connection, &self.scripts, &command).await;
            let Ok(reply) = reply else { break };
            let read = match &reply {
                RedisValue::Array(parts) => match parts.get(3) {
                    Some(RedisValue::Array(entries)) => entries.len(),
                    _ => 0,
                },
                _ => 0,
            };
            self.apply(reply);
            match self.at {
                Some(now) if read == READ_COUNT && now != at => at = now,
                _ => break,
            }
        }
    }
}

fn missed(count: u64) -> Change {
    Change {
        key: String::new(),
        kind: ChangeKind::Missed(count),
    }
}

///
/// With `reload` (a reconnection after a failure, which may be a server restart that lost the
/// scripts' library), the library is loaded again on the new connection first.
async fn connect(client: FeedClient, delay: Duration, reload: Option<Arc<Scripts>>) -> Io {
    tokio::time::sleep(delay).await;
    let connected = async {
        match client {
            FeedClient::Server(client) => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    // The read blocks on the server; `read` bounds it itself.
                    .set_response_timeout(None);
                let mut connection = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                // Named, so that `CLIENT LIST` tells it from the owner task's connection.
                redis::cmd("CLIENT")
                    .arg("SETNAME")
                    .arg(CLIENT_NAME)
                    .query_async::<()>(&mut connection)
                    .await?;
                Ok(Connection::Node(connection))
            }
            FeedClient::Cluster(client) => {
                // A cluster connection of the feed's own; `read` bounds each read itself.
                let config = redis::cluster::ClusterConfig::new()
                    .set_connection_timeout(CONNECT_TIMEOUT)
                    .set_response_timeout(BLOCK + READ_MARGIN + READ_MARGIN);
                let connection = client.get_async_connection_with_config(config).await?;
                Ok(Connection::Cluster(connection))
            }
        }
    };
    let connected = connected.await;
    if let (Ok(connection), Some(scripts)) = (&connected, reload) {
        if let Err(error) = scripts::load(&mut connection.clone(), &scripts).await {
            tracing::warn!(%error, "change feed cannot load the scripts into Redis again");
        }
    }
    Io::Connected(connected)
}

/// `read.lua`'s command.
fn read_command(scripts: &Scripts, stream: &str, at: Mark) -> redis::Cmd {
    let mut command = scripts.feed_read.call();
    command
        .arg(1)
        .arg(stream)
        .arg(STREAM_TTL.as_millis() as u64)
        .arg(at.id.to_string())
        .arg(READ_COUNT)
        .arg(at.gen.to_string());
    command
}

/// One read: `XREAD BLOCK` for an entry after the cursor, then `read.lua` at once after it.
///
/// If the server lost the scripts' library (a restart without persistence), it is loaded again
/// here and the read fails: the task reads again at once, as after any failed read.
async fn read(
    mut connection: Connection,
    scripts: Arc<Scripts>,
    stream: String,
    at: Mark,
    block: bool,
) -> Io {
    let mut pipe = redis::pipe();
    if block {
        pipe.cmd("XREAD")
            .arg("BLOCK")
            .arg(BLOCK.as_millis() as u64)
            .arg("COUNT")
            .arg(1)
            .arg("STREAMS")
            .arg(&stream)
            .arg(at.id.to_string())
            .ignore();
    }
    pipe.add_command(read_command(&scripts, &stream, at));
    let read = pipe.query_async::<(RedisValue,)>(&mut connection);
    let result = match tokio::time::timeout(BLOCK + READ_MARGIN, read).await {
        Ok(result) => result.map(|(reply,)| reply),
        Err(_) => Err(RedisError::from((
            redis::ErrorKind::Io,
            "change feed read timed out",
        ))),
    };
    if scripts::outcome_not_loaded(&result) {
        if let Err(error) = scripts::load(&mut connection, &scripts).await {
            tracing::warn!(%error, "cannot load the scripts into Redis again");
        }
        return Io::Read(Err(RedisError::from((
            redis::ErrorKind::Io,
            "the server had lost the scripts (loaded again)",
        ))));
    }
    Io::Read(result)
}
