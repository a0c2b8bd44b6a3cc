//! One [`Command`] on Redis: the pipeline entries it becomes, and how its answer is read back from
//! their replies.
//!
//! Most commands are one Redis command or one script call, so they can share a pipeline with the
//! rest of their batch: [`plan`] queues their entries and returns a [`Pipelined`] that answers the
//! caller once the pipeline's replies are in. The few that need round trips of their own (a scan,
//! `stats`, the optimistic read-modify-writes in [`optimistic`](super::optimistic), `wait_for`'s
//! first read) or none (`purge_expired`, `watch`) become an [`Alone`] in [`Step::Alone`], for the
//! owner task to run in order.

use std::sync::Arc;
use std::time::Duration;

use redis::{Cmd, Pipeline, RedisError, Script, ServerError, Value as RedisValue};
use serde_json::Value;

use super::scripts::Scripts;

use crate::command::{
    self, Call, Command, CompareAndSet, Delete, Exists, Expire, Get, GetDel, Incr,
    ListAppendUnique, ListPopAll, ListPopFront, ListPush, Mget, Mset, Persist, PurgeExpired, Reply,
    ScanPrefix, Set, SetIfAbsent, Shutdown, Stats, Transaction, Update, WaitFor, Watch,
};
use crate::error::{BackendErrorKind, KvError};
use crate::ttl::Ttl;
use crate::value::{text_depth, MAX_DEPTH};
use serde::Deserialize;

/// TTLs above this many milliseconds mean "never expires" (as a TTL too large for an instant does
/// in-process). Redis refuses an expiry that overflows its clock; this is far below that and far
/// beyond any real TTL (about 146 million years).
const MAX_TTL_MS: u128 = 1 << 62;

/// What the owner task does with one command.
pub(crate) enum Step {
    /// Its entries are in the batch's pipeline; answer it from their replies.
    Pipelined(Pipelined),
    /// Run it on its own, after the entries queued before it have been answered.
    Alone(Alone),
}

/// The commands that need the connection to themselves (or no server at all): run one at a time
/// by the owner task, in order, after everything received before them is answered.
pub(crate) enum Alone {
    PurgeExpired(Call<PurgeExpired>),
    Stats(Call<Stats>),
    Shutdown(Call<Shutdown>),
    ScanPrefix(Call<ScanPrefix>),
    Update(Call<Update>),
    Transaction(Call<Transaction>),
    ListPopAll(Call<ListPopAll>),
    CompareAndSet(Call<CompareAndSet>),
    GetDel(Call<GetDel>),
    ListPush(Call<ListPush>),
    ListPopFront(Call<ListPopFront>),
    Watch(Call<Watch>),
    WaitFor(Call<WaitFor>),
}

/// A command whose entries are queued in a pipeline, waiting for their replies.
pub(crate) struct Pipelined {
    /// How many pipeline entries (and so replies) are its.
    pub(crate) entries: usize,
    /// Answers the caller from its replies, or with the error that lost them.
    answer: Box<dyn FnOnce(Result<Vec<RedisValue>, KvError>) + Send>,
}

impl Pipelined {
    /// Answers the caller.
    pub(crate) fn finish(self, replies: Result<Vec<RedisValue>, KvError>) {
        (self.answer)(replies)
    }
}

/// A [`Pipelined`] of `entries` replies, decoded by `decode` and sent on `reply`.
fn pipelined<T: Send + 'static>(
    entries: usize,
    reply: Reply<T>,
    decode: impl FnOnce(Vec<RedisValue>) -> Result<T, KvError> + Send + 'static,
) -> Step {
    Step::Pipelined(Pipelined {
        entries,
        answer: Box::new(move |replies| {
            // `let _ =`: the caller may have stopped waiting.
            let _ = reply.send(replies.and_then(decode));
        }),
    })
}

