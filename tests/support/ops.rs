//! The operations a test can perform on a store, their answers, and proptest generators for them.
//!
//! An [`Op`] names its handle by index into [`HANDLES`]; keys are relative to that handle's prefix.
//! Its `Debug` form is the Rust call it stands for (`kv_a.set("x", json!(1)).ttl(3s)`), so that a
//! shrunk failing sequence reads as a program.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use ephemeral_kv::{KvError, Ttl};
use proptest::prelude::*;
use proptest::sample::select;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{json, Value};

/// The handles of one store a sequence can use: a name (as printed) and the prefix it adds to the
/// store's own. `kv_a.get("b:x")` and `kv_ab.get("x")` name the same key, as do `kv.get("a:x")` and
/// `kv_a.get("x")`.
pub const HANDLES: [(&str, &str); 3] = [("kv", ""), ("kv_a", "a:"), ("kv_ab", "a:b:")];

/// The small pool of keys the model test draws from, so that sequences collide.
pub const POOL: [&str; 6] = ["x", "y", "a:x", "b:x", "", "ключ"];

/// The settings of the store a sequence runs on.
#[derive(Clone, Copy)]
pub struct Setup {
    /// The builder's prefix, put before every handle's own.
    pub prefix: &'static str,
    /// `KvBuilder::active_expiry`.
    pub active_expiry: bool,
}

impl fmt::Debug for Setup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "let kv = KvHandle::builder().prefix({:?}).active_expiry({}).spawn();",
            self.prefix, self.active_expiry
        )?;
        for (name, prefix) in &HANDLES[1..] {
            write!(f, " let {name} = kv.with_prefix({prefix:?});")?;
        }
        Ok(())
    }
}

/// A value handed to a call: JSON, or something serde_json refuses to serialize.
#[derive(Clone, PartialEq)]
pub enum Val {
    Json(Value),
    /// A map with non-string keys: serde_json cannot write it as a JSON object.
    Unserializable,
}

impl Val {
    /// The JSON the store should hold for this value, or `None` if it cannot be serialized.
    pub fn json(&self) -> Option<Value> {
        match self {
            Val::Json(value) => Some(value.clone()),
            Val::Unserializable => None,
        }
    }
}

impl Serialize for Val {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Val::Json(value) => value.serialize(serializer),
            Val::Unserializable => BTreeMap::from([(vec![1u8], 1u8)]).serialize(serializer),
        }
    }
}

impl fmt::Debug for Val {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Val::Json(value) => write!(f, "json!({value})"),
            Val::Unserializable => f.write_str("BTreeMap::from([(vec![1u8], 1u8)])"),
        }
    }
}

/// A type to read a value as with `get_as`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AsType {
    U64,
    Text,
    List,
    Item,
}

/// The shape `AsType::Item` reads: an object with a numeric `id` (other fields are ignored).
#[derive(Serialize, Deserialize)]
pub struct Item {
    pub id: u64,
}

impl AsType {
    /// The value as serde reads it into this type, written back as JSON; `None` if it does not fit.
    pub fn read(self, value: Value) -> Option<Value> {
        fn via<T: serde::de::DeserializeOwned + Serialize>(value: Value) -> Option<Value> {
            serde_json::from_value::<T>(value)
                .ok()
                .map(|typed| json!(typed))
        }
        match self {
            AsType::U64 => via::<u64>(value),
            AsType::Text => via::<String>(value),
            AsType::List => via::<Vec<Value>>(value),
            AsType::Item => via::<Item>(value),
        }
    }

    fn name(self) -> &'static str {
        match self {
            AsType::U64 => "u64",
            AsType::Text => "String",
            AsType::List => "Vec<Value>",
            AsType::Item => "Item",
        }
    }
}

