//! The stores ephemeral-kv is compared against, each with the store's semantics: the TTL is
//! checked on every read (an expired entry is removed and reads as missing).
//!
//! They are written the way a user would write them: the value lives in the map as a plain
//! `Value` and a read clones it out, as the map's own API does. [`Kv`] is the common face the
//! workloads drive, and `KvHandle` implements it too. Each store hands out what it naturally
//! hands out (the [`Kv::Read`] and [`Kv::List`] types): the baselines an owned copy, ephemeral-kv
//! the value it shares with the store, so that neither side does work it would not do for a user.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::future::Future;
use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashmap::DashMap;
use ephemeral_kv::{KvHandle, List};
use moka::ops::compute::Op;
use serde_json::Value;
use tokio::time::Instant;

/// The id field of list items, as in the store's default.
pub const ID_KEY: &str = "id";

/// What every compared store can do, with the store's semantics.
pub trait Kv: Clone + Send + Sync + 'static {
    /// What a read hands the caller: an owned `Value` (cloned out of the map) for the baselines,
    /// the shared `Arc<Value>` for ephemeral-kv. Either reads as a `&Value` through `Borrow`.
    type Read: Borrow<Value> + Send + 'static;
    /// What `list_append_unique` hands the caller: an owned copy of the whole list for the
    /// baselines, the shared [`List`] for ephemeral-kv. Either reads as a `&[Value]`.
    type List: Deref<Target = [Value]> + Send + 'static;

    /// The live value at `key`.
    fn get(&self, key: &str) -> impl Future<Output = Option<Self::Read>> + Send;
    /// Stores `value` at `key`, with a TTL or none.
    fn set(
        &self,
        key: &str,
        value: Value,
        ttl: Option<Duration>,
    ) -> impl Future<Output = ()> + Send;
    /// Appends `items` whose id is new to the list at `key`; returns the whole list.
    fn list_append_unique(
        &self,
        key: &str,
        items: Vec<Value>,
    ) -> impl Future<Output = Self::List> + Send;
    /// Removes the list at `key` and returns its items, owned.
    fn list_pop_all(&self, key: &str) -> impl Future<Output = Vec<Value>> + Send;
    /// Stores every pair, all with the same TTL: in one command for ephemeral-kv, under one lock
    /// for the mutex, one insert at a time for the others (they have no batch write).
    fn mset(
        &self,
        entries: Vec<(String, Value)>,
        ttl: Option<Duration>,
    ) -> impl Future<Output = ()> + Send;
    /// Removes `key`, dropping its value wherever the store drops it.
    fn delete(&self, key: &str) -> impl Future<Output = ()> + Send;
}

/// A value and when it stops being visible, as the baselines store it.
#[derive(Debug, Clone)]
pub struct Entry {
    value: Value,
    deadline: Option<Instant>,
}

impl Entry {
    fn new(value: Value, ttl: Option<Duration>, now: Instant) -> Entry {
        Entry {
            value,
            deadline: ttl.and_then(|ttl| now.checked_add(ttl)),
        }
    }

    fn is_expired(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|deadline| deadline <= now)
    }

    fn live(self, now: Instant) -> Option<Entry> {
        (!self.is_expired(now)).then_some(self)
    }

    fn empty_list() -> Entry {
        Entry {
            value: Value::Array(Vec::new()),
            deadline: None,
        }
    }

    /// The store's `list_append_unique` on this entry: an expired entry starts a new list, the
    /// list loses its TTL (none is given), and the caller gets a copy of the whole list.
    fn append_unique(&mut self, items: Vec<Value>, now: Instant) -> Vec<Value> {
        if self.is_expired(now) {
            *self = Entry::empty_list();
        }
        self.deadline = None;
        match &mut self.value {
            Value::Array(list) => {
                append_unique(list, items);
                list.clone()
            }
            _ => Vec::new(),
        }
    }
}

/// The store's list rule: push each item whose id is neither in the list nor earlier in `items`.
fn append_unique(list: &mut Vec<Value>, items: Vec<Value>) {
    for item in items {
        let id = item.get(ID_KEY);
        if id.is_some() && !list.iter().any(|existing| existing.get(ID_KEY) == id) {
            list.push(item);
        }
    }
}

fn into_list(value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items,
        _ => Vec::new(),
    }
}

