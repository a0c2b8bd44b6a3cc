//! The writing commands: [`Set`], [`Mset`], [`Delete`], [`Expire`], [`Persist`], [`Incr`],
//! [`SetIfAbsent`], [`CompareAndSet`] and [`GetDel`].

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::{Op, Subject};

/// Write one key, replacing value and TTL.
#[derive(Debug)]
pub struct Set {
    pub(crate) key: String,
    pub(crate) value: Value,
    pub(crate) ttl: Option<Duration>,
}

impl Op for Set {
    const NAME: &'static str = "set";
    const WRITES: bool = true;
    type Answer = ();
    fn subject(&self) -> Subject {
        Subject::key(&self.key)
    }
}

/// Write several keys at once, all with the same TTL.
#[derive(Debug)]
pub struct Mset {
    pub(crate) entries: Vec<(String, Value)>,
    pub(crate) ttl: Option<Duration>,
}

impl Op for Mset {
    const NAME: &'static str = "mset";
    const WRITES: bool = true;
    type Answer = ();
    fn subject(&self) -> Subject {
        Subject::Keys(self.entries.len())
    }
}

/// Remove one key.
#[derive(Debug)]
pub struct Delete {
    pub(crate) key: String,
}

impl Op for Delete {
    const NAME: &'static str = "delete";
    const WRITES: bool = true;
    type Answer = ();
    fn subject(&self) -> Subject {
        Subject::key(&self.key)
    }
}

/// Give a live key a new TTL; answer whether it had one to give.
#[derive(Debug)]
pub struct Expire {
    pub(crate) key: String,
    pub(crate) ttl: Duration,
}

impl Op for Expire {
    const NAME: &'static str = "expire";
    const WRITES: bool = true;
    type Answer = bool;
    fn subject(&self) -> Subject {
        Subject::key(&self.key)
    }
}

/// Remove a key's TTL; answer whether it had one.
#[derive(Debug)]
pub struct Persist {
    pub(crate) key: String,
}

impl Op for Persist {
    const NAME: &'static str = "persist";
    const WRITES: bool = true;
    type Answer = bool;
    fn subject(&self) -> Subject {
        Subject::key(&self.key)
    }
}

/// Add to an integer; a missing key counts as 0 and is created with `ttl`.
#[derive(Debug)]
pub struct Incr {
    pub(crate) key: String,
    pub(crate) by: i64,
    pub(crate) ttl: Option<Duration>,
}

impl Op for Incr {
    const NAME: &'static str = "incr";
    const WRITES: bool = true;
    type Answer = i64;
    fn subject(&self) -> Subject {
        Subject::key(&self.key)
    }
}

/// Write a key only if it is missing; answer whether it was written.
#[derive(Debug)]
pub struct SetIfAbsent {
    pub(crate) key: String,
    pub(crate) value: Value,
    pub(crate) ttl: Option<Duration>,
}

impl Op for SetIfAbsent {
    const NAME: &'static str = "set_if_absent";
    const WRITES: bool = true;
    type Answer = bool;
    fn subject(&self) -> Subject {
        Subject::key(&self.key)
    }
}

/// Write a key only if it holds `expected` (`None`: only if it is missing); answer whether it
/// was written.
#[derive(Debug)]
pub struct CompareAndSet {
    pub(crate) key: String,
    pub(crate) expected: Option<Value>,
    pub(crate) new: Value,
    pub(crate) ttl: Option<Duration>,
}

impl Op for CompareAndSet {
    const NAME: &'static str = "compare_and_set";
    const WRITES: bool = true;
    type Answer = bool;
    fn subject(&self) -> Subject {
        Subject::key(&self.key)
    }
}

/// Remove a key and answer with its value.
#[derive(Debug)]
pub struct GetDel {
    pub(crate) key: String,
}

impl Op for GetDel {
    const NAME: &'static str = "get_del";
    const WRITES: bool = true;
    type Answer = Option<Arc<Value>>;
    fn subject(&self) -> Subject {
        Subject::key(&self.key)
    }
}
