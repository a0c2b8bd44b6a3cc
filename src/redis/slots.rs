//! Redis Cluster: which hash slot each key is in, what the executor refuses or splits because of
//! it, and the connections it opens to single nodes (`docs/redis-deploy.md`, "Redis Cluster").
//!
//! A cluster keeps each of its 16384 hash slots on one primary; a command, a script or a `WATCH`
//! may only name keys of one slot. The executor's scripts name a key, its id-index companion (in
//! the key's slot by construction, see [`exec::companion`]) and, while someone watches, the
//! change stream. So on a cluster:
//! - a **prefix with a hash tag** (`{tenant-7}:`) puts every key of the store, the companions and
//!   the change stream in one slot: every call keeps its single-server guarantees, `watch`,
//!   `wait_for` and the blocking pop included. This is the way to use a cluster;
//! - **without a tag**, keys spread over the slots. Every call that names one key works (the
//!   writes then never name the stream: there is no feed); `mget` and `scan_prefix` work across
//!   slots, each key read atomically but not all in one snapshot; `mset` and `transaction` over
//!   keys of different slots are refused before anything is written ([`cross_slot`]), and
//!   `watch`, `wait_for` and the blocking pop are refused with advice ([`no_feed`]).
//!
//! [`Cluster::route`] applies these rules to each command before [`plan`](super::exec::plan);
//! [`slot_of`] tells the owner loop which slot a planned command's entries are for, so that each
//! batch is sent as one pipeline per slot (the cluster connection routes a pipeline by its first
//! key). [`Cluster::node`] gives `update` and `transaction` a connection to the primary of their
//! slot of their own, on which nothing else runs between `WATCH` and `EXEC` and which never
//! reconnects or follows a redirection by itself ([`optimistic`](super::optimistic)).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::{AsyncConnectionConfig, Value as RedisValue};
use serde_json::Value;
use tokio::sync::oneshot;

use super::client::NodeOpener;
use super::connection::Connection;
use super::exec::{self, backend, connection_error};
use crate::command::{Call, Command, Mget};
use crate::error::{BackendErrorKind, KvError};

/// How many hash slots a cluster has.
const SLOTS: u16 = 16384;

/// The hash slot of `key`, as Redis computes it: CRC16 (XMODEM) of its hash tag (what is between
/// the first `{` and the first `}` after it, if not empty), else of the whole key, mod 16384.
pub(crate) fn slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let tagged = bytes.iter().position(|&b| b == b'{').and_then(|open| {
        let close = bytes[open + 1..].iter().position(|&b| b == b'}')?;
        (close > 0).then(|| &bytes[open + 1..open + 1 + close])
    });
    crc16::State::<crc16::XMODEM>::calculate(tagged.unwrap_or(bytes)) % SLOTS
}

/// Whether every key that starts with `prefix` has the prefix's hash tag, and so one slot.
pub(crate) fn has_tag(prefix: &str) -> bool {
    prefix
        .find('{')
        .and_then(|open| prefix[open + 1..].find('}'))
        .is_some_and(|length| length > 0)
}

/// The slot the entries of one planned command are for: that of the first key its first keyed
/// command names (`FCALL`/`FCALL_RO`/`EVALSHA`/`EVAL` with keys: the first key; `MULTI`, `EXEC`:
/// none; any other
/// command: its first argument). `None` for entries that name no key.
pub(crate) fn slot_of<'a>(commands: impl IntoIterator<Item = &'a redis::Cmd>) -> Option<u16> {
    commands.into_iter().find_map(|command| {
        let mut args = command.args_iter().filter_map(|arg| match arg {
            redis::Arg::Simple(arg) => Some(arg),
            _ => None, // a cursor
        });
        let name = args.next()?;
        let scripted = [&b"FCALL"[..], b"FCALL_RO", b"EVALSHA", b"EVAL"];
        let key = if scripted.iter().any(|call| name.eq_ignore_ascii_case(call)) {
            let _script = args.next()?;
            match args.next()? {
                b"0" => None,
                _ => args.next(),
            }
        } else if name.eq_ignore_ascii_case(b"MULTI") || name.eq_ignore_ascii_case(b"EXEC") {
            None
        } else {
            args.next()
        }?;
        Some(slot(std::str::from_utf8(key).ok()?))
    })
}

