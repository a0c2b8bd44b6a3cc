//! `update` and `transaction` on Redis: optimistic `WATCH`/`MULTI`/`EXEC` retries.
//!
//! In-process, the owner task runs the closure between its read and its write, and nothing else
//! runs meanwhile. Redis cannot run Rust closures, and other clients keep writing; so the keys are
//! `WATCH`ed, read (with `get.lua`/`mget.lua`, so lists read as they do for `get`), the closure
//! runs here, and its writes go out in `MULTI`/`EXEC` as the same scripts `set` and `delete` use
//! (`set.lua`, `delete.lua`, `expire.lua`: a list becomes a Redis list, the id index and the
//! change stream are kept as by any other write). If any watched key changed in between, Redis
//! refuses the `EXEC` (nothing is written) and the whole attempt starts over with fresh reads, up
//! to [`MAX_ATTEMPTS`] times.
//!
//! These are the only calls that are retried; every other call is one script, done by the server
//! in one step ([`exec`](super::exec)).
//!
//! A watch belongs to the connection: this relies on the owner task being the only user of its
//! connection for `WATCH`/`MULTI` and running these one at a time (see the [module docs](super)).
//! On a Redis Cluster ([`Target::Cluster`]) each attempt runs on a connection of the owner's own
//! to the primary of the call's slot, which never reconnects or follows a redirection by itself:
//! a `WATCH` can never be lost between it and the `EXEC` without the `EXEC` failing. A `MOVED`,
//! `ASK`, `CLUSTERDOWN` or `TRYAGAIN` reply means nothing ran: the slot map is read again and the
//! attempt starts over. A connection lost or timed out around an `EXEC` is the caller's error
//! (`KvError::Backend`; the write may or may not have been applied) and is never sent again. A
//! transaction whose keys fall in two slots is refused before anything is written.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use redis::{Cmd, Pipeline, Value as RedisValue};
use serde_json::Value;
use tokio::time::Instant;

use super::connection::Connection;
use super::exec::{self, connection_error, is_noscript, json, ttl_arg};
use super::scripts::Scripts;
use super::slots::{self, Cluster};
use crate::closure::{self, StoreId};
use crate::command::{TxnFn, UpdateFn};
use crate::error::KvError;
use crate::txn::{Op, Source, Txn};
use crate::value::check_depth;

/// How many times an `update` or `transaction` tries before giving up with
/// [`KvError::Contended`]. Each failed attempt means another client wrote a key it read, so
/// running out takes sustained contention on the same keys.
const MAX_ATTEMPTS: u32 = 16;

/// How many times one attempt of a `transaction` may find that its closure read keys not fetched
/// yet, fetch them and run it again, before giving up with [`KvError::Contended`].
const MAX_FETCH_ROUNDS: u32 = 64;

/// How long an optimistic call waits after a cluster said it cannot serve the slot now
/// (`CLUSTERDOWN`, `TRYAGAIN`, `ASK`) before it tries again.
const REDIRECT_PAUSE: Duration = Duration::from_millis(100);

/// What `update` and `transaction` need besides the connection.
pub(crate) struct Env<'a> {
    pub(crate) scripts: &'a Scripts,
    /// The store's change stream, which the writing scripts add to.
    pub(crate) stream: &'a str,
    pub(crate) store: StoreId,
}

/// Where an optimistic call runs (see the module docs).
pub(crate) enum Target<'a> {
    /// One server: the owner task's connection.
    Server(&'a mut Connection),
    /// A cluster: a connection to the primary of the call's slot, found with `connection`;
    /// `redirects` counts the attempts a redirection ended.
    Cluster {
        cluster: &'a mut Cluster,
        connection: &'a mut Connection,
        redirects: u32,
    },
}

