//! `update` and `transaction` on Redis: optimistic `WATCH`/`MULTI`/`EXEC` retries.
//!
//! In-process, the owner task runs the closure between its read and its write, and nothing else
//! runs meanwhile. Redis cannot run Rust closures, and other clients keep writing; so the keys are
//! `WATCH`ed, read, the closure runs here, and its writes go out in `MULTI`/`EXEC`. If any watched
//! key changed in between, Redis refuses the `EXEC` (nothing is written) and the whole attempt
//! starts over with fresh reads, up to [`MAX_ATTEMPTS`] times.
//!
//! A watch belongs to the connection: this relies on the owner task being the only user of its
//! connection and running these one at a time (see the [module docs](super)).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{Pipeline, Value as RedisValue};
use serde_json::Value;
use tokio::time::Instant;

use super::exec::{connection_error, json, set, ttl_ms};
use crate::closure::{self, StoreId};
use crate::command::{TxnFn, UpdateFn};
use crate::error::{json_type_name, KvError};
use crate::txn::{Op, Source, Txn};
use crate::value::check_depth;

/// How many times an `update` or `transaction` tries before giving up with
/// [`KvError::Contended`]. Each failed attempt means another client wrote a key it read, so
/// running out takes sustained contention on the same keys.
const MAX_ATTEMPTS: u32 = 16;

/// How many times one attempt of a `transaction` may find that its closure read keys not fetched
/// yet, fetch them and run it again, before giving up with [`KvError::Contended`].
const MAX_FETCH_ROUNDS: u32 = 64;

/// What a read-modify-write writes back after reading the key.
enum Write {
    /// Nothing (the read is still checked, so the answer is current).
    Nothing,
    /// The key's new value, and what becomes of its TTL.
    Put { value: Arc<Value>, ttl: TtlChange },
    /// Remove the key.
    Delete,
}

/// What a [`Write::Put`] does to the key's TTL.
enum TtlChange {
    /// An existing key keeps its TTL; a created one never expires (`KEEPTTL`).
    Keep,
    /// The key gets this TTL; `None`, or one too large to represent, means it never expires.
    Set(Option<Duration>),
}