/// `Arc<std::sync::Mutex<HashMap<String, Entry>>>`: one lock around one map.
#[derive(Clone, Default)]
pub struct MutexKv {
    map: Arc<Mutex<HashMap<String, Entry>>>,
}

impl MutexKv {
    /// Removes up to `limit` expired entries by scanning the whole map, as the reference
    /// implementation does; returns how many.
    pub fn purge_expired_scan(&self, limit: usize) -> usize {
        let now = Instant::now();
        let mut map = self.map.lock().unwrap();
        let expired: Vec<String> = map
            .iter()
            .filter(|(_, entry)| entry.is_expired(now))
            .map(|(key, _)| key.clone())
            .take(limit)
            .collect();
        for key in &expired {
            map.remove(key);
        }
        expired.len()
    }

    /// Stores `value` with a deadline already past, so that it is expired at once: the baseline
    /// needs no waiting to set up a purge.
    pub fn set_expired(&self, key: &str, value: Value) {
        let now = Instant::now();
        let entry = Entry {
            value,
            deadline: Some(now),
        };
        self.map.lock().unwrap().insert(key.to_owned(), entry);
    }
}

impl Kv for MutexKv {
    type Read = Value;
    type List = Vec<Value>;

    async fn get(&self, key: &str) -> Option<Value> {
        let now = Instant::now();
        let mut map = self.map.lock().unwrap();
        let entry = map.get(key)?;
        if entry.is_expired(now) {
            map.remove(key);
            return None;
        }
        Some(entry.value.clone())
    }

    async fn set(&self, key: &str, value: Value, ttl: Option<Duration>) {
        let entry = Entry::new(value, ttl, Instant::now());
        self.map.lock().unwrap().insert(key.to_owned(), entry);
    }

    async fn list_append_unique(&self, key: &str, items: Vec<Value>) -> Vec<Value> {
        let now = Instant::now();
        let mut map = self.map.lock().unwrap();
        let entry = map.entry(key.to_owned()).or_insert_with(Entry::empty_list);
        entry.append_unique(items, now)
    }

    async fn list_pop_all(&self, key: &str) -> Vec<Value> {
        let now = Instant::now();
        let mut map = self.map.lock().unwrap();
        match map.get(key) {
            Some(entry) if entry.value.is_array() || entry.is_expired(now) => {}
            _ => return Vec::new(),
        }
        let entry = map.remove(key).and_then(|entry| entry.live(now));
        entry
            .map(|entry| into_list(entry.value))
            .unwrap_or_default()
    }

    async fn mset(&self, entries: Vec<(String, Value)>, ttl: Option<Duration>) {
        let now = Instant::now();
        let mut map = self.map.lock().unwrap();
        for (key, value) in entries {
            map.insert(key, Entry::new(value, ttl, now));
        }
    }

    async fn delete(&self, key: &str) {
        self.map.lock().unwrap().remove(key);
    }
}

/// `Arc<DashMap<String, Entry>>`: a sharded map of locks.
#[derive(Clone, Default)]
pub struct DashKv {
    map: Arc<DashMap<String, Entry>>,
}

impl Kv for DashKv {
    type Read = Value;
    type List = Vec<Value>;

    async fn get(&self, key: &str) -> Option<Value> {
        let now = Instant::now();
        {
            let entry = self.map.get(key)?;
            if !entry.is_expired(now) {
                return Some(entry.value.clone());
            }
        }
        self.map.remove_if(key, |_, entry| entry.is_expired(now));
        None
    }

    async fn set(&self, key: &str, value: Value, ttl: Option<Duration>) {
        let entry = Entry::new(value, ttl, Instant::now());
        self.map.insert(key.to_owned(), entry);
    }

    async fn list_append_unique(&self, key: &str, items: Vec<Value>) -> Vec<Value> {
        let now = Instant::now();
        let mut entry = self
            .map
            .entry(key.to_owned())
            .or_insert_with(Entry::empty_list);
        entry.append_unique(items, now)
    }

    async fn list_pop_all(&self, key: &str) -> Vec<Value> {
        let now = Instant::now();
        let removed = self.map.remove_if(key, |_, entry| {
            entry.value.is_array() || entry.is_expired(now)
        });
        removed
            .and_then(|(_, entry)| entry.live(now))
            .map(|entry| into_list(entry.value))
            .unwrap_or_default()
    }