/// The refusal of a call over `first` and `second`, keys of different slots.
pub(crate) fn cross_slot(op: &str, first: &str, second: &str) -> KvError {
    KvError::InvalidArgument {
        key: first.to_owned(),
        reason: format!(
            "`{op}` on a Redis Cluster needs its keys in one hash slot, but `{first}` is in slot \
             {} and `{second}` in slot {}; nothing was written. Give the handle a prefix with a \
             hash tag (such as `{{tenant-7}}:`), which puts all its keys in one slot",
            slot(first),
            slot(second)
        ),
    }
}

/// The first two keys of `keys` in different slots, if any.
pub(crate) fn two_slots<'a>(keys: impl IntoIterator<Item = &'a str>) -> Option<(&'a str, &'a str)> {
    let mut keys = keys.into_iter();
    let first = keys.next()?;
    let at = slot(first);
    keys.find(|key| slot(key) != at).map(|other| (first, other))
}

/// The refusal of `watch`, `wait_for` and the blocking pop on a cluster handle whose builder
/// prefix has no hash tag: its change stream cannot share a slot with the keys it records.
fn no_feed(op: &str, prefix: &str) -> KvError {
    KvError::InvalidArgument {
        key: prefix.to_owned(),
        reason: format!(
            "`{op}` on a Redis Cluster needs the change stream in the slot of the keys it \
             records, which takes a builder prefix with a hash tag: build the handle with \
             `.prefix(\"{{{}}}:\")` (or any prefix holding `{{tag}}`) instead of `{prefix}`",
            prefix.trim_end_matches(':')
        ),
    }
}

/// A key whose id-index companion cannot share its slot: it holds a `{` that makes no hash tag
/// (`a{}b`, `a{b`), so every name that starts with it has another tag.
fn companion_elsewhere(key: &str) -> Option<KvError> {
    (slot(&exec::companion(key)) != slot(key)).then(|| KvError::InvalidArgument {
        key: key.to_owned(),
        reason: "on a Redis Cluster a key whose `{` makes no hash tag (nothing between it and \
                 the next `}`, or no `}`) cannot be written: its id index would be in another \
                 hash slot. Use a prefix with a hash tag, or keys without `{`"
            .to_owned(),
    })
}

/// What [`Cluster::route`] makes of a command.
pub(crate) enum Routed {
    /// Plan it as on one server.
    Plan(Command),
    /// Plan each of these: an `mget` across slots, one per slot; a task joins their answers.
    Split(Vec<Command>),
    /// It was refused (and answered).
    Refused,
}

/// One slot range's primary, from `CLUSTER SLOTS`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Range {
    first: u16,
    last: u16,
    host: String,
    port: u16,
}

/// A cluster's side of the owner task: the rules above, and connections to single nodes.
pub(crate) struct Cluster {
    /// Whether the builder's prefix has a hash tag (then the store has a change stream).
    pub(crate) tagged: bool,
    /// The builder's prefix, for the advice of [`no_feed`].
    prefix: String,
    opener: NodeOpener,
    /// The primaries' slot ranges, as last read; empty until needed, and after an error.
    ranges: Vec<Range>,
    /// Connections to single primaries, by address: each used by the owner task alone.
    nodes: HashMap<(String, u16), redis::aio::MultiplexedConnection>,
    connect_timeout: Duration,
    response_timeout: Duration,
}