/// Queues `command`'s entries in `pipe`, or hands it back to run alone.
pub(crate) fn plan(command: Command, pipe: &mut Pipeline, scripts: &Scripts) -> Step {
    match command {
        Command::Get(Call { args, reply }) => {
            let Get { key } = args;
            pipe.cmd("GET").arg(&key);
            pipelined(1, reply, move |replies| json(&key, first(&key, replies)?))
        }
        Command::Set(Call { args, reply }) => {
            let Set { key, value, ttl } = args;
            pipe.add_command(set(&key, &value, ttl));
            pipelined(1, reply, move |replies| first(&key, replies).map(drop))
        }
        Command::Delete(Call { args, reply }) => {
            let Delete { key } = args;
            pipe.cmd("DEL").arg(&key);
            pipelined(1, reply, move |replies| first(&key, replies).map(drop))
        }
        Command::ListAppendUnique(Call { args, reply }) => {
            let ListAppendUnique {
                key,
                items,
                id_key,
                ttl,
            } = args;
            let mut call = evalsha(&scripts.list_append_unique, [&key]);
            call.arg(&id_key).arg(ttl_arg(ttl));
            for item in &items {
                call.arg(item.to_string());
            }
            pipe.add_command(call);
            pipelined(1, reply, move |replies| match replies.into_iter().next() {
                Some(RedisValue::ServerError(error)) => Err(wrong_type(&key, "a list", &error)),
                other => json(&key, reply_or_error(&key, other)?)?
                    .ok_or_else(|| unexpected(&key, "no list")),
            })
        }
        // Read-modify-writes that must decode the value before removing or replacing it, so that
        // a value that does not decode is left in place: run alone, optimistically.
        Command::ListPopAll(call) => Step::Alone(Alone::ListPopAll(call)),
        Command::Mset(Call { args, reply }) => {
            let Mset { entries, ttl } = args;
            if entries.is_empty() {
                return pipelined(0, reply, |_| Ok(()));
            }
            match ttl_arg(ttl) {
                ms if ms.is_empty() => {
                    let call = pipe.cmd("MSET");
                    for (key, value) in &entries {
                        call.arg(key).arg(value.to_string());
                    }
                }
                ms => {
                    let mut call = evalsha(&scripts.mset_px, entries.iter().map(|(key, _)| key));
                    call.arg(ms);
                    for (_, value) in &entries {
                        call.arg(value.to_string());
                    }
                    pipe.add_command(call);
                }
            }
            pipelined(1, reply, |replies| first("", replies).map(drop))
        }
        Command::Mget(Call { args, reply }) => {
            let Mget { keys } = args;
            if keys.is_empty() {
                return pipelined(0, reply, |_| Ok(Vec::new()));
            }
            pipe.cmd("MGET").arg(&keys);
            pipelined(1, reply, move |replies| match first("", replies)? {
                RedisValue::Array(values) if values.len() == keys.len() => keys
                    .iter()
                    .zip(values)
                    .map(|(key, value)| json(key, value))
                    .collect(),
                _ => Err(unexpected(
                    &keys[0],
                    "a reply to MGET that is not one value per key",
                )),
            })
        }
        Command::Expire(Call { args, reply }) => {
            let Expire { key, ttl } = args;
            let mut call = evalsha(&scripts.expire, [&key]);
            call.arg(ttl_arg(Some(ttl)));
            pipe.add_command(call);
            pipelined(1, reply, move |replies| flag(&key, first(&key, replies)?))
        }
        Command::Incr(Call { args, reply }) => {
            let Incr { key, by, ttl } = args;
            let mut call = evalsha(&scripts.incr, [&key]);
            call.arg(by).arg(ttl_arg(ttl));
            pipe.add_command(call);
            pipelined(1, reply, move |replies| match replies.into_iter().next() {
                Some(RedisValue::ServerError(error)) if error.code() == "KVOVERFLOW" => {
                    let current = error.details().and_then(|text| text.trim().parse().ok());
                    match current {
                        Some(current) => Err(KvError::Overflow { key, current, by }),
                        None => Err(backend_error(&key, &error)),
                    }
                }
                Some(RedisValue::ServerError(error)) => {
                    Err(wrong_type(&key, "an integer (i64)", &error))
                }
                other => match reply_or_error(&key, other)? {
                    RedisValue::BulkString(text) => std::str::from_utf8(&text)
                        .ok()
                        .and_then(|text| text.parse().ok())
                        .ok_or_else(|| unexpected(&key, "a counter that is not an integer")),
                    _ => Err(unexpected(&key, "a reply to incr that is not text")),
                },
            })
        }
        Command::SetIfAbsent(Call { args, reply }) => {
            let SetIfAbsent { key, value, ttl } = args;
            let mut call = set(&key, &value, ttl);
            call.arg("NX");
            pipe.add_command(call);
            pipelined(1, reply, move |replies| {
                Ok(first(&key, replies)? != RedisValue::Nil)
            })
        }
        Command::CompareAndSet(call) => Step::Alone(Alone::CompareAndSet(call)),
        Command::GetDel(call) => Step::Alone(Alone::GetDel(call)),
        Command::Exists(Call { args, reply }) => {
            let Exists { key } = args;
            pipe.cmd("EXISTS").arg(&key);
            pipelined(1, reply, move |replies| flag(&key, first(&key, replies)?))
        }
        Command::Ttl(Call { args, reply }) => {
            let command::Ttl { key } = args;
            pipe.cmd("PTTL").arg(&key);
            pipelined(1, reply, move |replies| match first(&key, replies)? {
                RedisValue::Int(-2) => Ok(Ttl::Missing),
                RedisValue::Int(-1) => Ok(Ttl::NoExpiry),
                // A key with under a millisecond left is still there: never report zero.
                RedisValue::Int(ms) => Ok(Ttl::Expires(Duration::from_millis(ms.max(1) as u64))),
                _ => Err(unexpected(&key, "a reply to PTTL that is not an integer")),
            })
        }
        Command::Persist(Call { args, reply }) => {
            let Persist { key } = args;
            pipe.cmd("PERSIST").arg(&key);
            pipelined(1, reply, move |replies| flag(&key, first(&key, replies)?))
        }
        Command::PurgeExpired(call) => Step::Alone(Alone::PurgeExpired(call)),
        Command::Stats(call) => Step::Alone(Alone::Stats(call)),
        Command::Shutdown(call) => Step::Alone(Alone::Shutdown(call)),
        Command::ScanPrefix(call) => Step::Alone(Alone::ScanPrefix(call)),
        Command::Update(call) => Step::Alone(Alone::Update(call)),
        Command::Transaction(call) => Step::Alone(Alone::Transaction(call)),
        Command::ListPush(call) => Step::Alone(Alone::ListPush(call)),
        Command::ListPopFront(call) => Step::Alone(Alone::ListPopFront(call)),
        Command::Watch(call) => Step::Alone(Alone::Watch(call)),
        Command::WaitFor(call) => Step::Alone(Alone::WaitFor(call)),
    }
}

