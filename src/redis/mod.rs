//! The Redis executor: an owner task that runs the handle's [`Command`]s on a Redis server instead
//! of a local map. Built by [`KvBuilder::redis`](crate::KvBuilder::redis); only with the `redis` cargo feature.
//!
//! Nothing above the command enum knows which executor runs: a [`KvHandle`](crate::KvHandle) from
//! [`KvBuilder::redis`](crate::KvBuilder::redis) is the same type, with the same calls, as one from
//! [`KvBuilder::spawn`](crate::KvBuilder::spawn). This module is the Redis side of that seam:
//! - the owner loop here drains the mailbox in batches and sends each batch's simple commands as
//!   **one pipeline** (one round trip for many concurrent callers), with up to [`IN_FLIGHT`]
//!   pipelines on the wire at once;
//! - [`exec`] turns one command into pipeline entries and reads its answer back;
//! - [`scripts`] holds the Lua scripts of the data layout (`docs/redis.md`), one per call that
//!   names keys: each is done by the server in one step, pipelined, never retried;
//! - [`optimistic`] runs `update` and `transaction`, whose closures run here, as
//!   `WATCH`/`MULTI`/`EXEC` retries.
//!
//! The owner task is the only user of its connection for `WATCH`. Pipelines may overlap (their
//! commands were all pending at once, so any order among them is a valid one), but a command that
//! runs alone (`update`, `transaction`, `scan_prefix`, ...) waits until no pipeline is in flight
//! and holds the connection to itself until it is done. That is what `WATCH` needs (a watch
//! belongs to the connection, so no other request may slip in between `WATCH` and `EXEC`), and it
//! keeps every call after the calls that were answered before it was sent. `stats` counts the
//! keys on a task of its own, beside the other calls (a `SCAN` cannot disturb a `WATCH`).

pub(crate) mod client;
mod connection;
mod exec;
mod feed;
mod optimistic;
mod scripts;
mod slots;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Pipeline, Value as RedisValue};
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::closure::StoreId;
use crate::command::{
    refuse_the_rest, Call, Command, Message, Reply, ScanPrefix, Transaction, Update,
};
use crate::error::{BackendErrorKind, KvError};
use crate::stats::Stats;
use connection::Connection;
use exec::{connection_error, plan, Alone, Pipelined, Step};
use scripts::Scripts;

/// How many commands the owner takes from the mailbox at once, and so the most one pipeline
/// carries. Larger than in-process: here each batch costs a network round trip.
const BATCH: usize = 512;

/// How many batches' pipelines may be in flight at once. While one is on the wire, the next batch
/// is formed and sent behind it, so the server never idles waiting for the owner task. Commands in
/// different batches in flight were all pending at once, so any order between them is valid.
const IN_FLIGHT: usize = 4;

/// How long a connection attempt may take before the call fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long the server may take to answer before the call fails, so that no call hangs on a
/// server that went away without closing the connection.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// How many keys one `SCAN` step asks for.
const SCAN_COUNT: usize = 1000;

/// Connects to the Redis server at `url` and starts an owner task running commands there;
/// returns the sender of its mailbox. [`KvBuilder::redis`](crate::KvBuilder::redis) is the public
/// face of this.
pub(crate) async fn connect(
    url: &str,
    prefix: String,
    mailbox_capacity: usize,
    store: StoreId,
) -> Result<mpsc::Sender<Message>, KvError> {
    let client = client::open(url).await?;
    let feed = feed::FeedClient::Server(client.clone());
    let settings = client.get_connection_info().redis_settings();
    if settings.protocol() == redis::ProtocolVersion::RESP3 {
        // Under RESP3 the connection manager reconnects a dropped connection silently, so an
        // `EXEC` could run on a new connection that never saw the `WATCH`, and an optimistic call
        // would overwrite another client's write instead of retrying.
        return Err(exec::backend(
            BackendErrorKind::Config,
            "RESP3 connections are not supported (a reconnection between WATCH and EXEC would go \
             unnoticed); use a RESP2 URL, without `protocol=resp3`"
                .to_owned(),
            None,
        ));
    }
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        // Few, short reconnection retries: a call on a server that is down fails within about
        // a second instead of waiting out a long backoff; the next call tries again.
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(200));
    let connection = ConnectionManager::new_with_config(client, config)
        .await
        .map_err(|error| connection_error("cannot connect to Redis", &error))?;
    start(
        Connection::Server(connection),
        None,
        feed,
        prefix,
        mailbox_capacity,
        store,
    )
    .await
}