impl Cluster {
    pub(crate) fn new(
        prefix: &str,
        opener: NodeOpener,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> Cluster {
        Cluster {
            tagged: has_tag(prefix),
            prefix: prefix.to_owned(),
            opener,
            ranges: Vec::new(),
            nodes: HashMap::new(),
            connect_timeout,
            response_timeout,
        }
    }

    /// Applies the cluster's rules to `command` (see the module docs): refuses it (answering
    /// it), splits an `mget` over several slots, or hands it back to plan.
    pub(crate) fn route(&self, command: Command) -> Routed {
        /// Refuses `$call` with `$error` if there is one.
        macro_rules! refuse_if {
            ($call:expr, $error:expr) => {
                match $error {
                    Some(error) => {
                        $call.answer(Err(error));
                        return Routed::Refused;
                    }
                    None => Command::from($call),
                }
            };
        }
        /// A call on one key, refused if the key's companion is in another slot.
        macro_rules! one_key {
            ($call:expr) => {{
                let call = $call;
                let error = companion_elsewhere(&call.args.key);
                refuse_if!(call, error)
            }};
        }
        let command = match command {
            Command::Get(call) => Command::from(call),
            Command::Exists(call) => Command::from(call),
            Command::Ttl(call) => Command::from(call),
            Command::Set(call) => one_key!(call),
            Command::Delete(call) => one_key!(call),
            Command::ListAppendUnique(call) => one_key!(call),
            Command::ListPopAll(call) => one_key!(call),
            Command::ListPush(call) => one_key!(call),
            Command::ListPopFront(call) => {
                let error = match call.args.wait {
                    Some(_) if !self.tagged => {
                        Some(no_feed("list_pop_front(..).wait(..)", &self.prefix))
                    }
                    _ => companion_elsewhere(&call.args.key),
                };
                refuse_if!(call, error)
            }
            Command::Expire(call) => one_key!(call),
            Command::Incr(call) => one_key!(call),
            Command::SetIfAbsent(call) => one_key!(call),
            Command::CompareAndSet(call) => one_key!(call),
            Command::GetDel(call) => one_key!(call),
            Command::Persist(call) => one_key!(call),
            Command::Update(call) => one_key!(call),
            Command::Mset(call) => {
                let keys = call.args.entries.iter().map(|(key, _)| key.as_str());
                let error = match two_slots(keys) {
                    Some((first, second)) => Some(cross_slot("mset", first, second)),
                    None => call
                        .args
                        .entries
                        .iter()
                        .find_map(|(key, _)| companion_elsewhere(key)),
                };
                refuse_if!(call, error)
            }
            Command::Mget(call) => {
                if two_slots(call.args.keys.iter().map(String::as_str)).is_none() {
                    Command::from(call)
                } else {
                    return Routed::Split(split_mget(call));
                }
            }
            Command::Watch(call) => {
                let error = (!self.tagged).then(|| no_feed("watch", &self.prefix));
                refuse_if!(call, error)
            }
            Command::WaitFor(call) => {
                let error = (!self.tagged).then(|| no_feed("wait_for", &self.prefix));
                refuse_if!(call, error)
            }
            // Checked as they run: a transaction's keys are known only as its closure reads and
            // writes them (`optimistic.rs`); a scan reads every primary.
            Command::Transaction(call) => Command::from(call),
            Command::ScanPrefix(call) => Command::from(call),
            Command::PurgeExpired(call) => Command::from(call),
            Command::Stats(call) => Command::from(call),
            Command::Shutdown(call) => Command::from(call),
        };
        Routed::Plan(command)
    }

    /// The primaries' slot ranges, read now with `CLUSTER SLOTS` on `connection`.
    async fn refresh(&mut self, connection: &mut Connection) -> Result<(), KvError> {
        let reply: RedisValue = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(connection)
            .await
            .map_err(|error| connection_error("redis CLUSTER SLOTS failed", &error))?;
        self.ranges = ranges(reply).ok_or_else(|| {
            backend(
                BackendErrorKind::Protocol,
                "redis answered CLUSTER SLOTS with an unexpected reply".to_owned(),
                None,
            )
        })?;
        Ok(())
    }

    /// Takes in that `slot` is served at `address` (`host:port`) now, as a `MOVED` said.
    pub(crate) fn moved(&mut self, slot: u16, address: &str) {
        let Some((host, port)) = address.rsplit_once(':') else {
            return self.forget();
        };
        let Ok(port) = port.parse() else {
            return self.forget();
        };
        // Looked up first to last: this one wins over the stale range.
        self.ranges.insert(
            0,
            Range {
                first: slot,
                last: slot,
                host: host.to_owned(),
                port,
            },
        );
    }

    /// Forgets the slot ranges and the node connections, after an error or a redirection: the
    /// next call reads the ranges again and connects afresh.
    pub(crate) fn forget(&mut self) {
        self.ranges.clear();
        self.nodes.clear();
    }

    /// A connection of the owner task's own to the primary of `key`'s slot (see the module
    /// docs), opened if needed; `connection` (the cluster connection) reads the slot ranges.
    pub(crate) async fn node(
        &mut self,
        connection: &mut Connection,
        key: &str,
    ) -> Result<Connection, KvError> {
        let at = slot(key);
        let find = |ranges: &[Range]| {
            ranges
                .iter()
                .find(|range| range.first <= at && at <= range.last)
                .map(|range| (range.host.clone(), range.port))
        };
        let address = match find(&self.ranges) {
            Some(address) => address,
            None => {
                self.refresh(connection).await?;
                find(&self.ranges).ok_or_else(|| {
                    backend(
                        BackendErrorKind::Connection,
                        format!("no Redis Cluster node serves hash slot {at} (of key `{key}`)"),
                        None,
                    )
                })?
            }
        };
        self.open(address).await
    }

    /// A connection to each primary, for a `SCAN` of every node (or `DBSIZE`).
    pub(crate) async fn primaries(
        &mut self,
        connection: &mut Connection,
    ) -> Result<Vec<Connection>, KvError> {
        self.refresh(connection).await?;
        let mut addresses: Vec<(String, u16)> = self
            .ranges
            .iter()
            .map(|range| (range.host.clone(), range.port))
            .collect();
        addresses.sort_unstable();
        addresses.dedup();
        let mut connections = Vec::with_capacity(addresses.len());
        for address in addresses {
            connections.push(self.open(address).await?);
        }
        Ok(connections)
    }

    async fn open(&mut self, address: (String, u16)) -> Result<Connection, KvError> {
        if let Some(node) = self.nodes.get(&address) {
            return Ok(Connection::Node(node.clone()));
        }
        let client = self.opener.client(&address.0, address.1)?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.response_timeout));
        let node = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|error| {
                let what = format!(
                    "cannot connect to Redis Cluster node {}:{}",
                    address.0, address.1
                );
                connection_error(&what, &error)
            })?;
        self.nodes.insert(address, node.clone());
        Ok(Connection::Node(node))
    }
}