/// `SET key value [PX ms]`: replaces value and TTL, as in-process `set` does.
pub(crate) fn set(key: &str, value: &Value, ttl: Option<Duration>) -> Cmd {
    let mut call = redis::cmd("SET");
    call.arg(key).arg(value.to_string());
    if let Some(ms) = ttl_ms(ttl) {
        call.arg("PX").arg(ms);
    }
    call
}

/// A TTL in whole milliseconds, rounded up (a TTL under a millisecond must not become the `0`
/// Redis refuses); `None` for no TTL or one too large to represent.
pub(crate) fn ttl_ms(ttl: Option<Duration>) -> Option<u64> {
    let ms = ttl?.as_nanos().div_ceil(1_000_000);
    (ms <= MAX_TTL_MS).then_some(ms as u64)
}

/// A TTL as a script argument: milliseconds, or `''` for none.
fn ttl_arg(ttl: Option<Duration>) -> String {
    ttl_ms(ttl).map(|ms| ms.to_string()).unwrap_or_default()
}

/// `EVALSHA` of `script` on `keys`; the caller adds the arguments.
fn evalsha<K: AsRef<str>>(script: &Script, keys: impl IntoIterator<Item = K>) -> Cmd {
    let keys: Vec<K> = keys.into_iter().collect();
    let mut call = redis::cmd("EVALSHA");
    call.arg(script.get_hash()).arg(keys.len());
    for key in &keys {
        call.arg(key.as_ref());
    }
    call
}

/// The one reply of a one-entry command about `key` (empty for a command about several keys),
/// with a server error turned into [`KvError::Backend`] naming the key.
fn first(key: &str, replies: Vec<RedisValue>) -> Result<RedisValue, KvError> {
    reply_or_error(key, replies.into_iter().next())
}

fn reply_or_error(key: &str, reply: Option<RedisValue>) -> Result<RedisValue, KvError> {
    match reply {
        Some(RedisValue::ServerError(error)) => Err(backend_error(key, &error)),
        Some(reply) => Ok(reply),
        None => Err(backend(
            BackendErrorKind::Protocol,
            "redis sent fewer replies than commands".to_owned(),
            None,
        )),
    }
}

/// A stored value: nil is missing, text is parsed as JSON.
pub(crate) fn json(key: &str, reply: RedisValue) -> Result<Option<Arc<Value>>, KvError> {
    match reply {
        RedisValue::Nil => Ok(None),
        RedisValue::BulkString(text) => parse(key, &text).map(|value| Some(Arc::new(value))),
        RedisValue::ServerError(error) => Err(backend_error(key, &error)),
        _ => Err(unexpected(key, "a reply that is not text")),
    }
}