impl Target<'_> {
    /// The connection an attempt on `key` runs on.
    async fn connection(&mut self, key: &str) -> Result<Connection, KvError> {
        match self {
            Target::Server(connection) => Ok((**connection).clone()),
            Target::Cluster {
                cluster,
                connection,
                ..
            } => cluster.node(connection, key).await,
        }
    }

    /// Two keys of different slots among `keys`, on a cluster.
    fn two_slots<'k>(&self, keys: impl IntoIterator<Item = &'k str>) -> Option<(&'k str, &'k str)> {
        match self {
            Target::Server(_) => None,
            Target::Cluster { .. } => slots::two_slots(keys),
        }
    }

    /// After a lost node connection: find the nodes again next time.
    fn forget(&mut self) {
        match self {
            Target::Server(_) => {}
            Target::Cluster { cluster, .. } => cluster.forget(),
        }
    }

    /// After a redirection (nothing ran): go where a `MOVED` said, or else (`ASK`,
    /// `CLUSTERDOWN`, `TRYAGAIN`: a slot being moved, a failover under way) read the slot map
    /// again after a pause.
    async fn redirected(&mut self, moved: Option<(u16, String)>) {
        let Target::Cluster {
            cluster, redirects, ..
        } = self
        else {
            return;
        };
        *redirects += 1;
        match moved {
            Some((slot, address)) => cluster.moved(slot, &address),
            None => {
                cluster.forget();
                tokio::time::sleep(REDIRECT_PAUSE).await;
            }
        }
    }
}

/// What an optimistic call that ran out of attempts gives: [`KvError::Contended`], or, if the
/// cluster redirected any of them (a failover or a slot moving), [`KvError::Backend`]: the
/// contention may have been the cluster's, not other clients'.
fn exhausted(target: &Target<'_>, op: &'static str, key: &str, why: &'static str) -> KvError {
    match target {
        Target::Cluster { redirects, .. } if *redirects > 0 => {
            let error = exec::backend(
                crate::error::BackendErrorKind::Connection,
                format!(
                    "`{op}` on `{key}` gave up after {MAX_ATTEMPTS} attempts, {redirects} of them \
                     redirected by the Redis Cluster (a failover or a slot moving); nothing was \
                     written"
                ),
                None,
            );
            tracing::warn!(%error, "{why}");
            error
        }
        _ => contended(op, key, MAX_ATTEMPTS, why),
    }
}

/// [`KvError::Contended`], warned about once here: the caller may not look at the error.
fn contended(op: &'static str, key: &str, attempts: u32, why: &'static str) -> KvError {
    let error = KvError::Contended {
        op,
        key: key.to_owned(),
        attempts,
    };
    tracing::warn!(%error, "{why}");
    error
}

/// `update` on Redis: `WATCH` and read the key, run `f` on its value, write what it returns in
/// `MULTI`/`EXEC` (`set.lua` with `keep`: an existing key keeps its TTL; or `delete.lua`); again
/// on conflict. A panic or a value too deep ends the call with nothing written.
pub(crate) async fn update(
    target: &mut Target<'_>,
    env: &Env<'_>,
    key: String,
    f: &mut UpdateFn,
) -> Result<Option<Arc<Value>>, KvError> {
    for _ in 0..MAX_ATTEMPTS {
        let connection = &mut target.connection(&key).await?;
        let mut read = redis::pipe();
        read.ignore_errors()
            .cmd("WATCH")
            .arg(&key)
            .ignore()
            .add_command(exec::get(env.scripts, &key));
        let Some(mut replies) = read_watched(target, connection, env.scripts, &read).await? else {
            continue; // the scripts were reloaded, or the slot moved: read again
        };
        let current = json(&key, replies.pop().unwrap_or(RedisValue::Nil));
        let decided = current.and_then(|current| {
            let new =
                closure::run(env.store, || f.call(current.as_deref())).map_err(|message| {
                    let error = KvError::UpdatePanicked {
                        key: key.clone(),
                        message,
                    };
                    tracing::warn!(%error, "caught a panic in a closure; nothing was written");
                    error
                })?;
            let new = new
                .map(|value| check_depth(&key, value))
                .transpose()?
                .map(Arc::new);
            Ok((current.is_some(), new))
        });
        let (existed, new) = match decided {
            Ok(decided) => decided,
            Err(error) => {
                unwatch(connection).await;
                return Err(error);
            }
        };
        let mut write = redis::pipe();
        write.atomic().ignore_errors();
        match &new {
            Some(value) => {
                write.add_command(exec::set(env.scripts, env.stream, &key, "keep", value));
            }
            None if existed => {
                write.add_command(exec::delete(env.scripts, env.stream, &key));
            }
            None => {}
        }
        if commit(target, connection, env.scripts, &write, &key, "redis write").await? {
            return Ok(new);
        }
    }
    Err(exhausted(
        target,
        "update",
        &key,
        "optimistic retries exhausted",
    ))
}

