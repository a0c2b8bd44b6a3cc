//! One [`Command`] on Redis: the pipeline entries it becomes, and how its answer is read back from
//! their replies.
//!
//! Every command that names keys, but `update` and `transaction`, is one Redis command or one
//! script call ([`scripts`](super::scripts)), done by the server in one step, so it shares a
//! pipeline with the rest of its batch and is never retried: [`plan`] queues its entry and returns
//! a [`Pipelined`] that answers the caller once the pipeline's replies are in. The few that need
//! round trips of their own (a scan, `stats`, the optimistic `update` and `transaction` in
//! [`optimistic`](super::optimistic), `wait_for`'s first read) or none (`purge_expired`, `watch`)
//! become an [`Alone`] in [`Step::Alone`], for the owner task to run in order.

use std::sync::Arc;
use std::time::Duration;

use redis::{Cmd, Pipeline, RedisError, ServerError, Value as RedisValue};
use serde_json::Value;

use super::scripts::{self, Function, Scripts};

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
    /// `list_pop_front` with `wait`: [`feed`](super::feed).
    BlockingPop(Call<ListPopFront>),
    Watch(Call<Watch>),
    WaitFor(Call<WaitFor>),
}

/// Given a command's replies so far, the command to send next, if they call for one.
type Again = Box<dyn FnMut(&[RedisValue]) -> Option<Cmd> + Send>;

/// A command whose entries are queued in a pipeline, waiting for their replies.
pub(crate) struct Pipelined {
    /// How many pipeline entries (and so replies) are its.
    pub(crate) entries: usize,
    /// Given its replies so far, the command to send next in a round trip of its own, if they
    /// call for one (`get`'s native `GET` on a key that holds a list: then `LRANGE`;
    /// `compare_and_set` on equal JSON spelt differently); the last reply replaces the first.
    again: Option<Again>,
    /// Answers the caller from its replies, or with the error that lost them.
    answer: Box<dyn FnOnce(Result<Vec<RedisValue>, KvError>) + Send>,
}

impl Pipelined {
    /// Answers the caller.
    pub(crate) fn finish(self, replies: Result<Vec<RedisValue>, KvError>) {
        (self.answer)(replies)
    }

    /// The command to send again, if `replies` (its own) call for it.
    pub(crate) fn again(&mut self, replies: &[RedisValue]) -> Option<Cmd> {
        self.again.as_mut().and_then(|again| again(replies))
    }
}

/// A [`Pipelined`] of `entries` replies, decoded by `decode` and sent on `reply`.
pub(crate) fn pipelined<T: Send + 'static>(
    entries: usize,
    reply: Reply<T>,
    decode: impl FnOnce(Vec<RedisValue>) -> Result<T, KvError> + Send + 'static,
) -> Step {
    Step::Pipelined(Pipelined {
        entries,
        again: None,
        answer: Box::new(move |replies| {
            // `let _ =`: the caller may have stopped waiting.
            let _ = reply.send(replies.and_then(decode));
        }),
    })
}