/// One step of a sequence: a call on handle `h` (an index into [`HANDLES`]), or a clock advance.
#[derive(Clone, PartialEq)]
pub enum Op {
    Set {
        h: usize,
        key: String,
        value: Val,
        ttl: Option<Duration>,
    },
    Get {
        h: usize,
        key: String,
    },
    GetAs {
        h: usize,
        key: String,
        ty: AsType,
    },
    Delete {
        h: usize,
        key: String,
    },
    ListAppendUnique {
        h: usize,
        key: String,
        items: Vec<Val>,
        id_key: Option<&'static str>,
        ttl: Option<Duration>,
    },
    ListPopAll {
        h: usize,
        key: String,
    },
    ListPush {
        h: usize,
        key: String,
        items: Vec<Val>,
        max_len: Option<usize>,
        ttl: Option<Duration>,
    },
    ListPopFront {
        h: usize,
        key: String,
        n: usize,
    },
    Mset {
        h: usize,
        entries: Vec<(String, Val)>,
        ttl: Option<Duration>,
    },
    Mget {
        h: usize,
        keys: Vec<String>,
    },
    Expire {
        h: usize,
        key: String,
        ttl: Duration,
    },
    PurgeExpired {
        h: usize,
        limit: Option<usize>,
    },
    Stats {
        h: usize,
    },
    Incr {
        h: usize,
        key: String,
        by: i64,
        ttl: Option<Duration>,
    },
    SetIfAbsent {
        h: usize,
        key: String,
        value: Val,
        ttl: Option<Duration>,
    },
    CompareAndSet {
        h: usize,
        key: String,
        expected: Option<Value>,
        new: Val,
        ttl: Option<Duration>,
    },
    GetDel {
        h: usize,
        key: String,
    },
    Exists {
        h: usize,
        key: String,
    },
    /// `kv.ttl(key)`.
    TtlOf {
        h: usize,
        key: String,
    },
    Persist {
        h: usize,
        key: String,
    },
    ScanPrefix {
        h: usize,
        prefix: String,
        limit: Option<usize>,
    },
    Update {
        h: usize,
        key: String,
        f: UpdateFn,
    },
    Transaction {
        h: usize,
        f: TxnFn,
    },
    /// `tokio::time::advance` on the paused clock.
    Advance(Duration),
}

/// The marker in the message of every panic a closure here raises on purpose, so that the test's
/// panic hook can keep them quiet.
pub const PLANNED_PANIC: &str = "planned panic in a model closure";

/// A pure closure for `update`, picked from a few fixed ones so that the model can run the same.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UpdateFn {
    /// `|cur| Some(json!(cur.and_then(Value::as_i64).unwrap_or(0).saturating_add(1)))`
    IncrementOrInit,
    /// `|_| None`
    Delete,
    /// `|cur| cur.cloned()`
    Identity,
    /// `|_| panic!(..)`
    Panic,
    /// `|cur| match cur { None => Some(json!(by)), Some(v) => v.as_i64().map(|n| json!(n.wrapping_add(by))) }`:
    /// adds to a number, starts a missing key at `by`, and deletes anything else.
    Add(i64),
}

impl UpdateFn {
    /// What the closure returns for `current`. Panics for [`UpdateFn::Panic`], as the closure does.
    pub fn call(self, current: Option<&Value>) -> Option<Value> {
        match self {
            UpdateFn::IncrementOrInit => Some(json!(current
                .and_then(Value::as_i64)
                .unwrap_or(0)
                .saturating_add(1))),
            UpdateFn::Delete => None,
            UpdateFn::Identity => current.cloned(),
            UpdateFn::Panic => panic!("{PLANNED_PANIC}"),
            UpdateFn::Add(by) => match current {
                None => Some(json!(by)),
                Some(value) => value.as_i64().map(|n| json!(n.wrapping_add(by))),
            },
        }
    }
}

/// What a transaction closure can do, as both the real [`ephemeral_kv::Txn`] and the model's
/// transaction offer it, so that one closure body runs on both. Keys are relative to the handle.
pub trait TxnView {
    fn get(&self, key: &str) -> Option<Value>;
    fn set(&mut self, key: &str, value: Value);
    fn delete(&mut self, key: &str) -> bool;
    fn expire(&mut self, key: &str, ttl: Duration) -> Result<bool, Failure>;
    fn abort(&mut self);
}

/// A closure for `transaction`, picked from a few fixed ones. Its answer is an [`Answer`] so that
/// the test can compare it.
#[derive(Clone, PartialEq)]
pub enum TxnFn {
    /// Moves the value at `from` (if any) to `to`, without a TTL; returns the value moved.
    Move { from: String, to: String },
    /// Swaps the values of two keys (a missing one swaps as a deletion); the TTLs are dropped.
    Swap { a: String, b: String },
    /// Writes `a`, deletes `b`, then aborts; returns whether `b` was there to delete.
    Abort { a: String, b: String },
    /// Writes `a`, then panics.
    Panic { a: String },
    /// Writes `key` first if `write`, then gives it `ttl`; returns what `Txn::expire` said.
    Lease {
        key: String,
        write: bool,
        ttl: Duration,
    },
    /// Reads two keys and writes nothing.
    Read { a: String, b: String },
    /// Adds the number at `from` (0 if it is missing or not an integer) to the one at `to` (the
    /// same) and deletes `from`, unless they are one key; returns the amount.
    Transfer { from: String, to: String },
}