/// Connects to the Redis Cluster that the seed node URLs `urls` belong to and starts an owner
/// task running commands there; returns the sender of its mailbox.
/// [`KvBuilder::redis_cluster`](crate::KvBuilder::redis_cluster) is the public face of this.
///
/// The cluster connection is built with **no retries**: the `redis` crate resends a request on
/// its own after a `MOVED` or `ASK`, after `TRYAGAIN`/`CLUSTERDOWN`/`LOADING`, a timeout or a lost
/// connection, and a pipeline whole when any one of its replies asks for that: a script that had
/// run (an `incr`) would run twice. So a call refused that way fails with
/// [`KvError::Backend`] (the `redis` crate reads the slot map again on a redirection, and the
/// next calls go to the right node), but for a pipeline of one command refused with `MOVED`,
/// which did not run and is sent again once ([`send`]); `update` and `transaction`, which can
/// tell, start over (`optimistic.rs`).
pub(crate) async fn connect_cluster(
    urls: Vec<String>,
    prefix: String,
    mailbox_capacity: usize,
    store: StoreId,
) -> Result<mpsc::Sender<Message>, KvError> {
    let configure = |builder: redis::cluster::ClusterClientBuilder| {
        builder
            .retries(0)
            .connection_timeout(CONNECT_TIMEOUT)
            .response_timeout(RESPONSE_TIMEOUT)
    };
    let (client, opener) = client::open_cluster(urls, configure).await?;
    let connection = client
        .get_async_connection()
        .await
        .map_err(|error| connection_error("cannot connect to the Redis Cluster", &error))?;
    let cluster = slots::Cluster::new(&prefix, opener, CONNECT_TIMEOUT, RESPONSE_TIMEOUT);
    let feed = feed::FeedClient::Cluster(client);
    start(
        Connection::Cluster(connection),
        Some(cluster),
        feed,
        prefix,
        mailbox_capacity,
        store,
    )
    .await
}

/// Loads the scripts over `connection` and starts the owner task.
async fn start(
    mut connection: Connection,
    cluster: Option<slots::Cluster>,
    feed: feed::FeedClient,
    prefix: String,
    mailbox_capacity: usize,
    store: StoreId,
) -> Result<mpsc::Sender<Message>, KvError> {
    let scripts = Arc::new(Scripts::new());
    load_scripts(&mut connection, &scripts).await?;
    let feed = feed::Feed::new(feed, &prefix, Arc::clone(&scripts));
    let (sender, mailbox) = mpsc::channel(mailbox_capacity);
    // On a cluster without a hash tag the stream cannot share the keys' slots: writes never
    // name it (`slots.rs`).
    let stream = match &cluster {
        Some(cluster) if !cluster.tagged => String::new(),
        _ => exec::stream_name(&prefix),
    };
    let owner = Owner {
        connection,
        cluster,
        scripts,
        stream,
        prefix,
        store,
        commands: 0,
        feed,
    };
    tokio::spawn(owner.run(mailbox));
    Ok(sender)
}

/// The Redis owner task's state.
struct Owner {
    /// The owner task's connection. Pipelines in flight (each answered by a task of its own) use
    /// clones of it, which share the one connection; `WATCH` sequences run only when none is in
    /// flight (see the module docs), on this connection or, on a cluster, on one of `cluster`'s.
    connection: Connection,
    /// On a Redis Cluster: its rules and node connections (`slots.rs`).
    cluster: Option<slots::Cluster>,
    scripts: Arc<Scripts>,
    /// The builder's prefix: the namespace that `stats` counts.
    prefix: String,
    /// The store's change stream (the prefix and `ekv:changes`), which writes add to while it
    /// exists; empty on a cluster handle without a hash tag, whose writes name no stream.
    stream: String,
    /// The store's id, which closures run under (see [`closure`](crate::closure)).
    store: StoreId,
    /// Commands handled, for [`Stats::commands`].
    commands: u64,
    /// Watchers, `wait_for` calls and blocking pops: the change feed (see [`feed`]).
    feed: feed::Feed,
}