/// An `mget` over keys of several slots as one `mget` per slot (each read atomically), and a task
/// that answers the caller with their values in the order of its keys once all are in.
fn split_mget(call: Call<Mget>) -> Vec<Command> {
    let Call { args, reply } = call;
    let Mget { keys } = args;
    let mut groups: Vec<(u16, Vec<usize>)> = Vec::new();
    for (index, key) in keys.iter().enumerate() {
        let at = slot(key);
        match groups.iter_mut().find(|(slot, _)| *slot == at) {
            Some((_, indexes)) => indexes.push(index),
            None => groups.push((at, vec![index])),
        }
    }
    let mut commands = Vec::with_capacity(groups.len());
    let mut answers = Vec::with_capacity(groups.len());
    for (_, indexes) in groups {
        let (sender, answer) = oneshot::channel();
        commands.push(Command::from(Call {
            args: Mget {
                keys: indexes.iter().map(|&index| keys[index].clone()).collect(),
            },
            reply: sender,
        }));
        answers.push((indexes, answer));
    }
    let total = keys.len();
    tokio::spawn(async move {
        let mut values: Vec<Option<Arc<Value>>> = vec![None; total];
        for (indexes, answer) in answers {
            let got = answer.await.unwrap_or_else(|_| {
                Err(backend(
                    BackendErrorKind::Protocol,
                    "the redis executor dropped a call".to_owned(),
                    None,
                ))
            });
            match got {
                Ok(got) => {
                    for (index, value) in indexes.into_iter().zip(got) {
                        values[index] = value;
                    }
                }
                Err(error) => {
                    let _ = reply.send(Err(error));
                    return;
                }
            }
        }
        let _ = reply.send(Ok(values));
    });
    commands
}