impl TxnFn {
    /// Runs the closure's body on `txn`. Panics for [`TxnFn::Panic`], as the closure does.
    pub fn run(&self, txn: &mut impl TxnView) -> Answer {
        match self {
            TxnFn::Move { from, to } => {
                let value = txn.get(from);
                if let Some(value) = value.clone() {
                    txn.delete(from);
                    txn.set(to, value);
                }
                Answer::Value(value)
            }
            TxnFn::Swap { a, b } => {
                let (va, vb) = (txn.get(a), txn.get(b));
                for (key, value) in [(a, vb), (b, va)] {
                    match value {
                        Some(value) => txn.set(key, value),
                        None => {
                            txn.delete(key);
                        }
                    }
                }
                Answer::Done
            }
            TxnFn::Abort { a, b } => {
                txn.set(a, json!("aborted"));
                let deleted = txn.delete(b);
                txn.abort();
                Answer::Flag(deleted)
            }
            TxnFn::Panic { a } => {
                txn.set(a, json!("panicked"));
                panic!("{PLANNED_PANIC}");
            }
            TxnFn::Lease { key, write, ttl } => {
                if *write {
                    txn.set(key, json!("lease"));
                }
                Answer::Staged(txn.expire(key, *ttl))
            }
            TxnFn::Read { a, b } => Answer::Values(vec![txn.get(a), txn.get(b)]),
            TxnFn::Transfer { from, to } => {
                let number =
                    |value: Option<Value>| value.as_ref().and_then(Value::as_i64).unwrap_or(0);
                let amount = number(txn.get(from));
                let have = number(txn.get(to));
                if from != to {
                    txn.delete(from);
                    txn.set(to, json!(have.wrapping_add(amount)));
                }
                Answer::Int(amount)
            }
        }
    }

    /// The keys the closure names.
    pub fn keys(&self) -> Vec<&str> {
        match self {
            TxnFn::Move { from: a, to: b }
            | TxnFn::Swap { a, b }
            | TxnFn::Abort { a, b }
            | TxnFn::Read { a, b }
            | TxnFn::Transfer { from: a, to: b } => vec![a, b],
            TxnFn::Panic { a } => vec![a],
            TxnFn::Lease { key, .. } => vec![key],
        }
    }

    /// The closure with every TTL it gives replaced by `f(ttl)`.
    pub fn map_ttl(self, f: impl Fn(Duration) -> Duration) -> TxnFn {
        match self {
            TxnFn::Lease { key, write, ttl } => TxnFn::Lease {
                key,
                write,
                ttl: f(ttl),
            },
            other => other,
        }
    }
}

impl fmt::Debug for TxnFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TxnFn::Move { from, to } => write!(
                f,
                "|txn| {{ let v = txn.get({from:?}).cloned(); if let Some(v) = v.clone() {{ txn.delete({from:?}); txn.set({to:?}, v); }} v }}"
            ),
            TxnFn::Swap { a, b } => write!(f, "|txn| swap(txn, {a:?}, {b:?})"),
            TxnFn::Abort { a, b } => write!(
                f,
                "|txn| {{ txn.set({a:?}, \"aborted\"); let d = txn.delete({b:?}); txn.abort(); d }}"
            ),
            TxnFn::Panic { a } => write!(f, "|txn| {{ txn.set({a:?}, \"panicked\"); panic!() }}"),
            TxnFn::Lease { key, write, ttl } => {
                f.write_str("|txn| { ")?;
                if *write {
                    write!(f, "txn.set({key:?}, \"lease\"); ")?;
                }
                write!(f, "txn.expire({key:?}, {ttl:?}) }}")
            }
            TxnFn::Read { a, b } => write!(
                f,
                "|txn| vec![txn.get({a:?}).cloned(), txn.get({b:?}).cloned()]"
            ),
            TxnFn::Transfer { from, to } => write!(f, "|txn| transfer(txn, {from:?}, {to:?})"),
        }
    }
}