/// The simple commands of one batch: their entries in one pipeline, and their callers. On a
/// cluster, one such batch per hash slot in `slots` (a pipeline goes to one node: the cluster
/// connection routes it by its first key), sent side by side.
struct Batch {
    pipe: Pipeline,
    queued: Vec<Pipelined>,
    slots: HashMap<u16, Batch>,
}

impl Batch {
    fn new() -> Batch {
        let mut pipe = redis::pipe();
        // One reply per entry, server errors in place: one command's error is its caller's
        // alone, not the whole batch's.
        pipe.ignore_errors();
        Batch {
            pipe,
            queued: Vec::new(),
            slots: HashMap::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.queued.is_empty() && self.slots.is_empty()
    }

    /// Queues a command planned into `pipe` (its own) in the batch of its slot.
    fn queue_in_slot(&mut self, pipe: Pipeline, pipelined: Pipelined) {
        let slot = slots::slot_of(pipe.cmd_iter()).unwrap_or(0);
        let batch = self.slots.entry(slot).or_insert_with(Batch::new);
        for command in pipe.cmd_iter() {
            batch.pipe.add_command(command.clone());
        }
        batch.queued.push(pipelined);
    }
}

impl Owner {
    /// Runs until every handle is gone or a shutdown command arrives.
    async fn run(mut self, mut mailbox: mpsc::Receiver<Message>) {
        tracing::info!("ephemeral-kv redis owner task started");
        let mut commands = Vec::with_capacity(BATCH);
        let mut in_flight = FuturesUnordered::new();
        let mut shutdown: Option<Reply<()>> = None;
        loop {
            tokio::select! {
                biased;
                Some(_) = in_flight.next(), if !in_flight.is_empty() => continue,
                // A blocking pop to try again, or a wait to read again: run alone, as a command.
                Some(wake) = self.feed.wakes.recv() => {
                    while in_flight.next().await.is_some() {}
                    self.woken(wake).await;
                    continue;
                }
                received = mailbox.recv_many(&mut commands, BATCH), if in_flight.len() < IN_FLIGHT => {
                    if received == 0 {
                        break; // every handle is gone
                    }
                }
            }
            let mut batch = Batch::new();
            for Message { command, span } in commands.drain(..) {
                let span = span.into_span();
                self.commands += 1;
                // The caller's span is entered only around synchronous code; the awaited work
                // below is instrumented with it instead (a guard must not be held across awaits).
                let alone = span.in_scope(|| {
                    let described =
                        tracing::enabled!(tracing::Level::DEBUG).then(|| command.described());
                    let (outcome, alone) = self.place(command, &mut batch);
                    if let Some(described) = described {
                        described.log(outcome, Duration::ZERO);
                    }
                    alone
                });
                match alone {
                    None => {}
                    Some(alone) => {
                        let earlier = std::mem::replace(&mut batch, Batch::new());
                        let shutdown_reply = async {
                            // Everything received before it is answered first, so calls keep
                            // their order, and nothing else uses the connection while it runs.
                            while in_flight.next().await.is_some() {}
                            answer(earlier, self.connection.clone(), Arc::clone(&self.scripts))
                                .await;
                            match alone {
                                Alone::Shutdown(call) => Some(call.reply),
                                alone => {
                                    self.alone(alone).await;
                                    None
                                }
                            }
                        }
                        .instrument(span)
                        .await;
                        if let Some(reply) = shutdown_reply {
                            shutdown = Some(reply);
                            break;
                        }
                    }
                }
            }
            if !batch.is_empty() {
                // A task of its own, so that decoding the replies (JSON parsing) runs beside the
                // owner task, on another worker thread, while it forms the next batch.
                in_flight.push(tokio::spawn(answer(
                    batch,
                    self.connection.clone(),
                    Arc::clone(&self.scripts),
                )));
            }
            if shutdown.is_some() {
                // As in-process: commands queued after the shutdown get `KvError::Closed`, and so
                // do pending `wait_for` calls, dropped with the owner.
                refuse_the_rest(&mut mailbox).await;
                break;
            }
        }
        while in_flight.next().await.is_some() {}
        // Watchers get the changes made up to now, then their streams end.
        self.feed.close(self.connection.clone());
        drop(mailbox);
        tracing::info!("ephemeral-kv redis owner task stopped");
        if let Some(reply) = shutdown {
            let _ = reply.send(Ok(()));
        }
    }