/// `transaction` on Redis. Each attempt runs `f` against the values fetched so far; a run that
/// read a key not fetched yet is incomplete, so those keys are watched and fetched and `f` runs
/// again. The first complete run's writes go out in `MULTI`/`EXEC`, one script per key written
/// (see [`writes`]); if Redis refuses it (a read key changed), the attempt starts over with
/// nothing fetched.
///
/// A run that panics after reading a key not yet fetched is treated as incomplete, not as a
/// panic: it may have panicked on a value that only looked missing.
pub(crate) async fn transaction(
    target: &mut Target<'_>,
    env: &Env<'_>,
    prefix: &str,
    f: &mut TxnFn,
) -> Result<(), KvError> {
    let mut fetched: HashMap<String, Option<Arc<Value>>> = HashMap::new();
    'attempts: for _ in 0..MAX_ATTEMPTS {
        fetched.clear();
        // The connection of this attempt, once it has a key: its first read's (or write's).
        let mut pinned: Option<Connection> = None;
        let mut rounds = 0;
        let ops = loop {
            rounds += 1;
            if rounds > MAX_FETCH_ROUNDS {
                // A closure that reads a key it has not read before on every run (say, a key
                // named after a counter it keeps) would fetch forever, holding the connection.
                unwatch_pinned(&mut pinned).await;
                return Err(contended(
                    "transaction",
                    prefix,
                    MAX_FETCH_ROUNDS,
                    "a transaction kept reading keys it had not read before",
                ));
            }
            // The run is synchronous and ends before any await: `Txn` is not `Send`.
            let (outcome, ops, mut unfetched) = {
                let reads = Fetched {
                    fetched: &fetched,
                    unfetched: RefCell::default(),
                };
                let mut txn = Txn::new(&reads, prefix, Instant::now());
                let outcome = closure::run(env.store, || f.call(&mut txn));
                let ops = txn.into_ops();
                (outcome, ops, reads.unfetched.into_inner())
            };
            if unfetched.is_empty() {
                let outcome = outcome
                    .map_err(|message| {
                        let error = KvError::TransactionPanicked {
                            prefix: prefix.to_owned(),
                            message,
                        };
                        tracing::warn!(%error, "caught a panic in a closure; nothing was written");
                        error
                    })
                    .and(ops);
                match outcome {
                    Ok(ops) => break ops,
                    Err(error) => {
                        unwatch_pinned(&mut pinned).await;
                        return Err(error);
                    }
                }
            }
            unfetched.sort_unstable();
            unfetched.dedup();
            let keys = fetched.keys().chain(&unfetched).map(String::as_str);
            if let Some((first, second)) = target.two_slots(keys) {
                unwatch_pinned(&mut pinned).await;
                return Err(slots::cross_slot("transaction", first, second));
            }
            let connection = match &mut pinned {
                Some(connection) => connection,
                None => pinned.insert(target.connection(&unfetched[0]).await?),
            };
            let mut read = redis::pipe();
            read.ignore_errors()
                .cmd("WATCH")
                .arg(&unfetched)
                .ignore()
                .add_command(exec::mget(env.scripts, &unfetched));
            let Some(replies) = read_watched(target, connection, env.scripts, &read).await? else {
                continue 'attempts; // the scripts were reloaded, or the slot moved: start over
            };
            let values = match exec::mget_values(&unfetched, replies) {
                Ok(values) => values,
                Err(error) => {
                    unwatch(connection).await;
                    return Err(error);
                }
            };
            fetched.extend(unfetched.into_iter().zip(values));
        };
        let written: Vec<&str> = ops
            .iter()
            .map(|op| match op {
                Op::Set { key, .. } | Op::Delete { key } | Op::Expire { key, .. } => key.as_str(),
            })
            .collect();
        let keys = fetched.keys().map(String::as_str).chain(written);
        if let Some((first, second)) = target.two_slots(keys) {
            unwatch_pinned(&mut pinned).await;
            return Err(slots::cross_slot("transaction", first, second));
        }
        let commands = writes(env, ops);
        let first_key = fetched.keys().next().cloned();
        let mut write = redis::pipe();
        write.atomic().ignore_errors();
        for command in commands {
            write.add_command(command);
        }
        let connection = match (&mut pinned, first_key.or_else(|| first_written(&write))) {
            (Some(connection), _) => connection,
            (None, Some(key)) => pinned.insert(target.connection(&key).await?),
            (None, None) => return Ok(()), // nothing read, nothing written
        };
        if commit(
            target,
            connection,
            env.scripts,
            &write,
            "",
            "redis transaction write",
        )
        .await?
        {
            return Ok(());
        }
    }
    Err(exhausted(
        target,
        "transaction",
        prefix,
        "optimistic retries exhausted",
    ))
}