impl Op {
    /// The keys the operation names, relative to its handle.
    pub fn keys(&self) -> Vec<&str> {
        match self {
            Op::Set { key, .. }
            | Op::Get { key, .. }
            | Op::GetAs { key, .. }
            | Op::Delete { key, .. }
            | Op::ListAppendUnique { key, .. }
            | Op::ListPopAll { key, .. }
            | Op::ListPush { key, .. }
            | Op::ListPopFront { key, .. }
            | Op::Expire { key, .. }
            | Op::Incr { key, .. }
            | Op::SetIfAbsent { key, .. }
            | Op::CompareAndSet { key, .. }
            | Op::GetDel { key, .. }
            | Op::Exists { key, .. }
            | Op::TtlOf { key, .. }
            | Op::Persist { key, .. }
            | Op::Update { key, .. } => vec![key],
            Op::Transaction { f, .. } => f.keys(),
            Op::Mset { entries, .. } => entries.iter().map(|(key, _)| key.as_str()).collect(),
            Op::Mget { keys, .. } => keys.iter().map(String::as_str).collect(),
            Op::PurgeExpired { .. } | Op::Stats { .. } | Op::ScanPrefix { .. } | Op::Advance(_) => {
                Vec::new()
            }
        }
    }
}

/// Prints `.ttl(..)` when there is one.
struct TtlSuffix(Option<Duration>);

impl fmt::Display for TtlSuffix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(ttl) => write!(f, ".ttl({ttl:?})"),
            None => Ok(()),
        }
    }
}

impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kv = |h: &usize| HANDLES[*h].0;
        match self {
            Op::Set { h, key, value, ttl } => {
                write!(f, "{}.set({key:?}, {value:?}){}", kv(h), TtlSuffix(*ttl))
            }
            Op::Get { h, key } => write!(f, "{}.get({key:?})", kv(h)),
            Op::GetAs { h, key, ty } => write!(f, "{}.get_as::<{}>({key:?})", kv(h), ty.name()),
            Op::Delete { h, key } => write!(f, "{}.delete({key:?})", kv(h)),
            Op::ListAppendUnique {
                h,
                key,
                items,
                id_key,
                ttl,
            } => {
                write!(f, "{}.list_append_unique({key:?}, {items:?})", kv(h))?;
                if let Some(id_key) = id_key {
                    write!(f, ".id_key({id_key:?})")?;
                }
                write!(f, "{}", TtlSuffix(*ttl))
            }
            Op::ListPopAll { h, key } => write!(f, "{}.list_pop_all({key:?})", kv(h)),
            Op::ListPush {
                h,
                key,
                items,
                max_len,
                ttl,
            } => {
                write!(f, "{}.list_push({key:?}, {items:?})", kv(h))?;
                if let Some(max_len) = max_len {
                    write!(f, ".max_len({max_len})")?;
                }
                write!(f, "{}", TtlSuffix(*ttl))
            }
            Op::ListPopFront { h, key, n } => {
                write!(f, "{}.list_pop_front({key:?}, {n})", kv(h))
            }
            Op::Mset { h, entries, ttl } => {
                write!(f, "{}.mset({entries:?}){}", kv(h), TtlSuffix(*ttl))
            }
            Op::Mget { h, keys } => write!(f, "{}.mget({keys:?})", kv(h)),
            Op::Expire { h, key, ttl } => write!(f, "{}.expire({key:?}, {ttl:?})", kv(h)),
            Op::PurgeExpired { h, limit } => {
                write!(f, "{}.purge_expired()", kv(h))?;
                match limit {
                    Some(limit) => write!(f, ".limit({limit})"),
                    None => Ok(()),
                }
            }
            Op::Stats { h } => write!(f, "{}.stats()", kv(h)),
            Op::Incr { h, key, by, ttl } => {
                write!(f, "{}.incr({key:?}, {by}){}", kv(h), TtlSuffix(*ttl))
            }
            Op::SetIfAbsent { h, key, value, ttl } => {
                write!(
                    f,
                    "{}.set_if_absent({key:?}, {value:?}){}",
                    kv(h),
                    TtlSuffix(*ttl)
                )
            }
            Op::CompareAndSet {
                h,
                key,
                expected,
                new,
                ttl,
            } => {
                let expected = match expected {
                    Some(value) => format!("Some(json!({value}))"),
                    None => "None".to_owned(),
                };
                write!(
                    f,
                    "{}.compare_and_set({key:?}, {expected}, {new:?}){}",
                    kv(h),
                    TtlSuffix(*ttl)
                )
            }
            Op::GetDel { h, key } => write!(f, "{}.get_del({key:?})", kv(h)),
            Op::Exists { h, key } => write!(f, "{}.exists({key:?})", kv(h)),
            Op::TtlOf { h, key } => write!(f, "{}.ttl({key:?})", kv(h)),
            Op::Persist { h, key } => write!(f, "{}.persist({key:?})", kv(h)),
            Op::ScanPrefix { h, prefix, limit } => {
                write!(f, "{}.scan_prefix({prefix:?})", kv(h))?;
                match limit {
                    Some(limit) => write!(f, ".limit({limit})"),
                    None => Ok(()),
                }
            }
            Op::Update { h, key, f: closure } => {
                write!(f, "{}.update({key:?}, {closure:?})", kv(h))
            }
            Op::Transaction { h, f: closure } => {
                write!(f, "{}.transaction({closure:?})", kv(h))
            }
            Op::Advance(by) => write!(f, "advance({by:?})"),
        }
    }
}