    /// Plans `command` into `batch` (on a cluster, into the batch of its slot, after the
    /// cluster's rules: `slots.rs`), or hands it back to run alone. Also says which, for the
    /// debug line.
    fn place(&self, command: Command, batch: &mut Batch) -> (&'static str, Option<Alone>) {
        let Some(cluster) = &self.cluster else {
            return match plan(command, &mut batch.pipe, &self.scripts, &self.stream) {
                Step::Pipelined(pipelined) => {
                    batch.queued.push(pipelined);
                    ("pipelined", None)
                }
                Step::Alone(alone) => ("run alone", Some(alone)),
            };
        };
        let commands = match cluster.route(command) {
            slots::Routed::Plan(command) => vec![command],
            slots::Routed::Split(commands) => commands,
            slots::Routed::Refused => return ("refused", None),
        };
        let mut alone = None;
        for command in commands {
            let mut pipe = redis::pipe();
            match plan(command, &mut pipe, &self.scripts, &self.stream) {
                Step::Pipelined(pipelined) => batch.queue_in_slot(pipe, pipelined),
                Step::Alone(step) => alone = Some(step),
            }
        }
        match alone {
            Some(alone) => ("run alone", Some(alone)),
            None => ("pipelined", None),
        }
    }

    /// What `update` and `transaction` run with: the scripts and stream, and where their
    /// `WATCH`/`MULTI`/`EXEC` go (this connection, or a cluster's node connections).
    fn optimistic(&mut self) -> (optimistic::Env<'_>, optimistic::Target<'_>) {
        let env = optimistic::Env {
            scripts: &self.scripts,
            stream: &self.stream,
            store: self.store,
        };
        let target = match &mut self.cluster {
            None => optimistic::Target::Server(&mut self.connection),
            Some(cluster) => optimistic::Target::Cluster {
                cluster,
                connection: &mut self.connection,
                redirects: 0,
            },
        };
        (env, target)
    }