/// Queues `command`'s entries in `pipe`, or hands it back to run alone. `stream` is the store's
/// change stream (see [`stream_name`]), which the writing scripts add to when it exists.
pub(crate) fn plan(command: Command, pipe: &mut Pipeline, scripts: &Scripts, stream: &str) -> Step {
    match command {
        Command::Get(Call { args, reply }) => {
            let Get { key } = args;
            // A native `GET`, as fast as Redis gets: exact for every value but a non-empty list,
            // which is a Redis list; there `GET` answers `WRONGTYPE` and `get.lua` reads it, in a
            // second round trip (reads can be repeated: the second one is the call's).
            pipe.cmd("GET").arg(&key);
            // Then `LRANGE` (a list: its items); if that is refused too (the key changed in
            // between, or holds a type of another client's), `get.lua`, which says what it holds.
            let mut lrange = redis::cmd("LRANGE");
            lrange.arg(&key).arg(0).arg(-1);
            let mut next = vec![get(scripts, &key), lrange];
            let again: Option<Again> =
                Some(Box::new(move |replies: &[RedisValue]| match replies {
                    [RedisValue::ServerError(error)] if error.code() == "WRONGTYPE" => next.pop(),
                    _ => None,
                }));
            let decode = move |replies: Vec<RedisValue>| match first(&key, replies)? {
                RedisValue::Array(items) if items.is_empty() => Ok(None),
                items @ RedisValue::Array(_) => list(&key, items).map(|list| Some(Arc::new(list))),
                text => json(&key, text),
            };
            match pipelined(1, reply, decode) {
                Step::Pipelined(pipelined) => Step::Pipelined(Pipelined { again, ..pipelined }),
                alone => alone,
            }
        }
        Command::Set(Call { args, reply }) => {
            let Set { key, value, ttl } = args;
            pipe.add_command(set(scripts, stream, &key, &ttl_arg(ttl), &value));
            pipelined(1, reply, move |replies| first(&key, replies).map(drop))
        }
        Command::Delete(Call { args, reply }) => {
            let Delete { key } = args;
            pipe.add_command(delete(scripts, stream, &key));
            pipelined(1, reply, move |replies| first(&key, replies).map(drop))
        }
        Command::ListAppendUnique(Call { args, reply }) => {
            let ListAppendUnique {
                key,
                items,
                id_key,
                ttl,
            } = args;
            let mut call = write_script(&scripts.list_append_unique, stream, &key);
            call.arg(ttl_arg(ttl)).arg(&id_key);
            for item in &items {
                call.arg(item.to_string());
            }
            // The script appends; the whole list is read natively in the same MULTI/EXEC (atomic
            // with the append, and without converting every element to a Lua string and back).
            pipe.cmd("MULTI")
                .add_command(call)
                .cmd("LRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .cmd("EXEC");
            pipelined(4, reply, move |replies| {
                // A command refused while queued (a permission, say) aborts the EXEC: report
                // that refusal, not the abort.
                let mut replies = replies.into_iter();
                let queued: Vec<RedisValue> = replies.by_ref().take(3).collect();
                if let Some(RedisValue::ServerError(error)) = queued
                    .into_iter()
                    .find(|reply| matches!(reply, RedisValue::ServerError(_)))
                {
                    return Err(backend_error(&key, &error));
                }
                match reply_or_error(&key, replies.next())? {
                    RedisValue::Array(replies) => match <[RedisValue; 2]>::try_from(replies) {
                        Ok([RedisValue::ServerError(error), _]) => {
                            Err(wrong_type(&key, "a list", &error))
                        }
                        // The empty list: the string `[]` (LRANGE refused it).
                        Ok([RedisValue::Int(0), _]) => Ok(Arc::new(Value::Array(Vec::new()))),
                        Ok([_, items]) => list(&key, items).map(Arc::new),
                        Err(_) => Err(unexpected(&key, "an EXEC reply of the wrong length")),
                    },
                    _ => Err(unexpected(&key, "a reply to EXEC that is not a list")),
                }
            })
        }
        Command::ListPopAll(Call { args, reply }) => {
            let ListPopAll { key } = args;
            pipe.add_command(write_script(&scripts.list_pop_all, stream, &key));
            pipelined(1, reply, move |replies| json(&key, first(&key, replies)?))
        }
        Command::ListPush(Call { args, reply }) => {
            let ListPush {
                key,
                items,
                max_len,
                ttl,
            } = args;
            let mut call = write_script(&scripts.list_push, stream, &key);
            call.arg(ttl_arg(ttl)).arg(max_len);
            for item in &items {
                call.arg(item.to_string());
            }
            pipe.add_command(call);
            pipelined(1, reply, move |replies| match replies.into_iter().next() {
                Some(RedisValue::ServerError(error)) => Err(wrong_type(&key, "a list", &error)),
                other => match reply_or_error(&key, other)? {
                    RedisValue::Int(len) => {
                        usize::try_from(len).map_err(|_| unexpected(&key, "a negative list length"))
                    }
                    _ => Err(unexpected(
                        &key,
                        "a reply to list_push that is not an integer",
                    )),
                },
            })
        }
        // With `.wait(..)`: run alone, by the change feed (`feed.rs`).
        Command::ListPopFront(call) if call.args.wait.is_some() => {
            Step::Alone(Alone::BlockingPop(call))
        }
        Command::ListPopFront(Call { args, reply }) => {
            let ListPopFront { key, count, .. } = args;
            let mut call = write_script(&scripts.list_pop_front, stream, &key);
            // The script computes with Lua doubles, printed with 14 digits: a count past that
            // would reach `LRANGE` as `1.8e+19`. No list holds 2^40 items.
            call.arg(count.min(1 << 40));
            pipe.add_command(call);
            pipelined(1, reply, move |replies| match replies.into_iter().next() {
                Some(RedisValue::ServerError(error)) => Err(wrong_type(&key, "a list", &error)),
                other => match reply_or_error(&key, other)? {
                    RedisValue::Array(items) => items
                        .into_iter()
                        .map(|item| match item {
                            RedisValue::BulkString(text) => parse(&key, &text),
                            _ => Err(unexpected(&key, "a list item that is not text")),
                        })
                        .collect(),
                    _ => Err(unexpected(
                        &key,
                        "a reply to list_pop_front that is not a list",
                    )),
                },
            })
        }
        Command::Mset(Call { args, reply }) => {
            let Mset { entries, ttl } = args;
            if entries.is_empty() {
                return pipelined(0, reply, |_| Ok(()));
            }
            let mut call = scripts.mset.call();
            call.arg(3 * entries.len());
            for (key, _) in &entries {
                call.arg(key);
            }
            for (key, _) in &entries {
                call.arg(companion(key));
            }
            for (key, _) in &entries {
                // No stream (`write_script`): a name in the key's slot that is never a stream,
                // its companion, so that the script records nothing.
                match stream {
                    "" => call.arg(companion(key)),
                    stream => call.arg(stream),
                };
            }
            call.arg(STREAM_MAXLEN).arg(ttl_arg(ttl));
            for (_, value) in &entries {
                match value {
                    Value::Array(items) if !items.is_empty() => {
                        call.arg("l").arg(items.len());
                        for item in items {
                            call.arg(item.to_string());
                        }
                    }
                    other => {
                        call.arg("v").arg(other.to_string());
                    }
                }
            }
            pipe.add_command(call);
            let first_key = entries.into_iter().next().map(|(key, _)| key);
            pipelined(1, reply, move |replies| {
                first(first_key.as_deref().unwrap_or(""), replies).map(drop)
            })
        }
        Command::Mget(Call { args, reply }) => {
            let Mget { keys } = args;
            if keys.is_empty() {
                return pipelined(0, reply, |_| Ok(Vec::new()));
            }
            pipe.add_command(mget(scripts, &keys));
            pipelined(1, reply, move |replies| mget_values(&keys, replies))
        }
        Command::Expire(Call { args, reply }) => {
            let Expire { key, ttl } = args;
            pipe.add_command(expire(scripts, &key, ttl));
            pipelined(1, reply, move |replies| flag(&key, first(&key, replies)?))
        }
        Command::Incr(Call { args, reply }) => {
            let Incr { key, by, ttl } = args;
            let mut call = write_script(&scripts.incr, stream, &key);
            call.arg(by).arg(ttl_arg(ttl));
            pipe.add_command(call);
            pipelined(1, reply, move |replies| match replies.into_iter().next() {
                Some(RedisValue::ServerError(error)) if error.code() == "KVOVERFLOW" => {
                    let current = error.details().and_then(|text| text.trim().parse().ok());
                    match current {
                        Some(current) => Err(KvError::Overflow { key, current, by }),
                        None => Err(script_error(&key, &error)),
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
            let mut call = write_script(&scripts.set_if_absent, stream, &key);
            call.arg(ttl_arg(ttl));
            value_args(&mut call, &value);
            pipe.add_command(call);
            pipelined(1, reply, move |replies| flag(&key, first(&key, replies)?))
        }
        Command::CompareAndSet(Call { args, reply }) => {
            let CompareAndSet {
                key,
                expected,
                new,
                ttl,
            } = args;
            let mut call = write_script(&scripts.compare_and_set, stream, &key);
            match ttl {
                // A TTL too large to represent: the key never expires (`''`), as in-process.
                Some(ttl) => call.arg(ttl_arg(Some(ttl))),
                None => call.arg("keep"),
            };
            match &expected {
                None => call.arg("missing").arg(""),
                // serde_json's compact text, object keys sorted: what this crate stores.
                Some(expected) => call.arg("text").arg(expected.to_string()),
            };
            value_args(&mut call, &new);
            // The script swaps when the stored text is the expected text, and otherwise answers
            // with the stored text: equal JSON spelt differently (another client's spaces or key
            // order) is sent again with that text as the expectation, so that it swaps only if
            // the value is still the one compared (at most `CAS_TRIES` times in all).
            let mut tries = 1;
            let expected_again = expected.clone();
            let key_again = key.clone();
            let first_call = call.clone();
            let again: Option<Again> =
                Some(Box::new(move |replies: &[RedisValue]| match replies {
                    [RedisValue::BulkString(text)]
                        if tries < CAS_TRIES
                            && same_json(&key_again, text, expected_again.as_ref()) =>
                    {
                        tries += 1;
                        Some(with_arg(&first_call, CAS_EXPECTED_ARG, text))
                    }
                    _ => None,
                }));
            pipe.add_command(call);
            let decode = move |replies: Vec<RedisValue>| match first(&key, replies)? {
                RedisValue::BulkString(text) if same_json(&key, &text, expected.as_ref()) => {
                    Err(KvError::Contended {
                        op: "compare_and_set",
                        key,
                        attempts: CAS_TRIES,
                    })
                }
                RedisValue::BulkString(_) => Ok(false),
                other => flag(&key, other),
            };
            match pipelined(1, reply, decode) {
                Step::Pipelined(pipelined) => Step::Pipelined(Pipelined { again, ..pipelined }),
                alone => alone,
            }
        }
        Command::GetDel(Call { args, reply }) => {
            let GetDel { key } = args;
            pipe.add_command(write_script(&scripts.get_del, stream, &key));
            pipelined(1, reply, move |replies| json(&key, first(&key, replies)?))
        }
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
            let mut call = scripts.persist.call();
            call.arg(2).arg(&key).arg(companion(&key));
            pipe.add_command(call);
            pipelined(1, reply, move |replies| flag(&key, first(&key, replies)?))
        }
        Command::PurgeExpired(call) => Step::Alone(Alone::PurgeExpired(call)),
        Command::Stats(call) => Step::Alone(Alone::Stats(call)),
        Command::Shutdown(call) => Step::Alone(Alone::Shutdown(call)),
        Command::ScanPrefix(call) => Step::Alone(Alone::ScanPrefix(call)),
        Command::Update(call) => Step::Alone(Alone::Update(call)),
        Command::Transaction(call) => Step::Alone(Alone::Transaction(call)),
        Command::Watch(call) => Step::Alone(Alone::Watch(call)),
        Command::WaitFor(call) => Step::Alone(Alone::WaitFor(call)),
    }
}

/// The MAXLEN (approximate, `MAXLEN ~`) the writing scripts trim the change stream to when they
/// add to it: about this many of the newest changes are kept for watchers to read.
pub(crate) const STREAM_MAXLEN: usize = 10_000;

/// The store's change stream: the builder's prefix followed by `ekv:changes` (see
/// `docs/redis.md`). Under the prefix, so that an ACL user confined to it (`~app:*`) may use it,
/// and in the prefix's hash slot when the prefix has a hash tag (`{tenant}:`).
pub(crate) fn stream_name(prefix: &str) -> String {
    format!("{prefix}ekv:changes")
}

/// The id index (a hash) beside the list at `key`, named so that it starts with the key (so it
/// is under the key's prefix, for ACL users confined to it) and shares the key's hash slot:
/// `key:ekv:ids` if the key has a hash tag, else `key{key}:ekv:ids:w` (the first `{` is then the
/// one added, so the tag is the whole key; see `docs/redis.md`).
pub(crate) fn companion(key: &str) -> String {
    if has_hash_tag(key) {
        format!("{key}:ekv:ids")
    } else {
        format!("{key}{{{key}}}:ekv:ids:w")
    }
}

/// Whether `key` has a Redis Cluster hash tag: a `{`, and a `}` after it with something between
/// them (the first `{`, and the first `}` after it).
fn has_hash_tag(key: &str) -> bool {
    key.find('{')
        .and_then(|open| key[open + 1..].find('}'))
        .is_some_and(|length| length > 0)
}

/// Whether `key` is a name the layout reserves (an id index or a change stream), which
/// `scan_prefix` and `stats` do not count as the store's keys.
pub(crate) fn is_reserved(key: &str, stream: &str) -> bool {
    key == stream || key.ends_with(":ekv:ids") || key.ends_with("}:ekv:ids:w")
}

/// `FCALL` of a writing script on one key: KEYS the key, its companion and the change stream,
/// ARGV[1] the stream's MAXLEN; the caller adds the rest of the arguments. An empty `stream` (a
/// Redis Cluster handle without a hash tag, `slots.rs`) is not named: KEYS[3] is then nil, which
/// the scripts take as no stream.
fn write_script(script: &Function, stream: &str, key: &str) -> Cmd {
    let mut call = script.call();
    if stream.is_empty() {
        call.arg(2).arg(key).arg(companion(key));
    } else {
        call.arg(3).arg(key).arg(companion(key)).arg(stream);
    }
    call.arg(STREAM_MAXLEN);
    call
}

/// A value as the scripts take it: `l` and its items for a non-empty array (stored as a Redis
/// list), else `v` and its compact JSON text.
fn value_args(call: &mut Cmd, value: &Value) {
    match value {
        Value::Array(items) if !items.is_empty() => {
            call.arg("l");
            for item in items {
                call.arg(item.to_string());
            }
        }
        other => {
            call.arg("v").arg(other.to_string());
        }
    }
}

/// `get.lua` on `key`: the value's text (a list joined), or nil.
pub(crate) fn get(scripts: &Scripts, key: &str) -> Cmd {
    let mut call = scripts.get.call();
    call.arg(1).arg(key);
    call
}

/// `mget.lua` on `keys` (at least one): one value's text, or nil, per key.
pub(crate) fn mget<K: AsRef<str>>(scripts: &Scripts, keys: &[K]) -> Cmd {
    let mut call = scripts.mget.call();
    call.arg(keys.len());
    for key in keys {
        call.arg(key.as_ref());
    }
    call
}

/// The values of an `mget.lua` reply, one per key, or the error it gave, naming its key.
pub(crate) fn mget_values<K: AsRef<str>>(
    keys: &[K],
    replies: Vec<RedisValue>,
) -> Result<Vec<Option<Arc<Value>>>, KvError> {
    let key = |n: usize| keys.get(n).map(AsRef::as_ref).unwrap_or("");
    match replies.into_iter().next() {
        Some(RedisValue::Array(values)) if values.len() == keys.len() => keys
            .iter()
            .zip(values)
            .map(|(key, value)| json(key.as_ref(), value))
            .collect(),
        // `KVNOTJSON key <n> ...`, `KVFOREIGN key <n> holds ...`: name the key itself.
        Some(RedisValue::ServerError(error)) => {
            let detail = error.details().unwrap_or("").trim();
            let mut words = detail.splitn(3, ' ');
            let at = match (words.next(), words.next().map(str::parse::<usize>)) {
                (Some("key"), Some(Ok(n))) if n >= 1 => Some(n - 1),
                _ => None,
            };
            match at {
                Some(n) => {
                    let rest = words.next().unwrap_or("");
                    let detail = match error.code() {
                        "KVFOREIGN" => format!("the key {rest}"),
                        _ => rest.to_owned(),
                    };
                    Err(script_error_with(key(n), error.code(), &detail, &error))
                }
                None => Err(script_error(key(0), &error)),
            }
        }
        other => {
            reply_or_error(key(0), other)?;
            Err(unexpected(
                key(0),
                "a reply to mget that is not one value per key",
            ))
        }
    }
}

/// `set.lua`: stores `value` at `key` with `ttl` (a [`ttl_arg`], or `keep`).
pub(crate) fn set(scripts: &Scripts, stream: &str, key: &str, ttl: &str, value: &Value) -> Cmd {
    let mut call = write_script(&scripts.set, stream, key);
    call.arg(ttl);
    value_args(&mut call, value);
    call
}

/// `delete.lua`: removes `key` and its companion.
pub(crate) fn delete(scripts: &Scripts, stream: &str, key: &str) -> Cmd {
    write_script(&scripts.delete, stream, key)
}

/// `expire.lua`: gives a live `key` (and its companion) a new TTL.
pub(crate) fn expire(scripts: &Scripts, key: &str, ttl: Duration) -> Cmd {
    let mut call = scripts.expire.call();
    call.arg(2)
        .arg(key)
        .arg(companion(key))
        .arg(ttl_arg(Some(ttl)));
    call
}

/// A TTL in whole milliseconds, rounded up (a TTL under a millisecond must not become the `0`
/// Redis refuses); `None` for no TTL or one too large to represent.
pub(crate) fn ttl_ms(ttl: Option<Duration>) -> Option<u64> {
    let ms = ttl?.as_nanos().div_ceil(1_000_000);
    (ms <= MAX_TTL_MS).then_some(ms as u64)
}

/// A TTL as a script argument: milliseconds, or `''` for none.
pub(crate) fn ttl_arg(ttl: Option<Duration>) -> String {
    ttl_ms(ttl).map(|ms| ms.to_string()).unwrap_or_default()
}

/// The one reply of a one-entry command about `key` (empty for a command about several keys),
/// with a server error turned into [`KvError::Backend`] naming the key.
fn first(key: &str, replies: Vec<RedisValue>) -> Result<RedisValue, KvError> {
    reply_or_error(key, replies.into_iter().next())
}

fn reply_or_error(key: &str, reply: Option<RedisValue>) -> Result<RedisValue, KvError> {
    match reply {
        Some(RedisValue::ServerError(error)) => Err(script_error(key, &error)),
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
        RedisValue::ServerError(error) => Err(script_error(key, &error)),
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

/// A Redis list's elements (an `LRANGE` reply) as the JSON array they are the items of: each
/// element parsed on its own (so an element that is not exactly one JSON value is refused), at
/// most one level less deep than a value.
fn list(key: &str, items: RedisValue) -> Result<Value, KvError> {
    let RedisValue::Array(items) = items else {
        return Err(match items {
            RedisValue::ServerError(error) => script_error(key, &error),
            _ => unexpected(key, "a reply to LRANGE that is not a list"),
        });
    };
    items
        .into_iter()
        .map(|item| match item {
            RedisValue::BulkString(text) if text_depth(&text) >= MAX_DEPTH => Err(backend(
                BackendErrorKind::Data,
                format!("key `{key}` holds JSON nested deeper than {MAX_DEPTH} levels"),
                None,
            )),
            RedisValue::BulkString(text) => parse(key, &text),
            _ => Err(unexpected(key, "a list item that is not text")),
        })
        .collect::<Result<Vec<Value>, KvError>>()
        .map(Value::Array)
}

/// How many times `compare_and_set` is sent in all while the stored text keeps changing to other
/// spellings of the expected value.
const CAS_TRIES: u32 = 16;

/// Where `compare_and_set`'s expected text is among its command's arguments (`FCALL`, the
/// function, 3, the 3 keys, MAXLEN, TTL, condition, then the text).
const CAS_EXPECTED_ARG: usize = 9;

/// Whether stored `text` is JSON equal to `expected` (text that is not JSON, or too deep, is not).
fn same_json(key: &str, text: &[u8], expected: Option<&Value>) -> bool {
    expected.is_some_and(|expected| parse(key, text).is_ok_and(|current| current == *expected))
}

/// `command` with its argument at `index` replaced by `value`.
fn with_arg(command: &Cmd, index: usize, value: &[u8]) -> Cmd {
    let mut changed = Cmd::new();
    for (at, arg) in command.args_iter().enumerate() {
        if let redis::Arg::Simple(bytes) = arg {
            changed.arg(if at == index { value } else { bytes });
        }
    }
    changed
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
        return script_error(key, error);
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

/// An error reply of our scripts as the [`KvError::Backend`] it stands for, naming the key (rule
/// 13): data this crate cannot read (`KVNOTJSON`, `KVTOODEEP`, `KVFOREIGN`: kind
/// [`Data`](BackendErrorKind::Data)) or arguments a script refused (`KVBADARG`: a bug, kind
/// [`Protocol`](BackendErrorKind::Protocol)). Any other server error (the server's own refusal)
/// is [`backend_error`]'s. `KVWRONGTYPE` and `KVOVERFLOW` are mapped by the calls that expect
/// them ([`wrong_type`], `incr`).
pub(crate) fn script_error(key: &str, error: &ServerError) -> KvError {
    script_error_with(
        key,
        error.code(),
        error.details().unwrap_or("").trim(),
        error,
    )
}

/// [`script_error`] with the code and detail given apart (`mget` names the key itself).
fn script_error_with(key: &str, code: &str, detail: &str, error: &ServerError) -> KvError {
    let source: Option<Arc<dyn std::error::Error + Send + Sync>> = Some(Arc::new(error.clone()));
    let (kind, message) = match code {
        "KVNOTJSON" => (
            BackendErrorKind::Data,
            format!("key `{key}` holds text that is not JSON: {detail}"),
        ),
        "KVTOODEEP" if detail == MAX_DEPTH.to_string() => (
            BackendErrorKind::Data,
            format!("key `{key}` holds JSON nested deeper than {MAX_DEPTH} levels"),
        ),
        "KVTOODEEP" => (
            BackendErrorKind::Data,
            format!("key `{key}` holds a list item nested deeper than {detail} levels"),
        ),
        "KVFOREIGN" => {
            let message = match detail.strip_prefix("the key ") {
                Some(rest) => format!("key `{key}` {rest}, which ephemeral-kv never writes"),
                None => format!("key `{key}`: {detail}, which ephemeral-kv never writes"),
            };
            (BackendErrorKind::Data, message)
        }
        "KVBADARG" => (
            BackendErrorKind::Protocol,
            format!("a script refused its arguments for key `{key}` (a bug): {detail}"),
        ),
        _ => return backend_error(key, error),
    };
    backend(kind, message, source)
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

/// Whether a reply says the server lost our functions (a restart without persistence, or
/// `FUNCTION FLUSH`: `Function not found`, [`scripts::is_not_loaded`]). An `EXEC` reply holding
/// one counts too (an `FCALL` inside `MULTI` is refused only when `EXEC` runs it).
pub(crate) fn is_noscript(reply: &RedisValue) -> bool {
    match reply {
        RedisValue::ServerError(error) => scripts::is_not_loaded(error),
        RedisValue::Array(replies) => replies.iter().any(
            |reply| matches!(reply, RedisValue::ServerError(error) if scripts::is_not_loaded(error)),
        ),
        _ => false,
    }
}

/// Where the `MULTI` of the `EXEC` at `exec` starts among a pipeline's `commands` (`exec` itself
/// if it is no `EXEC` of a group).
pub(crate) fn group_start(commands: &[&Cmd], exec: usize) -> usize {
    let named = |command: &Cmd, name: &[u8]| matches!(command.args_iter().next(), Some(redis::Arg::Simple(arg)) if arg.eq_ignore_ascii_case(name));
    if !commands
        .get(exec)
        .is_some_and(|command| named(command, b"EXEC"))
    {
        return exec;
    }
    (0..exec)
        .rev()
        .find(|&index| named(commands[index], b"MULTI"))
        .unwrap_or(exec)
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