/// What a call answered, in a form that can be compared.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// `Ok(())`, and what an advance answers.
    Done,
    /// `get`, and `get_as` with the typed value written back as JSON.
    Value(Option<Value>),
    /// `mget`.
    Values(Vec<Option<Value>>),
    /// `list_append_unique`, `list_pop_all`, `list_pop_front`.
    List(Vec<Value>),
    /// `list_push`: the list's new length.
    Len(usize),
    /// `expire`.
    Flag(bool),
    /// `purge_expired`.
    Count(usize),
    /// `stats`: (entries, expiring).
    Stats(usize, usize),
    /// `incr`.
    Int(i64),
    /// `ttl`.
    Ttl(Ttl),
    /// `scan_prefix`.
    Keys(Vec<String>),
    /// What `Txn::expire` answered inside a transaction.
    Staged(Result<bool, Failure>),
    Err(Failure),
}

/// A [`KvError`] reduced to what the model predicts: its kind and the fields that matter.
#[derive(Clone, Debug, PartialEq)]
pub enum Failure {
    Closed,
    Serialize {
        key: String,
    },
    Deserialize {
        key: String,
    },
    WrongType {
        key: String,
        found: &'static str,
    },
    InvalidItem {
        key: String,
        index: usize,
    },
    InvalidTtl {
        key: String,
        ttl: Duration,
    },
    InvalidArgument {
        key: String,
    },
    Overflow {
        key: String,
        current: i64,
        by: i64,
    },
    UpdatePanicked {
        key: String,
        message: String,
    },
    TransactionPanicked {
        prefix: String,
        message: String,
    },
    Other(String),
    /// The error's whole `Debug` form, sources and reasons included: what two stores are compared
    /// on when neither is the model (see [`Failure::whole`]).
    Whole(String),
}

impl Failure {
    /// `error` as it is, for comparing one store's errors with another's exactly.
    pub fn whole(error: KvError) -> Failure {
        Failure::Whole(format!("{error:?}"))
    }
}

impl From<KvError> for Failure {
    fn from(error: KvError) -> Self {
        match error {
            KvError::Closed => Failure::Closed,
            KvError::Serialize { key, .. } => Failure::Serialize { key },
            KvError::Deserialize { key, .. } => Failure::Deserialize { key },
            KvError::WrongType { key, found, .. } => Failure::WrongType { key, found },
            KvError::InvalidItem { key, index, .. } => Failure::InvalidItem { key, index },
            KvError::InvalidTtl { key, ttl } => Failure::InvalidTtl { key, ttl },
            KvError::InvalidArgument { key, .. } => Failure::InvalidArgument { key },
            KvError::Overflow { key, current, by } => Failure::Overflow { key, current, by },
            KvError::UpdatePanicked { key, message } => Failure::UpdatePanicked { key, message },
            KvError::TransactionPanicked { prefix, message } => {
                Failure::TransactionPanicked { prefix, message }
            }
            other => Failure::Other(other.to_string()),
        }
    }
}

/// TTLs of many sizes: zero (refused), tiny, ordinary, and too large for the clock.
pub fn ttl() -> impl Strategy<Value = Duration> + Clone {
    prop_oneof![
        Just(Duration::from_secs(1)),
        Just(Duration::from_secs(3)),
        (1u64..5_000).prop_map(Duration::from_millis),
        Just(Duration::ZERO),
        Just(Duration::from_nanos(1)),
        Just(Duration::from_millis(1500)),
        Just(Duration::from_secs(3600)),
        // Representable as a deadline, but never reached.
        Just(Duration::from_secs(1 << 62)),
        // Past what an `Instant` can hold: never expires.
        Just(Duration::from_secs(u64::MAX / 2)),
        Just(Duration::MAX),
    ]
}

/// How far a step moves the paused clock.
pub fn advance() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::from_secs(1)),
        Just(Duration::from_millis(500)),
        Just(Duration::from_secs(2)),
        Just(Duration::ZERO),
        Just(Duration::from_nanos(1)),
        Just(Duration::from_millis(1)),
        Just(Duration::from_secs(3600)),
    ]
}

