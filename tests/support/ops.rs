//! The operations a test can perform on a store, their answers, and proptest generators for them.
//!
//! An [`Op`] names its handle by index into [`HANDLES`]; keys are relative to that handle's prefix.
//! Its `Debug` form is the Rust call it stands for (`kv_a.set("x", json!(1)).ttl(3s)`), so that a
//! shrunk failing sequence reads as a program.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use ephemeral_kv::KvError;
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
    /// `tokio::time::advance` on the paused clock.
    Advance(Duration),
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
            | Op::Expire { key, .. } => vec![key],
            Op::Mset { entries, .. } => entries.iter().map(|(key, _)| key.as_str()).collect(),
            Op::Mget { keys, .. } => keys.iter().map(String::as_str).collect(),
            Op::PurgeExpired { .. } | Op::Stats { .. } | Op::Advance(_) => Vec::new(),
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
            Op::Advance(by) => write!(f, "advance({by:?})"),
        }
    }
}

/// What a call answered, in a form that can be compared.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// `Ok(())`, and what an advance answers.
    Done,
    /// `get`, and `get_as` with the typed value written back as JSON.
    Value(Option<Value>),
    /// `mget`.
    Values(Vec<Option<Value>>),
    /// `list_append_unique`, `list_pop_all`.
    List(Vec<Value>),
    /// `expire`.
    Flag(bool),
    /// `purge_expired`.
    Count(usize),
    /// `stats`: (entries, expiring).
    Stats(usize, usize),
    Err(Failure),
}

/// A [`KvError`] reduced to what the model predicts: its kind and the fields that matter.
#[derive(Clone, Debug, PartialEq)]
pub enum Failure {
    Closed,
    Serialize { key: String },
    Deserialize { key: String },
    WrongType { key: String, found: &'static str },
    InvalidItem { key: String, index: usize },
    InvalidTtl { key: String, ttl: Duration },
    Other(String),
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
pub fn item() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0u64..4).prop_map(|id| json!({ "id": id })),
        (0u64..4, 0u64..3).prop_map(|(id, v)| json!({ "id": id, "v": v })),
        (0u64..4).prop_map(|id| json!({ "task_id": id })),
        Just(json!({ "id": null })),
        Just(json!({})),
        Just(json!(7)),
        Just(json!("item")),
        Just(json!([{ "id": 1 }])),
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

/// A value for a call: JSON, or now and then one that fails to serialize.
pub fn val() -> impl Strategy<Value = Val> {
    prop_oneof![
        20 => json().prop_map(Val::Json),
        1 => Just(Val::Unserializable),
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

/// One operation over keys from `key`, weighted towards the common calls.
pub fn op(key: impl Strategy<Value = String> + Clone + 'static) -> impl Strategy<Value = Op> {
    let h = 0..HANDLES.len();
    let opt_ttl = proptest::option::weighted(0.4, ttl());
    prop_oneof![
        6 => (h.clone(), key.clone(), val(), opt_ttl.clone())
            .prop_map(|(h, key, value, ttl)| Op::Set { h, key, value, ttl }),
        5 => (h.clone(), key.clone()).prop_map(|(h, key)| Op::Get { h, key }),
        4 => advance().prop_map(Op::Advance),
        2 => (h.clone(), key.clone(), select(&[AsType::U64, AsType::Text, AsType::List, AsType::Item][..]))
            .prop_map(|(h, key, ty)| Op::GetAs { h, key, ty }),
        2 => (h.clone(), key.clone()).prop_map(|(h, key)| Op::Delete { h, key }),
        5 => (
            h.clone(),
            key.clone(),
            proptest::collection::vec(item_val(), 0..4),
            proptest::option::weighted(0.2, Just("task_id")),
            opt_ttl.clone(),
        )
            .prop_map(|(h, key, items, id_key, ttl)| Op::ListAppendUnique { h, key, items, id_key, ttl }),
        3 => (h.clone(), key.clone()).prop_map(|(h, key)| Op::ListPopAll { h, key }),
        3 => (h.clone(), proptest::collection::vec((key.clone(), val()), 0..4), opt_ttl)
            .prop_map(|(h, entries, ttl)| Op::Mset { h, entries, ttl }),
        2 => (h.clone(), proptest::collection::vec(key.clone(), 0..4))
            .prop_map(|(h, keys)| Op::Mget { h, keys }),
        3 => (h.clone(), key, ttl()).prop_map(|(h, key, ttl)| Op::Expire { h, key, ttl }),
        2 => (h.clone(), proptest::option::weighted(0.5, 0usize..4))
            .prop_map(|(h, limit)| Op::PurgeExpired { h, limit }),
        2 => h.prop_map(|h| Op::Stats { h }),
    ]
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