/// The primaries' ranges of a `CLUSTER SLOTS` reply: `[[first, last, [host, port, id, ..],
/// replicas..], ..]`.
fn ranges(reply: RedisValue) -> Option<Vec<Range>> {
    let RedisValue::Array(entries) = reply else {
        return None;
    };
    entries
        .into_iter()
        .map(|entry| {
            let RedisValue::Array(parts) = entry else {
                return None;
            };
            let mut parts = parts.into_iter();
            let (Some(RedisValue::Int(first)), Some(RedisValue::Int(last))) =
                (parts.next(), parts.next())
            else {
                return None;
            };
            let Some(RedisValue::Array(primary)) = parts.next() else {
                return None;
            };
            let mut primary = primary.into_iter();
            let host = match primary.next()? {
                RedisValue::BulkString(host) => String::from_utf8(host).ok()?,
                RedisValue::SimpleString(host) => host,
                _ => return None,
            };
            let RedisValue::Int(port) = primary.next()? else {
                return None;
            };
            Some(Range {
                first: u16::try_from(first).ok()?,
                last: u16::try_from(last).ok()?,
                host,
                port: u16::try_from(port).ok()?,
            })
        })
        .collect()
}

/// Where a `MOVED` reply (`MOVED <slot> <host>:<port>`) among `replies` says a slot is served now.
pub(crate) fn moved_in(replies: &[RedisValue]) -> Option<(u16, String)> {
    replies.iter().find_map(|reply| match reply {
        RedisValue::ServerError(error) if error.code() == "MOVED" => moved_detail(error.details()?),
        RedisValue::Array(replies) => moved_in(replies),
        _ => None,
    })
}

/// Where a `MOVED` error says a slot is served now.
pub(crate) fn moved_error(error: &redis::RedisError) -> Option<(u16, String)> {
    match error.kind() {
        redis::ErrorKind::Server(redis::ServerErrorKind::Moved) => error
            .redirect_node()
            .map(|(node, slot)| (slot, node.to_owned())),
        _ => error.clone().into_server_errors().and_then(|errors| {
            errors.iter().find_map(|(_, error)| match error.code() {
                "MOVED" => moved_detail(error.details()?),
                _ => None,
            })
        }),
    }
}

fn moved_detail(detail: &str) -> Option<(u16, String)> {
    let mut words = detail.split_ascii_whitespace();
    let slot = words.next()?.parse().ok()?;
    Some((slot, words.next()?.to_owned()))
}

/// Whether a reply says the command went to a node that does not serve its slot now (`MOVED`,
/// `ASK`), or that the cluster cannot serve it at the moment (`CLUSTERDOWN`, `TRYAGAIN`): the
/// command was not run.
pub(crate) fn redirected(reply: &RedisValue) -> bool {
    let code = |reply: &RedisValue| match reply {
        RedisValue::ServerError(error) => {
            matches!(error.code(), "MOVED" | "ASK" | "CLUSTERDOWN" | "TRYAGAIN")
        }
        _ => false,
    };
    match reply {
        RedisValue::Array(replies) => replies.iter().any(code),
        reply => code(reply),
    }
}

/// Whether `error` is a redirection or a cluster refusal ([`redirected`]'s codes), or an aborted
/// `MULTI` holding one: nothing was run.
pub(crate) fn redirected_error(error: &redis::RedisError) -> bool {
    if error.is_cluster_error() {
        return true;
    }
    error.clone().into_server_errors().is_some_and(|errors| {
        errors
            .iter()
            .any(|(_, error)| matches!(error.code(), "MOVED" | "ASK" | "CLUSTERDOWN" | "TRYAGAIN"))
    })
}