/// A list item: mostly objects with a colliding `id` (or `task_id`), sometimes something invalid.
/// Ids are JSON scalars compared by value (`1.0` is the id `1`, `"1"` is another); an item whose id
/// is a list or an object is refused.
pub fn item() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => (0u64..4).prop_map(|id| json!({ "id": id })),
        3 => (0u64..4, 0u64..3).prop_map(|(id, v)| json!({ "id": id, "v": v })),
        3 => (0u64..4).prop_map(|id| json!({ "task_id": id })),
        2 => (0u64..4).prop_map(|id| json!({ "id": id as f64, "task_id": id as f64 })),
        1 => (0u64..4).prop_map(|id| json!({ "id": id.to_string() })),
        1 => Just(json!({ "id": null })),
        1 => Just(json!({ "id": true, "task_id": 0.5 })),
        1 => Just(json!({ "id": [1], "task_id": { "n": 1 } })),
        1 => Just(json!({})),
        1 => Just(json!(7)),
        1 => Just(json!("item")),
        1 => Just(json!([{ "id": 1 }])),
    ]
}

/// A JSON value of every type, small, with lists of items so that `list_*` calls find lists.
pub fn json() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0u64..5).prop_map(Value::from),
        proptest::collection::vec(item(), 0..4).prop_map(Value::Array),
        "[a-zé]{0,3}".prop_map(Value::from),
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (-3i64..0).prop_map(Value::from),
        Just(json!(1.5)),
        item(),
    ]
}

/// An item for `list_append_unique`: now and then one that fails to serialize.
fn item_val() -> impl Strategy<Value = Val> {
    prop_oneof![
        20 => item().prop_map(Val::Json),
        1 => Just(Val::Unserializable),
    ]
}

/// A key from [`POOL`].
pub fn pool_key() -> impl Strategy<Value = String> + Clone {
    select(&POOL[..]).prop_map(str::to_owned)
}

/// Any key at all: empty, non-ASCII, control characters, or very long.
pub fn wild_key() -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        pool_key(),
        any::<String>(),
        "\\PC{0,8}",
        (any::<char>(), 1usize..20_000).prop_map(|(c, n)| c.to_string().repeat(n)),
    ]
}

/// What a generated sequence may do with time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timing {
    /// Everything: TTLs on writes, the calls that set, read or purge them, `stats`, and clock
    /// advances.
    Timed,
    /// No TTL anywhere, nothing that reads or drops one, no `stats` and no clock: for comparing
    /// two stores that run on different clocks (`tests/redis_model.rs`).
    Untimed,
}

/// The arms of a weighted choice, some of them only for one [`Timing`]. It draws as
/// `prop_oneof!` over the same arms does.
struct Arms<T>(Vec<(u32, BoxedStrategy<T>)>);

impl<T: fmt::Debug> Arms<T> {
    fn add(&mut self, weight: u32, arm: impl Strategy<Value = T> + 'static) {
        self.0.push((weight, arm.boxed()));
    }

    fn pick(self) -> impl Strategy<Value = T> {
        proptest::strategy::Union::new_weighted(self.0)
    }
}

