//! The list commands: [`ListAppendUnique`], [`ListPopAll`], [`ListPush`] and [`ListPopFront`].

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::{Op, Subject};

/// Append the items whose id is new to a list; answer with the whole list.
#[derive(Debug)]
pub struct ListAppendUnique {
    pub(crate) key: String,
    pub(crate) items: Vec<Value>,
    pub(crate) id_key: String,
    pub(crate) ttl: Option<Duration>,
}

impl Op for ListAppendUnique {
    const NAME: &'static str = "list_append_unique";
    const WRITES: bool = true;
    type Answer = Arc<Value>;
    fn subject(&self) -> Subject {
        Subject::key(&self.key)
    }
}

/// Remove a list and answer with it.
#[derive(Debug)]
pub struct ListPopAll {
    pub(crate) key: String,
}

impl Op for ListPopAll {
    const NAME: &'static str = "list_pop_all";
    const WRITES: bool = true;
    type Answer = Option<Arc<Value>>;
    fn subject(&self) -> Subject {
        Subject::key(&self.key)
    }
}

/// Append items to a list, then drop its oldest so that at most `max_len` remain; answer with
/// the new length.
#[derive(Debug)]
pub struct ListPush {
    pub(crate) key: String,
    pub(crate) items: Vec<Value>,
    pub(crate) max_len: usize,
    pub(crate) ttl: Option<Duration>,
}

impl Op for ListPush {
    const NAME: &'static str = "list_push";
    const WRITES: bool = true;
    type Answer = usize;
    fn subject(&self) -> Subject {
        Subject::key(&self.key)
    }
}

/// Take up to `count` items from the front of a list; remove the key once it is empty. With
/// `wait`, a list that is empty or missing is waited on for up to that long (the owner answers
/// with no items once it is up); waiters are served one at a time, oldest first.
#[derive(Debug)]
pub struct ListPopFront {
    pub(crate) key: String,
    pub(crate) count: usize,
    pub(crate) wait: Option<Duration>,
}

impl Op for ListPopFront {
    const NAME: &'static str = "list_pop_front";
    const WRITES: bool = true;
    type Answer = Vec<Value>;
    fn subject(&self) -> Subject {
        Subject::key(&self.key)
    }
}