/// One key's read-modify-write on Redis: `WATCH` + `GET`, let `f` decide what to write and what
/// to answer, then the write in `MULTI`/`EXEC`; again on conflict. An error from `f` ends the call
/// with nothing written. `op` names the call in [`KvError::Contended`].
async fn rewrite<T>(
    connection: &mut ConnectionManager,
    op: &'static str,
    key: &str,
    mut f: impl FnMut(Option<Arc<Value>>) -> Result<(Write, T), KvError>,
) -> Result<T, KvError> {
    for _ in 0..MAX_ATTEMPTS {
        let mut read = redis::pipe();
        read.cmd("WATCH").arg(key).ignore().cmd("GET").arg(key);
        let (current,): (RedisValue,) = query(connection, &read, "redis read").await?;
        let decided = json(key, current).and_then(&mut f);
        let (write, answer) = match decided {
            Ok(decided) => decided,
            Err(error) => {
                unwatch(connection).await;
                return Err(error);
            }
        };
        let mut pipe = redis::pipe();
        pipe.atomic();
        match write {
            Write::Nothing => {}
            Write::Put { value, ttl } => {
                let put = match ttl {
                    TtlChange::Keep => {
                        let mut put = set(key, &value, None);
                        put.arg("KEEPTTL");
                        put
                    }
                    TtlChange::Set(ttl) => set(key, &value, ttl),
                };
                pipe.add_command(put);
            }
            Write::Delete => {
                pipe.cmd("DEL").arg(key);
            }
        }
        if commit(connection, &pipe, "redis write").await? {
            return Ok(answer);
        }
    }
    Err(contended(
        op,
        key,
        MAX_ATTEMPTS,
        "optimistic retries exhausted",
    ))
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

/// `update` on Redis: a [`rewrite`] that runs `f` on the value read.
pub(crate) async fn update(
    connection: &mut ConnectionManager,
    store: StoreId,
    key: String,
    f: &mut UpdateFn,
) -> Result<Option<Arc<Value>>, KvError> {
    rewrite(connection, "update", &key, |current| {
        let new = closure::run(store, || f.call(current.as_deref())).map_err(|message| {
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
        let write = match (&new, &current) {
            (Some(value), _) => Write::Put {
                value: Arc::clone(value),
                ttl: TtlChange::Keep,
            },
            (None, Some(_)) => Write::Delete,
            (None, None) => Write::Nothing,
        };
        Ok((write, new))
    })
    .await
}

/// `list_push` on Redis: a [`rewrite`] of the list, refused for a value that is not a list.
pub(crate) async fn list_push(
    connection: &mut ConnectionManager,
    key: String,
    items: Vec<Value>,
    max_len: usize,
    ttl: Option<Duration>,
) -> Result<usize, KvError> {
    rewrite(connection, "list_push", &key, |current| {
        let existed = current.is_some();
        let mut list = list_of(&key, current)?;
        list.extend(items.iter().cloned());
        list.drain(..list.len().saturating_sub(max_len));
        let len = list.len();
        let write = match (len, existed) {
            (0, false) => Write::Nothing,
            _ => Write::Put {
                value: Arc::new(Value::Array(list)),
                ttl: TtlChange::Set(ttl),
            },
        };
        Ok((write, len))
    })
    .await
}

/// `list_pop_front` on Redis: a [`rewrite`] that keeps the list's TTL and deletes it once empty.
pub(crate) async fn list_pop_front(
    connection: &mut ConnectionManager,
    key: String,
    count: usize,
) -> Result<Vec<Value>, KvError> {
    rewrite(connection, "list_pop_front", &key, |current| {
        let mut rest = list_of(&key, current)?;
        let taken: Vec<Value> = rest.drain(..count.min(rest.len())).collect();
        let write = match (taken.len(), rest.len()) {
            (0, _) => Write::Nothing,
            (_, 0) => Write::Delete,
            (_, _) => Write::Put {
                value: Arc::new(Value::Array(rest)),
                ttl: TtlChange::Keep,
            },
        };
        Ok((write, taken))
    })
    .await
}

/// `get_del` on Redis: a [`rewrite`] that deletes the key only once its value has decoded (a plain
/// `GETDEL` would delete text it then cannot return).
pub(crate) async fn get_del(
    connection: &mut ConnectionManager,
    key: String,
) -> Result<Option<Arc<Value>>, KvError> {
    rewrite(connection, "get_del", &key, |current| {
        let write = if current.is_some() {
            Write::Delete
        } else {
            Write::Nothing
        };
        Ok((write, current))
    })
    .await
}

/// `list_pop_all` on Redis: a [`rewrite`] that removes the key only if it holds a list, once it
/// has decoded. Anything else stays and gives nothing, as in-process.
pub(crate) async fn list_pop_all(
    connection: &mut ConnectionManager,
    key: String,
) -> Result<Option<Arc<Value>>, KvError> {
    rewrite(connection, "list_pop_all", &key, |current| match current {
        Some(list) if list.is_array() => Ok((Write::Delete, Some(list))),
        _ => Ok((Write::Nothing, None)),
    })
    .await
}

/// `compare_and_set` on Redis: a [`rewrite`] that compares JSON values, not their text (another
/// client may write equal JSON with other spacing or key order). With a TTL the key gets it (a TTL
/// too large to represent means it never expires, as in-process); without one it keeps its TTL.
pub(crate) async fn compare_and_set(
    connection: &mut ConnectionManager,
    key: String,
    expected: Option<Value>,
    new: Value,
    ttl: Option<Duration>,
) -> Result<bool, KvError> {
    let new = Arc::new(new);
    rewrite(connection, "compare_and_set", &key, |current| {
        if current.as_deref() != expected.as_ref() {
            return Ok((Write::Nothing, false));
        }
        let ttl = match ttl {
            Some(ttl) => TtlChange::Set(Some(ttl)),
            None => TtlChange::Keep,
        };
        let value = Arc::clone(&new);
        Ok((Write::Put { value, ttl }, true))
    })
    .await
}

/// The items of the list read at `key` (none if it is missing); a value that is not a list is
/// refused as in-process. Takes the value read: the items move out of it unless another `Arc`
/// shares it (none does: [`rewrite`] hands each value read to its closure alone).
fn list_of(key: &str, current: Option<Arc<Value>>) -> Result<Vec<Value>, KvError> {
    match current.map(Arc::unwrap_or_clone) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => Ok(items),
        Some(other) => Err(KvError::WrongType {
            key: key.to_owned(),
            expected: "a list",
            found: json_type_name(&other),
        }),
    }
}

/// `transaction` on Redis. Each attempt runs `f` against the values fetched so far; a run that
/// read a key not fetched yet is incomplete, so those keys are watched and fetched and `f` runs
/// again. The first complete run's writes go out in `MULTI`/`EXEC`; if Redis refuses it (a read
/// key changed), the attempt starts over with nothing fetched.
///
/// A run that panics after reading a key not yet fetched is treated as incomplete, not as a
/// panic: it may have panicked on a value that only looked missing.
pub(crate) async fn transaction(
    connection: &mut ConnectionManager,
    store: StoreId,
    prefix: &str,
    f: &mut TxnFn,
) -> Result<(), KvError> {
    let mut fetched: HashMap<String, Option<Arc<Value>>> = HashMap::new();
    for _ in 0..MAX_ATTEMPTS {
        fetched.clear();
        let mut rounds = 0;
        let ops = loop {
            rounds += 1;
            if rounds > MAX_FETCH_ROUNDS {
                // A closure that reads a key it has not read before on every run (say, a key
                // named after a counter it keeps) would fetch forever, holding the connection.
                unwatch(connection).await;
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
                let outcome = closure::run(store, || f.call(&mut txn));
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
                        unwatch(connection).await;
                        return Err(error);
                    }
                }
            }
            unfetched.sort_unstable();
            unfetched.dedup();
            let mut read = redis::pipe();
            read.cmd("WATCH")
                .arg(&unfetched)
                .ignore()
                .cmd("MGET")
                .arg(&unfetched);
            let (values,): (Vec<RedisValue>,) =
                query(connection, &read, "redis transaction read").await?;
            for (key, value) in unfetched.into_iter().zip(values) {
                let value = json(&key, value)?;
                fetched.insert(key, value);
            }
        };
        let mut write = redis::pipe();
        write.atomic();
        for op in ops {
            match op {
                // As in-process, a set in a transaction drops any TTL.
                Op::Set { key, value } => write.add_command(set(&key, &value, None)),
                Op::Delete { key } => write.cmd("DEL").arg(key),
                Op::Expire { key, ttl } => match ttl_ms(Some(ttl)) {
                    Some(ms) => write.cmd("PEXPIRE").arg(key).arg(ms),
                    None => write.cmd("PERSIST").arg(key),
                },
            };
        }
        if commit(connection, &write, "redis transaction write").await? {
            return Ok(());
        }
    }
    Err(contended(
        "transaction",
        prefix,
        MAX_ATTEMPTS,
        "optimistic retries exhausted",
    ))
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

/// Sends a pipeline and reads its replies as `T`. On error the connection's watches are dropped,
/// so that a later attempt starts clean.
async fn query<T: redis::FromRedisValue>(
    connection: &mut ConnectionManager,
    pipe: &Pipeline,
    what: &str,
) -> Result<T, KvError> {
    match pipe.query_async(connection).await {
        Ok(value) => Ok(value),
        Err(error) => {
            unwatch(connection).await;
            Err(connection_error(what, &error))
        }
    }
}

/// Sends a `MULTI`/`EXEC` pipeline. `false` if Redis refused the `EXEC` because a watched key
/// changed (nothing was written); `EXEC` also ends the watches either way.
async fn commit(
    connection: &mut ConnectionManager,
    write: &Pipeline,
    what: &str,
) -> Result<bool, KvError> {
    let applied: Option<Vec<RedisValue>> = query(connection, write, what).await?;
    if let Some(replies) = &applied {
        if let Some(RedisValue::ServerError(error)) = replies
            .iter()
            .find(|reply| matches!(reply, RedisValue::ServerError(_)))
        {
            return Err(super::exec::backend_error("", error));
        }
    }
    Ok(applied.is_some())
}

/// Drops the connection's watches. Best effort: if the connection is gone, so are they.
async fn unwatch(connection: &mut ConnectionManager) {
    let _: Result<(), _> = redis::cmd("UNWATCH").query_async(connection).await;
}
