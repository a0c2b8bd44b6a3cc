//! The reading commands: [`Get`], [`Mget`], [`Exists`], [`Ttl`] and [`ScanPrefix`].

use std::sync::Arc;

use serde_json::Value;

use super::{Op, Subject};
use crate::ttl;

/// Read one key.
#[derive(Debug)]
pub struct Get {
    pub(crate) key: String,
}

impl Op for Get {
    const NAME: &'static str = "get";
    const WRITES: bool = false;
    type Answer = Option<Arc<Value>>;
    fn subject(&self) -> Subject {
        Subject::key(&self.key)
    }
}

/// Read several keys at once.
#[derive(Debug)]
pub struct Mget {
    pub(crate) keys: Vec<String>,
}

impl Op for Mget {
    const NAME: &'static str = "mget";
    const WRITES: bool = false;
    type Answer = Vec<Option<Arc<Value>>>;
    fn subject(&self) -> Subject {
        Subject::Keys(self.keys.len())
    }
}

/// Whether a key is live.
#[derive(Debug)]
pub struct Exists {
    pub(crate) key: String,
}

impl Op for Exists {
    const NAME: &'static str = "exists";
    const WRITES: bool = false;
    type Answer = bool;
    fn subject(&self) -> Subject {
        Subject::key(&self.key)
    }
}

/// How long a key has left.
#[derive(Debug)]
pub struct Ttl {
    pub(crate) key: String,
}

impl Op for Ttl {
    const NAME: &'static str = "ttl";
    const WRITES: bool = false;
    type Answer = ttl::Ttl;
    fn subject(&self) -> Subject {
        Subject::key(&self.key)
    }
}

/// The live keys under a prefix, sorted, at most `limit` of them.
#[derive(Debug)]
pub struct ScanPrefix {
    pub(crate) prefix: String,
    pub(crate) limit: usize,
}

impl Op for ScanPrefix {
    const NAME: &'static str = "scan_prefix";
    const WRITES: bool = false;
    type Answer = Vec<String>;
    fn subject(&self) -> Subject {
        Subject::prefix(&self.prefix)
    }
}