/// Whether `error` is a `MOVED` refusing `pipe`, a pipeline of one command, on the cluster
/// connection: that command did not run (see `send` in the executor).
pub(crate) fn moved_alone(
    connection: &Connection,
    pipe: &redis::Pipeline,
    error: &redis::RedisError,
) -> bool {
    matches!(connection, Connection::Cluster(_))
        && pipe.cmd_iter().count() == 1
        && error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::Moved)
}

/// Sends `command` on `connection` (used by the owner's scans and counts on single nodes).
pub(crate) async fn query<T: redis::FromRedisValue>(
    connection: &mut Connection,
    command: &redis::Cmd,
    what: &str,
) -> Result<T, KvError> {
    let value = connection
        .req_packed_command(command)
        .await
        .map_err(|error| connection_error(what, &error))?;
    redis::from_redis_value(value).map_err(|error| {
        backend(
            BackendErrorKind::Protocol,
            format!("{what}: an unexpected reply: {error}"),
            None,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_redis_own() {
        // As `CLUSTER KEYSLOT` answers.
        assert_eq!(slot("foo"), 12182);
        assert_eq!(slot("bar"), 5061);
        assert_eq!(slot("{user1000}.following"), slot("{user1000}.followers"));
        assert_eq!(slot("{user1000}.following"), slot("user1000"));
        assert_eq!(slot("foo{}{bar}"), slot("foo{}{bar}")); // the whole key: empty first tag
        assert_ne!(slot("foo{}{bar}"), slot("bar"));
        assert_eq!(slot("foo{{bar}}zap"), slot("{bar"));
        assert_eq!(slot(""), 0);
        for key in ["a", "app:k", "{t}:x", "x{y}z", "{}", "{a"] {
            let ours = slot(key);
            let theirs = redis::cluster_routing::Slot::for_key(key);
            let same = redis::cluster_routing::Slot::new(ours) == Some(theirs);
            assert!(same, "{key}");
        }
    }

    #[test]
    fn a_tag_is_a_non_empty_first_brace_pair() {
        assert!(has_tag("{tenant-7}:"));
        assert!(has_tag("app:{t}:"));
        assert!(!has_tag("app:"));
        assert!(!has_tag("{}:"));
        assert!(!has_tag("{open:"));
        assert!(!has_tag("}{"));
    }

    #[test]
    fn a_planned_command_is_for_the_slot_of_its_first_key() {
        let mut evalsha = redis::cmd("EVALSHA");
        evalsha.arg("abc").arg(2).arg("k1").arg("k2").arg("x");
        assert_eq!(slot_of([&evalsha]), Some(slot("k1")));
        let mut fcall = redis::cmd("FCALL");
        fcall.arg("ekv_set").arg(2).arg("k2").arg("k1").arg("x");
        assert_eq!(slot_of([&fcall]), Some(slot("k2")));
        let mut fcall_ro = redis::cmd("FCALL_RO");
        fcall_ro.arg("ekv_get").arg(0);
        assert_eq!(slot_of([&fcall_ro]), None);
        let mut get = redis::cmd("GET");
        get.arg("k2");
        assert_eq!(slot_of([&get]), Some(slot("k2")));
        let multi = redis::cmd("MULTI");
        assert_eq!(slot_of([&multi, &get]), Some(slot("k2")));
        let mut none = redis::cmd("EVAL");
        none.arg("return 1").arg(0);
        assert_eq!(slot_of([&none]), None);
    }

    #[test]
    fn two_keys_of_different_slots_are_named() {
        assert_eq!(two_slots(["{a}1", "{a}2"]), None);
        assert_eq!(two_slots(["foo", "{foo}x", "bar"]), Some(("foo", "bar")));
        let error = cross_slot("mset", "foo", "bar");
        assert_eq!(
            error.to_string(),
            "invalid argument for key `foo`: `mset` on a Redis Cluster needs its keys in one hash \
             slot, but `foo` is in slot 12182 and `bar` in slot 5061; nothing was written. Give \
             the handle a prefix with a hash tag (such as `{tenant-7}:`), which puts all its keys \
             in one slot"
        );
    }
}