/// A call on a handle from `h` and a key from `key`.
fn keyed(
    h: &std::ops::Range<usize>,
    key: &(impl Strategy<Value = String> + Clone + 'static),
    call: fn(usize, String) -> Op,
) -> impl Strategy<Value = Op> {
    (h.clone(), key.clone()).prop_map(move |(h, key)| call(h, key))
}

/// One operation over keys from `key`, weighted towards the common calls.
pub fn op(key: impl Strategy<Value = String> + Clone + 'static) -> impl Strategy<Value = Op> {
    op_with(key, json().boxed(), Timing::Timed)
}

/// One operation of [`Timing::Untimed`] over keys from `key`, with values from [`json`] and a
/// few more: an `i64::MAX` (for `incr` and `update` to overflow or wrap) and an object whose
/// keys are not written in order, holding a float (for the Redis backend's round trip).
pub fn untimed_op(
    key: impl Strategy<Value = String> + Clone + 'static,
) -> impl Strategy<Value = Op> {
    let json = prop_oneof![
        8 => json(),
        1 => Just(json!(i64::MAX)),
        1 => Just(json!({"b": 1, "a": [null, 1.5]})),
    ];
    op_with(key, json.boxed(), Timing::Untimed)
}

/// A value for a call: JSON from `json`, or now and then one that fails to serialize.
fn val_of(json: BoxedStrategy<Value>) -> impl Strategy<Value = Val> + Clone {
    prop_oneof![
        20 => json.prop_map(Val::Json),
        1 => Just(Val::Unserializable),
    ]
}

/// A TTL for a write that may take one: none when untimed.
fn opt_ttl(timing: Timing) -> BoxedStrategy<Option<Duration>> {
    match timing {
        Timing::Timed => proptest::option::weighted(0.4, ttl()).boxed(),
        Timing::Untimed => Just(None).boxed(),
    }
}

/// [`op`] or [`untimed_op`]. The arms of [`Timing::Timed`] are those of `op` before the untimed
/// one was added, in the same order and with the same weights, so that the seeds of
/// `tests/model.proptest-regressions` still stand for the cases they were saved for.
fn op_with(
    key: impl Strategy<Value = String> + Clone + 'static,
    json: BoxedStrategy<Value>,
    timing: Timing,
) -> impl Strategy<Value = Op> {
    let timed = timing == Timing::Timed;
    let h = 0..HANDLES.len();
    let val = val_of(json.clone());
    let opt_ttl = opt_ttl(timing);
    let mut arms = Arms(Vec::new());
    arms.add(
        6,
        (h.clone(), key.clone(), val.clone(), opt_ttl.clone())
            .prop_map(|(h, key, value, ttl)| Op::Set { h, key, value, ttl }),
    );
    arms.add(5, keyed(&h, &key, |h, key| Op::Get { h, key }));
    if timed {
        arms.add(4, advance().prop_map(Op::Advance));
    }
    arms.add(
        2,
        (
            h.clone(),
            key.clone(),
            select(&[AsType::U64, AsType::Text, AsType::List, AsType::Item][..]),
        )
            .prop_map(|(h, key, ty)| Op::GetAs { h, key, ty }),
    );
    arms.add(2, keyed(&h, &key, |h, key| Op::Delete { h, key }));
    arms.add(
        5,
        (
            h.clone(),
            key.clone(),
            proptest::collection::vec(item_val(), 0..4),
            proptest::option::weighted(0.2, Just("task_id")),
            opt_ttl.clone(),
        )
            .prop_map(|(h, key, items, id_key, ttl)| Op::ListAppendUnique {
                h,
                key,
                items,
                id_key,
                ttl,
            }),
    );
    arms.add(3, keyed(&h, &key, |h, key| Op::ListPopAll { h, key }));
    arms.add(
        4,
        (
            h.clone(),
            key.clone(),
            proptest::collection::vec(val.clone(), 0..4),
            proptest::option::weighted(0.5, prop_oneof![1 => Just(0usize), 4 => 1usize..4]),
            opt_ttl.clone(),
        )
            .prop_map(|(h, key, items, max_len, ttl)| Op::ListPush {
                h,
                key,
                items,
                max_len,
                ttl,
            }),
    );
    arms.add(
        3,
        (
            h.clone(),
            key.clone(),
            prop_oneof![1 => Just(0usize), 4 => 1usize..3, 1 => Just(usize::MAX)],
        )
            .prop_map(|(h, key, n)| Op::ListPopFront { h, key, n }),
    );
    arms.add(
        3,
        (
            h.clone(),
            proptest::collection::vec((key.clone(), val), 0..4),
            opt_ttl,
        )
            .prop_map(|(h, entries, ttl)| Op::Mset { h, entries, ttl }),
    );
    arms.add(
        2,
        (h.clone(), proptest::collection::vec(key.clone(), 0..4))
            .prop_map(|(h, keys)| Op::Mget { h, keys }),
    );
    if timed {
        arms.add(
            3,
            (h.clone(), key.clone(), ttl()).prop_map(|(h, key, ttl)| Op::Expire { h, key, ttl }),
        );
        arms.add(
            2,
            (h.clone(), proptest::option::weighted(0.5, 0usize..4))
                .prop_map(|(h, limit)| Op::PurgeExpired { h, limit }),
        );
        arms.add(2, h.clone().prop_map(|h| Op::Stats { h }));
    }
    arms.add(20, coordination_op(h, key, json, timing));
    arms.pick()
}

/// One of the coordination calls (rules 15–22 of `docs/rules.md`), over keys from `key`.
fn coordination_op(
    h: std::ops::Range<usize>,
    key: impl Strategy<Value = String> + Clone + 'static,
    json: BoxedStrategy<Value>,
    timing: Timing,
) -> impl Strategy<Value = Op> {
    let timed = timing == Timing::Timed;
    let val = val_of(json.clone());
    let opt_ttl = opt_ttl(timing);
    let by = prop_oneof![4 => -3i64..4, 1 => Just(i64::MAX), 1 => Just(i64::MIN)];
    let fixed_update = select(
        &[
            UpdateFn::IncrementOrInit,
            UpdateFn::Delete,
            UpdateFn::Identity,
            UpdateFn::Panic,
        ][..],
    );
    let update = if timed {
        fixed_update.boxed()
    } else {
        prop_oneof![
            4 => fixed_update,
            3 => (-3i64..4).prop_map(UpdateFn::Add),
        ]
        .boxed()
    };
    let two = (key.clone(), key.clone());
    let mut txn = Arms(Vec::new());
    txn.add(
        3,
        two.clone().prop_map(|(from, to)| TxnFn::Move { from, to }),
    );
    txn.add(3, two.clone().prop_map(|(a, b)| TxnFn::Swap { a, b }));
    txn.add(1, two.clone().prop_map(|(a, b)| TxnFn::Abort { a, b }));
    txn.add(1, key.clone().prop_map(|a| TxnFn::Panic { a }));
    if timed {
        txn.add(
            2,
            (key.clone(), any::<bool>(), ttl()).prop_map(|(key, write, ttl)| TxnFn::Lease {
                key,
                write,
                ttl,
            }),
        );
    }
    txn.add(1, two.clone().prop_map(|(a, b)| TxnFn::Read { a, b }));
    if !timed {
        txn.add(3, two.prop_map(|(from, to)| TxnFn::Transfer { from, to }));
    }
    let txn = txn.pick();
    let scan_prefix = prop_oneof![
        pool_key(),
        select(&["a", "b", "к"][..]).prop_map(str::to_owned)
    ];
    let mut arms = Arms(Vec::new());
    arms.add(
        4,
        (h.clone(), key.clone(), by, opt_ttl.clone()).prop_map(|(h, key, by, ttl)| Op::Incr {
            h,
            key,
            by,
            ttl,
        }),
    );
    arms.add(
        3,
        (h.clone(), key.clone(), val.clone(), opt_ttl.clone())
            .prop_map(|(h, key, value, ttl)| Op::SetIfAbsent { h, key, value, ttl }),
    );
    arms.add(
        3,
        (
            h.clone(),
            key.clone(),
            proptest::option::of(json),
            val,
            opt_ttl,
        )
            .prop_map(|(h, key, expected, new, ttl)| Op::CompareAndSet {
                h,
                key,
                expected,
                new,
                ttl,
            }),
    );
    arms.add(2, keyed(&h, &key, |h, key| Op::GetDel { h, key }));
    arms.add(1, keyed(&h, &key, |h, key| Op::Exists { h, key }));
    if timed {
        arms.add(2, keyed(&h, &key, |h, key| Op::TtlOf { h, key }));
        arms.add(2, keyed(&h, &key, |h, key| Op::Persist { h, key }));
    }
    arms.add(
        2,
        (
            h.clone(),
            scan_prefix,
            proptest::option::weighted(0.4, 0usize..4),
        )
            .prop_map(|(h, prefix, limit)| Op::ScanPrefix { h, prefix, limit }),
    );
    arms.add(
        3,
        (h.clone(), key, update).prop_map(|(h, key, f)| Op::Update { h, key, f }),
    );
    arms.add(4, (h, txn).prop_map(|(h, f)| Op::Transaction { h, f }));
    arms.pick()
}

/// The store's settings: with and without a builder prefix, both expiry settings.
pub fn setup() -> impl Strategy<Value = Setup> {
    (select(&["", "p:"][..]), any::<bool>()).prop_map(|(prefix, active_expiry)| Setup {
        prefix,
        active_expiry,
    })
}

/// A store's settings and a sequence to run on it, printed as the program it stands for.
#[derive(Clone)]
pub struct Script {
    pub setup: Setup,
    pub ops: Vec<Op>,
}

impl fmt::Debug for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "\n{:?}", self.setup)?;
        for op in &self.ops {
            writeln!(f, "{op:?};")?;
        }
        Ok(())
    }
}

/// Scripts of up to `len` operations over keys from `key`.
pub fn script(
    key: impl Strategy<Value = String> + Clone + 'static,
    len: usize,
) -> impl Strategy<Value = Script> {
    (setup(), proptest::collection::vec(op(key), 0..len))
        .prop_map(|(setup, ops)| Script { setup, ops })
}