/// Parses stored text. Text nested deeper than [`MAX_DEPTH`] (written by another client) is refused
/// before parsing; anything up to it parses, though serde_json's own limit is one level less.
fn parse(key: &str, text: &[u8]) -> Result<Value, KvError> {
    if text_depth(text) > MAX_DEPTH {
        return Err(backend(
            BackendErrorKind::Data,
            format!("key `{key}` holds JSON nested deeper than {MAX_DEPTH} levels"),
            None,
        ));
    }
    let mut parser = serde_json::Deserializer::from_slice(text);
    parser.disable_recursion_limit();
    let value = Value::deserialize(&mut parser).and_then(|value| parser.end().map(|()| value));
    value.map_err(|error| {
        let message = format!("key `{key}` holds text that is not JSON: {error}");
        backend(BackendErrorKind::Data, message, Some(Arc::new(error)))
    })
}

/// An integer reply read as a yes/no.
fn flag(key: &str, reply: RedisValue) -> Result<bool, KvError> {
    match reply {
        RedisValue::Int(n) => Ok(n != 0),
        _ => Err(unexpected(key, "a reply that is not an integer")),
    }
}

/// Our scripts' `KVWRONGTYPE <what>` error as [`KvError::WrongType`]; any other server error as
/// [`KvError::Backend`].
fn wrong_type(key: &str, expected: &'static str, error: &ServerError) -> KvError {
    if error.code() != "KVWRONGTYPE" {
        return backend_error(key, error);
    }
    let found = match error.details().unwrap_or("").trim() {
        "a list" => "a list",
        "an object" => "an object",
        "a string" => "a string",
        "a boolean" => "a boolean",
        "null" => "null",
        "a number" => "a number",
        _ => "text that is not JSON",
    };
    KvError::WrongType {
        key: key.to_owned(),
        expected,
        found,
    }
}

/// A server error as [`KvError::Backend`].
pub(crate) fn backend_error(key: &str, error: &ServerError) -> KvError {
    let on = if key.is_empty() {
        String::new()
    } else {
        format!(" on key `{key}`")
    };
    backend(
        BackendErrorKind::Refused,
        format!("redis refused the command{on}: {error}"),
        Some(Arc::new(error.clone())),
    )
}

/// A reply of a shape the command never gives.
fn unexpected(key: &str, what: &str) -> KvError {
    backend(
        BackendErrorKind::Protocol,
        format!("redis answered with {what} for key `{key}`"),
        None,
    )
}

/// Whether a reply is the `NOSCRIPT` of a script cache emptied by a server restart.
pub(crate) fn is_noscript(reply: &RedisValue) -> bool {
    matches!(reply, RedisValue::ServerError(error) if error.code() == "NOSCRIPT")
}

/// A Redis client error (connection lost, timeout, refused command) as [`KvError::Backend`].
pub(crate) fn connection_error(what: &str, error: &RedisError) -> KvError {
    // The connection manager reconnects on the next call; say so, since the caller sees only its
    // own call fail.
    tracing::warn!(%error, "{what}; the next call reconnects");
    let kind = if error.is_timeout() {
        BackendErrorKind::Timeout
    } else if error.is_io_error() || error.is_connection_dropped() || error.is_connection_refusal()
    {
        BackendErrorKind::Connection
    } else if error.kind() == redis::ErrorKind::InvalidClientConfig {
        BackendErrorKind::Config
    } else if matches!(error.kind(), redis::ErrorKind::Server(_)) {
        BackendErrorKind::Refused
    } else {
        BackendErrorKind::Connection
    };
    backend(
        kind,
        format!("{what}: {error}"),
        Some(Arc::new(error.clone())),
    )
}

/// A [`KvError::Backend`]: the one place this executor builds one.
pub(crate) fn backend(
    kind: BackendErrorKind,
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
) -> KvError {
    KvError::Backend {
        kind,
        message,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_round_up_to_a_millisecond_and_huge_ones_mean_no_expiry() {
        assert_eq!(ttl_ms(None), None);
        assert_eq!(ttl_ms(Some(Duration::from_micros(1))), Some(1));
        assert_eq!(ttl_ms(Some(Duration::from_millis(1500))), Some(1500));
        assert_eq!(ttl_ms(Some(Duration::from_nanos(1_000_001))), Some(2));
        assert_eq!(ttl_ms(Some(Duration::MAX)), None);
        assert_eq!(ttl_arg(Some(Duration::MAX)), "");
    }
}