    async fn mset(&self, entries: Vec<(String, Value)>, ttl: Option<Duration>) {
        let now = Instant::now();
        for (key, value) in entries {
            self.map.insert(key, Entry::new(value, ttl, now));
        }
    }

    async fn delete(&self, key: &str) {
        self.map.remove(key);
    }
}

/// `moka::future::Cache<String, Entry>`, unbounded, with the TTL checked on read like the others.
#[derive(Clone)]
pub struct MokaKv {
    cache: moka::future::Cache<String, Entry>,
}

impl Default for MokaKv {
    fn default() -> Self {
        MokaKv {
            cache: moka::future::Cache::builder().build(),
        }
    }
}

impl Kv for MokaKv {
    type Read = Value;
    type List = Vec<Value>;

    async fn get(&self, key: &str) -> Option<Value> {
        let now = Instant::now();
        // moka's `get` hands out a clone of the entry: that is the caller's owned copy.
        let entry = self.cache.get(key).await?;
        if entry.is_expired(now) {
            self.cache.invalidate(key).await;
            return None;
        }
        Some(entry.value)
    }

    async fn set(&self, key: &str, value: Value, ttl: Option<Duration>) {
        let entry = Entry::new(value, ttl, Instant::now());
        self.cache.insert(key.to_owned(), entry).await;
    }

    async fn list_append_unique(&self, key: &str, items: Vec<Value>) -> Vec<Value> {
        let now = Instant::now();
        let result = self
            .cache
            .entry(key.to_owned())
            .and_compute_with(|current| {
                let mut list = current
                    .and_then(|entry| entry.into_value().live(now))
                    .map(|entry| entry.value)
                    .unwrap_or_else(|| Value::Array(Vec::new()));
                if let Value::Array(list) = &mut list {
                    append_unique(list, items);
                }
                std::future::ready(Op::Put(Entry::new(list, None, now)))
            })
            .await;
        result
            .into_entry()
            .map(|entry| into_list(entry.into_value().value))
            .unwrap_or_default()
    }

    async fn list_pop_all(&self, key: &str) -> Vec<Value> {
        let now = Instant::now();
        let mut popped = Vec::new();
        self.cache
            .entry(key.to_owned())
            .and_compute_with(|current| {
                let op = match current.map(|entry| entry.into_value()) {
                    Some(entry) if entry.is_expired(now) => Op::Remove,
                    Some(entry) if entry.value.is_array() => {
                        popped = into_list(entry.value);
                        Op::Remove
                    }
                    _ => Op::Nop,
                };
                std::future::ready(op)
            })
            .await;
        popped
    }

    async fn mset(&self, entries: Vec<(String, Value)>, ttl: Option<Duration>) {
        let now = Instant::now();
        for (key, value) in entries {
            self.cache.insert(key, Entry::new(value, ttl, now)).await;
        }
    }

    async fn delete(&self, key: &str) {
        self.cache.invalidate(key).await;
    }
}

impl Kv for KvHandle {
    type Read = Arc<Value>;
    type List = List;

    async fn get(&self, key: &str) -> Option<Arc<Value>> {
        KvHandle::get(self, key).await.expect("store is running")
    }

    async fn set(&self, key: &str, value: Value, ttl: Option<Duration>) {
        let call = KvHandle::set(self, key, value);
        match ttl {
            Some(ttl) => call.ttl(ttl).await,
            None => call.await,
        }
        .expect("store is running")
    }

    async fn list_append_unique(&self, key: &str, items: Vec<Value>) -> List {
        KvHandle::list_append_unique(self, key, items)
            .await
            .expect("store is running")
    }

    async fn list_pop_all(&self, key: &str) -> Vec<Value> {
        KvHandle::list_pop_all(self, key)
            .await
            .expect("store is running")
    }

    async fn mset(&self, entries: Vec<(String, Value)>, ttl: Option<Duration>) {
        let call = KvHandle::mset(self, entries);
        match ttl {
            Some(ttl) => call.ttl(ttl).await,
            None => call.await,
        }
        .expect("store is running")
    }

    async fn delete(&self, key: &str) {
        KvHandle::delete(self, key).await.expect("store is running")
    }
}