/// The first key a `MULTI` pipeline of script calls writes, for the node it must go to.
fn first_written(write: &Pipeline) -> Option<String> {
    write.cmd_iter().find_map(key_of)
}

/// The first key of a script call (`FCALL <name> <numkeys> <key> ..`).
fn key_of(command: &Cmd) -> Option<String> {
    match command.args_iter().nth(3)? {
        redis::Arg::Simple(key) => String::from_utf8(key.to_vec()).ok(),
        _ => None, // a cursor
    }
}

/// A transaction's staged writes as one script call per key, in the order the keys were first
/// written, each leaving the key where the staged writes in order would: its last `set` (with
/// the TTL of an `expire` staged after it; as in-process, a set drops any TTL) or `delete`, or
/// else its last `expire` (which never creates a key). So each key sends one change-stream entry
/// with its state after the transaction (rule 30), and a key set then deleted sends none if it
/// was missing.
fn writes(env: &Env<'_>, ops: Vec<Op>) -> Vec<Cmd> {
    /// Where a key ends: `write` its last set (`Some(Some)`) or delete (`Some(None)`), `expire`
    /// the TTL staged after it.
    #[derive(Default)]
    struct End {
        write: Option<Option<Arc<Value>>>,
        expire: Option<Duration>,
    }
    let mut order: Vec<String> = Vec::new();
    let mut ends: HashMap<String, End> = HashMap::new();
    for op in ops {
        let key = match &op {
            Op::Set { key, .. } | Op::Delete { key } | Op::Expire { key, .. } => key.clone(),
        };
        let end = ends.entry(key).or_insert_with_key(|key| {
            order.push(key.clone());
            End::default()
        });
        match op {
            Op::Set { value, .. } => {
                *end = End {
                    write: Some(Some(value)),
                    expire: None,
                }
            }
            Op::Delete { .. } => {
                *end = End {
                    write: Some(None),
                    expire: None,
                }
            }
            Op::Expire { ttl, .. } => {
                if !matches!(end.write, Some(None)) {
                    end.expire = Some(ttl);
                }
            }
        }
    }
    order
        .into_iter()
        .filter_map(|key| {
            let end = ends.remove(&key)?;
            match end.write {
                Some(Some(value)) => {
                    let ttl = ttl_arg(end.expire);
                    Some(exec::set(env.scripts, env.stream, &key, &ttl, &value))
                }
                Some(None) => Some(exec::delete(env.scripts, env.stream, &key)),
                None => end.expire.map(|ttl| exec::expire(env.scripts, &key, ttl)),
            }
        })
        .collect()
}

/// What a transaction run reads on Redis: the values fetched so far (by full key; `None`: fetched
/// and missing). A key read that is not fetched yet reads as missing and is noted in `unfetched`:
/// the run is then incomplete, and its outcome must not be used.
struct Fetched<'a> {
    fetched: &'a HashMap<String, Option<Arc<Value>>>,
    unfetched: RefCell<Vec<String>>,
}

impl Source for Fetched<'_> {
    fn read(&self, key: &str, _now: Instant) -> Option<(&Arc<Value>, Option<Instant>)> {
        match self.fetched.get(key) {
            Some(value) => value.as_ref().map(|value| (value, None)),
            None => {
                self.unfetched.borrow_mut().push(key.to_owned());
                None
            }
        }
    }
}