    /// Runs a command that needs round trips of its own, or none.
    async fn alone(&mut self, alone: Alone) {
        match alone {
            Alone::PurgeExpired(call) => {
                // Redis removes expired keys itself; there is nothing left to purge.
                call.answer(Ok(0));
            }
            Alone::Stats(call) => {
                // Counted on a task of its own, on a clone of the connection (its commands
                // interleave with everyone else's), so that a large store does not hold up the
                // calls behind this one.
                let counters = Stats {
                    commands: self.commands,
                    watchers: self.feed.count().await,
                    ..Stats::default()
                };
                let nodes = match self.nodes().await {
                    Ok(nodes) => nodes,
                    Err(error) => return call.answer(Err(error)),
                };
                let prefix = self.prefix.clone();
                tokio::spawn(async move {
                    let entries = count(nodes, &prefix).await;
                    call.answer(entries.map(|entries| Stats {
                        entries,
                        ..counters
                    }));
                });
            }
            Alone::ScanPrefix(call) => {
                let ScanPrefix { prefix, limit } = &call.args;
                let stream = exec::stream_name(&self.prefix);
                let keys = match self.nodes().await {
                    Ok(nodes) => scan_all(nodes, prefix, &stream).await,
                    Err(error) => Err(error),
                };
                let keys = keys.map(|mut keys| {
                    keys.sort_unstable();
                    keys.dedup(); // SCAN may return a key twice
                    keys.truncate(*limit);
                    keys
                });
                call.answer(keys);
            }
            Alone::Update(Call { args, reply }) => {
                let Update { key, mut f } = args;
                let (env, mut target) = self.optimistic();
                let result = optimistic::update(&mut target, &env, key, &mut f).await;
                let _ = reply.send(result);
            }
            Alone::Transaction(Call { args, reply }) => {
                let Transaction { prefix, mut f } = args;
                let (env, mut target) = self.optimistic();
                let result = optimistic::transaction(&mut target, &env, &prefix, &mut f).await;
                let _ = reply.send(result);
            }
            Alone::Watch(call) => self.watch(call).await,
            Alone::WaitFor(call) => self.wait_for(call).await,
            Alone::BlockingPop(call) => self.blocking_pop(call).await,
            // The loop takes the shutdown itself, before it gets here; answering it here too would
            // be harmless.
            Alone::Shutdown(call) => {
                call.answer(Ok(()));
            }
        }
    }
}

impl Owner {
    /// What a scan or count reads: the owner's connection, or on a cluster each primary's.
    async fn nodes(&mut self) -> Result<Vec<Connection>, KvError> {
        match &mut self.cluster {
            None => Ok(vec![self.connection.clone()]),
            Some(cluster) => {
                let nodes = cluster.primaries(&mut self.connection).await;
                if nodes.is_err() {
                    cluster.forget();
                }
                nodes
            }
        }
    }
}

/// The keys under `prefix` that [`Stats::entries`] counts on `nodes` (one server, or each primary
/// of a cluster): `DBSIZE` for the empty prefix (every key of the database, the layout's id
/// indexes and change streams included), else a `SCAN` of the whole database matching the prefix
/// (`O(keys in the database)` on the server, in steps of [`SCAN_COUNT`], beside other clients'
/// commands), without the layout's reserved names.
async fn count(nodes: Vec<Connection>, prefix: &str) -> Result<usize, KvError> {
    if prefix.is_empty() {
        let mut total = 0;
        for mut node in nodes {
            let size: usize =
                slots::query(&mut node, &redis::cmd("DBSIZE"), "redis DBSIZE failed").await?;
            total += size;
        }
        return Ok(total);
    }
    let mut keys = scan_all(nodes, prefix, &exec::stream_name(prefix)).await?;
    keys.sort_unstable();
    keys.dedup(); // SCAN may return a key twice
    Ok(keys.len())
}

/// [`scan`] of each of `nodes`, one after the other.
async fn scan_all(
    nodes: Vec<Connection>,
    prefix: &str,
    stream: &str,
) -> Result<Vec<String>, KvError> {
    let mut keys = Vec::new();
    for mut node in nodes {
        keys.extend(scan(&mut node, prefix, stream).await?);
    }
    Ok(keys)
}

/// Every key that starts with `prefix`, unsorted, possibly with duplicates (as `SCAN` gives
/// them), without the layout's reserved names (id indexes, change streams). Keys that are not
/// UTF-8, written by another client, are skipped.
async fn scan(
    connection: &mut Connection,
    prefix: &str,
    stream: &str,
) -> Result<Vec<String>, KvError> {
    let pattern = format!("{}*", glob_escape(prefix));
    let mut cursor = 0u64;
    let mut keys = Vec::new();
    loop {
        let mut command = redis::cmd("SCAN");
        command
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT);
        let (next, page): (u64, Vec<Vec<u8>>) =
            slots::query(connection, &command, "redis SCAN failed").await?;
        keys.extend(
            page.into_iter()
                .filter_map(|key| String::from_utf8(key).ok())
                .filter(|key| !exec::is_reserved(key, stream)),
        );
        if next == 0 {
            return Ok(keys);
        }
        cursor = next;
    }
}

/// Sends a batch's pipeline (on a cluster, its slots' pipelines, side by side) and answers every
/// command queued in it.
async fn answer(batch: Batch, connection: Connection, scripts: Arc<Scripts>) {
    let Batch {
        pipe,
        queued,
        slots,
    } = batch;
    let parts = slots.into_values().map(|part| {
        let Batch { pipe, queued, .. } = part;
        answer_one(pipe, queued, connection.clone(), Arc::clone(&scripts))
    });
    let own = answer_one(pipe, queued, connection.clone(), Arc::clone(&scripts));
    futures::future::join_all(parts.chain(std::iter::once(own))).await;
}

/// Sends one pipeline and answers every command queued in it.
async fn answer_one(
    pipe: Pipeline,
    queued: Vec<Pipelined>,
    mut connection: Connection,
    scripts: Arc<Scripts>,
) {
    if queued.is_empty() {
        return;
    }
    let replies = if pipe.is_empty() {
        Ok(Vec::new()) // only commands that need no entry (an empty `mget`, say)
    } else {
        send(&mut connection, &scripts, &pipe).await
    };
    let mut replies = match replies {
        Ok(replies) => replies.into_iter(),
        Err(error) => return fail_all(queued, error),
    };
    // Commands whose reply calls for another round trip (`get` of a list) wait for it; the rest
    // are answered now.
    let mut waiting: Vec<(Pipelined, Vec<RedisValue>)> = queued
        .into_iter()
        .map(|pipelined| {
            let own = replies.by_ref().take(pipelined.entries).collect();
            (pipelined, own)
        })
        .collect();
    loop {
        let mut again = Vec::new();
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for (mut pipelined, own) in waiting {
            match pipelined.again(&own) {
                Some(command) => {
                    pipe.add_command(command);
                    again.push(pipelined);
                }
                None => pipelined.finish(Ok(own)),
            }
        }
        if again.is_empty() {
            return;
        }
        match send(&mut connection, &scripts, &pipe).await {
            Ok(replies) => {
                waiting = again
                    .into_iter()
                    .zip(replies)
                    .map(|(pipelined, reply)| (pipelined, vec![reply]))
                    .collect();
            }
            Err(error) => return fail_all(again, error),
        }
    }
}

/// Answers every command of a pipeline that failed whole with its error.
fn fail_all(queued: Vec<Pipelined>, error: KvError) {
    // `KvError` is not `Clone` (it can carry a serde_json error); every caller of the batch gets
    // the same kind, message and (shared) cause.
    let (kind, message, source) = match error {
        KvError::Backend {
            kind,
            message,
            source,
        } => (kind, message, source),
        other => (BackendErrorKind::Protocol, other.to_string(), None),
    };
    for pipelined in queued {
        let error = exec::backend(kind, message.clone(), source.clone());
        pipelined.finish(Err(error));
    }
}

/// Sends a pipeline and returns one reply per entry (server errors among them, in place).
///
/// Entries refused with `NOSCRIPT` (the server restarted and lost its script cache) are sent
/// again once the scripts are reloaded. They had not run, and every command of a batch was pending
/// at once (none of their callers had an answer yet), so running them after the rest of the batch
/// is still a valid order.
async fn send(
    connection: &mut Connection,
    scripts: &Scripts,
    pipe: &Pipeline,
) -> Result<Vec<RedisValue>, KvError> {
    let mut replies: Vec<RedisValue> = match pipe.query_async(connection).await {
        Ok(replies) => replies,
        // On a cluster, a pipeline of one command refused with `MOVED` did not run (the node
        // no longer serves its slot): the one case that is safe to send again, once. The `redis`
        // crate is reading the slot map again meanwhile. (A longer pipeline's error does not say
        // which of its commands ran before its slot moved, so it is not sent again.)
        Err(error) if slots::moved_alone(connection, pipe, &error) => pipe
            .query_async(connection)
            .await
            .map_err(|error| connection_error("redis pipeline failed", &error))?,
        Err(error) => return Err(connection_error("redis pipeline failed", &error)),
    };
    let refused: Vec<usize> = (0..replies.len())
        .filter(|&index| exec::is_noscript(&replies[index]))
        .collect();
    if refused.is_empty() {
        return Ok(replies);
    }
    load_scripts(connection, scripts).await?;
    // A refused `EXEC` is sent again with its whole `MULTI` group; its last reply replaces it.
    let commands: Vec<&redis::Cmd> = pipe.cmd_iter().collect();
    let mut again = redis::pipe();
    again.ignore_errors();
    let mut groups = Vec::with_capacity(refused.len());
    for index in refused {
        let start = exec::group_start(&commands, index);
        for command in &commands[start..=index] {
            again.add_command((*command).clone());
        }
        groups.push((index, index - start + 1));
    }
    let retried: Vec<RedisValue> = again
        .query_async(connection)
        .await
        .map_err(|error| connection_error("redis pipeline failed", &error))?;
    let mut retried = retried.into_iter();
    for (index, size) in groups {
        if let Some(reply) = retried.by_ref().take(size).last() {
            replies[index] = reply;
        }
    }
    Ok(replies)
}

/// Loads the scripts' library into the server, or into every primary of a cluster
/// ([`scripts::load`]).
async fn load_scripts(connection: &mut Connection, scripts: &Scripts) -> Result<(), KvError> {
    scripts::load(connection, scripts).await
}

/// `prefix` with Redis's glob characters escaped, so that `SCAN MATCH` takes it literally.
fn glob_escape(prefix: &str) -> String {
    let mut escaped = String::with_capacity(prefix.len());
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_characters_in_a_prefix_are_taken_literally() {
        assert_eq!(glob_escape("app:"), "app:");
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