/// Sends a `WATCH` + read pipeline (built with `ignore_errors`, the `WATCH` ignored) and returns
/// the read's replies; `None` if the server had lost the scripts (a restart: they are reloaded)
/// or, on a cluster, the slot is served elsewhere now (the target forgets its nodes): the watches
/// are dropped, and the caller starts its attempt over. On error the watches are dropped.
async fn read_watched(
    target: &mut Target<'_>,
    connection: &mut Connection,
    scripts: &Scripts,
    read: &Pipeline,
) -> Result<Option<Vec<RedisValue>>, KvError> {
    let Some(replies) = query::<Vec<RedisValue>>(target, connection, read, "redis read").await?
    else {
        return Ok(None);
    };
    if replies.iter().any(slots::redirected) {
        unwatch(connection).await;
        target.redirected(slots::moved_in(&replies)).await;
        return Ok(None);
    }
    if replies.iter().any(is_noscript) {
        unwatch(connection).await;
        super::load_scripts(connection, scripts).await?;
        return Ok(None);
    }
    Ok(Some(replies))
}

/// Sends a pipeline and reads its replies as `T`; `None` if a cluster node refused it with a
/// redirection (nothing ran; the target forgets its nodes). On error the connection's watches
/// are dropped, so that a later attempt starts clean.
async fn query<T: redis::FromRedisValue>(
    target: &mut Target<'_>,
    connection: &mut Connection,
    pipe: &Pipeline,
    what: &str,
) -> Result<Option<T>, KvError> {
    match pipe.query_async(connection).await {
        Ok(value) => Ok(Some(value)),
        Err(error) => {
            unwatch(connection).await;
            if slots::redirected_error(&error) {
                target.redirected(slots::moved_error(&error)).await;
                return Ok(None);
            }
            // A command the server refused as it was queued (a `NOPERM`) aborts the `EXEC`:
            // report that refusal, naming its key.
            let refused = error.clone().into_server_errors().and_then(|errors| {
                let (index, refusal) = errors.first()?.clone();
                let key = key_of(pipe.cmd_iter().nth(index)?)?;
                Some(exec::backend_error(&key, &refusal))
            });
            if let Some(refused) = refused {
                return Err(refused);
            }
            // A node connection that failed is not used again: the next call connects afresh.
            target.forget();
            Err(connection_error(what, &error))
        }
    }
}

/// Sends a `MULTI`/`EXEC` pipeline. `false` if Redis refused the `EXEC` because a watched key
/// changed (nothing was written), if a cluster node redirected it (nothing ran), or if the server
/// had lost the scripts: they are reloaded, and the caller tries again (the server loses them all
/// at once, so every script call of the `EXEC` was refused, and nothing was written). `EXEC` also
/// ends the watches either way.
async fn commit(
    target: &mut Target<'_>,
    connection: &mut Connection,
    scripts: &Scripts,
    write: &Pipeline,
    key: &str,
    what: &str,
) -> Result<bool, KvError> {
    let Some(applied) = query::<Option<Vec<RedisValue>>>(target, connection, write, what).await?
    else {
        return Ok(false);
    };
    let Some(replies) = applied else {
        return Ok(false);
    };
    if replies.iter().any(slots::redirected) {
        // Inside an `EXEC` a redirection cannot come after a command that ran (a slot moves
        // between commands, not within a transaction); still, only a refusal of every command
        // is taken as "nothing ran".
        if replies.iter().all(slots::redirected) {
            target.redirected(slots::moved_in(&replies)).await;
            return Ok(false);
        }
    }
    if replies.iter().any(is_noscript) {
        super::load_scripts(connection, scripts).await?;
        return Ok(false);
    }
    match replies.iter().find_map(|reply| match reply {
        RedisValue::ServerError(error) => Some(error),
        _ => None,
    }) {
        Some(error) => Err(exec::script_error(key, error)),
        None => Ok(true),
    }
}

/// Drops the connection's watches. Best effort: if the connection is gone, so are they.
async fn unwatch(connection: &mut Connection) {
    let _: Result<(), _> = redis::cmd("UNWATCH").query_async(connection).await;
}

/// [`unwatch`] on a transaction's connection, if it has one yet.
async fn unwatch_pinned(pinned: &mut Option<Connection>) {
    if let Some(connection) = pinned {
        unwatch(connection).await;
    }
}
