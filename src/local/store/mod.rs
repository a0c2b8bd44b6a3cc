//! The map and its rules, as plain synchronous code.
//!
//! Nothing here knows about channels or tasks: every method takes the current instant and returns
//! its answer. The owner task ([`actor`](super::actor)) calls these methods one command at a time,
//! which is what makes each command atomic; tests can drive them directly.
//!
//! Values are kept behind `Arc` so that answering a read only bumps a reference count on the owner
//! task; the deep copy into the caller's owned `Value` happens on the caller's side, off the single
//! owner task that every caller shares.
//!
//! Expiry is checked lazily on every access (an expired entry is removed when it is touched and
//! treated as missing) and eagerly through [`Store::purge_expired`], which the owner task also calls
//! for active expiry.
//!
//! The coordination commands (counters, compare-and-set, closures, transactions, scans) live in
//! the child module `coordination`, with the same access to the map. Every change a command makes
//! is also written to a [`ChangeLog`] for watchers, and every lookup and expiry is counted for
//! [`Stats`]. In a store built with `max_entries`, every method that may add a key first asks the
//! child module `bound` for room, before it changes anything.
//!
//! Values that leave the store are dropped through the child module `lazyfree`: a big one on a
//! thread of its own, so that freeing it never holds up the owner task. [`Entry`]'s `Drop` does
//! it, so every way out (delete, overwrite, pop, expiry, eviction) is covered, and the store's
//! own `Drop` sends the whole map there.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::changes::ChangeLog;
use super::expiry::ExpiryIndex;
use super::Bound;
use crate::closure::StoreId;
use crate::command::feed_queue::ListDelta;
use crate::error::{json_type_name, KvError};
use crate::stats::Stats;

mod bound;
mod coordination;
mod ids;
mod lazyfree;
mod pops;
mod table;

use ids::IdIndex;
use table::Table;

/// One stored value and when it stops being visible.
#[derive(Debug)]
struct Entry {
    value: Arc<Value>,
    /// `None`: never expires.
    deadline: Option<Instant>,
    /// For a list that `list_append_unique` keeps: the ids of its items. Any other write to the
    /// key replaces the entry or clears this, so it never disagrees with the list.
    ids: Option<Box<IdIndex>>,
}

impl Entry {
    /// A fresh entry, with no id index yet.
    fn new(value: Arc<Value>, deadline: Option<Instant>) -> Self {
        Entry {
            value,
            deadline,
            ids: None,
        }
    }

    /// An entry is expired from its deadline on: a 1 s TTL set at `t` is gone at `t + 1 s`.
    fn is_expired(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|deadline| deadline <= now)
    }

    /// The entry's value, for a call that takes it out of the store (its id index is dropped as
    /// any entry's is).
    fn into_value(mut self) -> Arc<Value> {
        std::mem::replace(&mut self.value, placeholder())
    }

    /// Drops the entry's id index, off the owner task if it is big.
    fn drop_ids(&mut self) {
        if let Some(ids) = self.ids.take() {
            if ids.len() >= lazyfree::BIG {
                lazyfree::free_later(ids);
            }
        }
    }
}

/// An entry leaving the store frees its value and id index off the owner task when they are big
/// (see `lazyfree`).
impl Drop for Entry {
    fn drop(&mut self) {
        self.drop_ids();
        if lazyfree::is_big(&self.value) {
            lazyfree::release(std::mem::replace(&mut self.value, placeholder()));
        }
    }
}

/// What an entry holds once its value has been taken out: one shared `null`, so that taking it
/// costs a reference count, not an allocation.
fn placeholder() -> Arc<Value> {
    static NULL: std::sync::OnceLock<Arc<Value>> = std::sync::OnceLock::new();
    Arc::clone(NULL.get_or_init(|| Arc::new(Value::Null)))
}

/// Turns a TTL into a deadline. A TTL too large to represent as an instant means "never expires"
/// rather than a panic on overflow.
fn deadline_after(now: Instant, ttl: Option<Duration>) -> Option<Instant> {
    ttl.and_then(|ttl| now.checked_add(ttl))
}

/// The running counters behind [`Stats`].
#[derive(Debug, Default)]
struct Counters {
    hits: u64,
    misses: u64,
    expirations: u64,
    evictions: u64,
    commands: u64,
}

/// The map of keys to values with their deadlines, and the index of those deadlines.
#[derive(Debug, Default)]
pub(crate) struct Store {
    /// The keys and their entries, by hash and in order (see `table`).
    map: Table<Entry>,
    expiry: ExpiryIndex,
    /// Changes made by the current command, for the owner task's watchers.
    pub(crate) changes: ChangeLog,
    counters: Counters,
    /// The store's id, which closures run under (see [`closure`](crate::closure)).
    id: StoreId,
    /// The most entries the map may hold after a command, and what to do when full; `None`:
    /// unbounded.
    bound: Option<Bound>,
}

impl Store {
    /// An empty store whose table is sized for `capacity` entries (never shrunk below that).
    pub(crate) fn new(id: StoreId, bound: Option<Bound>, capacity: usize) -> Store {
        let mut store = Store::default();
        store.id = id;
        store.bound = bound;
        store.map = Table::with_capacity(capacity);
        store
    }

    /// The live value at `key`, or `None` if it is missing or expired.
    pub(crate) fn get(&mut self, key: &str, now: Instant) -> Option<Arc<Value>> {
        // The hottest path: one lookup, hit or miss, where `live` takes two for a live key. It
        // counts and removes as `live` does.
        match self.map.get(key) {
            Some(entry) if !entry.is_expired(now) => {
                self.counters.hits += 1;
                Some(Arc::clone(&entry.value))
            }
            Some(_) => {
                self.remove_expired(key);
                self.counters.misses += 1;
                None
            }
            None => {
                self.counters.misses += 1;
                None
            }
        }
    }

    /// Stores `value` at `key`, replacing any earlier value and TTL. `ttl: None` never expires.
    /// A new key in a full bounded store may be refused.
    pub(crate) fn set(
        &mut self,
        key: String,
        value: Value,
        ttl: Option<Duration>,
        now: Instant,
    ) -> Result<(), KvError> {
        self.room_for_key(&key, now)?;
        self.put(key, Arc::new(value), deadline_after(now, ttl));
        Ok(())
    }

    /// Removes `key`; a missing key is a no-op. An entry already expired goes as an expiry
    /// (counted, and reported to watchers as expired), not as a deletion of a value no call could
    /// read.
    pub(crate) fn delete(&mut self, key: &str, now: Instant) {
        if let Some(entry) = self.unlink(key) {
            if entry.is_expired(now) {
                self.note_expired(key);
            } else {
                self.changes.deleted(key);
            }
        }
    }

    /// Appends to the list at `key` each item whose `id_key` field is in neither the list nor an
    /// earlier item of this call, then sets the entry's TTL to `ttl` (`None`: never expires).
    ///
    /// The items must already be JSON objects holding `id_key` (the handle checks that before the
    /// command is sent). A missing or expired key starts a new, possibly empty, list. An existing
    /// value that is not a list is an error and is kept. Existing elements that are not objects, or
    /// lack `id_key`, stay where they are and never match an item.
    ///
    /// Returns the whole list after the append.
    pub(crate) fn list_append_unique(
        &mut self,
        key: String,
        items: Vec<Value>,
        id_key: &str,
        ttl: Option<Duration>,
        now: Instant,
    ) -> Result<Arc<Value>, KvError> {
        let deadline = deadline_after(now, ttl);
        let Some(entry) = self.live_list(&key, now)? else {
            self.room_for_key(&key, now)?;
            let mut ids = IdIndex::build(id_key, &[]);
            let list = Arc::new(Value::Array(ids.admit(items)));
            self.put(key.clone(), Arc::clone(&list), deadline);
            if let Some(entry) = self.map.get_mut(&key) {
                entry.ids = Some(Box::new(ids));
            }
            return Ok(list);
        };
        if !entry.ids.as_ref().is_some_and(|ids| ids.is_for(id_key)) {
            entry.drop_ids();
            entry.ids = Some(Box::new(IdIndex::build(id_key, as_list(&entry.value))));
        }
        let fresh = match &mut entry.ids {
            Some(ids) => ids.admit(items),
            None => Vec::new(),
        };
        let (old_len, added) = (as_list(&entry.value).len(), fresh.len());
        if !fresh.is_empty() {
            if let Value::Array(list) = Arc::make_mut(&mut entry.value) {
                list.extend(fresh);
            }
        }
        let list = Arc::clone(&entry.value);
        self.changes.list_changed(&key, &list, || {
            ListDelta::after(old_len, as_list(&list), added)
        });
        self.set_deadline(&key, deadline);
        Ok(list)
    }

    /// Appends `items` to the list at `key`, then drops the oldest items so that at most `max_len`
    /// remain, and sets the list's TTL to `ttl` (`None`: never expires). A missing key starts a
    /// list (pushing nothing onto a missing key creates nothing); a non-list value is refused and
    /// kept. Returns the list's new length.
    pub(crate) fn list_push(
        &mut self,
        key: String,
        items: Vec<Value>,
        max_len: usize,
        ttl: Option<Duration>,
        now: Instant,
    ) -> Result<usize, KvError> {
        let deadline = deadline_after(now, ttl);
        let Some(entry) = self.live_list(&key, now)? else {
            let mut list = items;
            keep_newest(&mut list, max_len);
            let len = list.len();
            if len > 0 {
                self.room_for_key(&key, now)?;
                self.put(key, Arc::new(Value::Array(list)), deadline);
            }
            return Ok(len);
        };
        entry.drop_ids();
        let (old_len, pushed) = (as_list(&entry.value).len(), items.len());
        let len = match Arc::make_mut(&mut entry.value) {
            Value::Array(list) => {
                list.extend(items);
                keep_newest(list, max_len);
                list.len()
            }
            _ => 0,
        };
        let list = Arc::clone(&entry.value);
        self.changes.list_changed(&key, &list, || {
            ListDelta::after(old_len, as_list(&list), pushed)
        });
        self.set_deadline(&key, deadline);
        Ok(len)
    }

    /// Takes up to `count` items from the front of the list at `key`, oldest first, and removes
    /// the key once it is empty. A missing key gives nothing; a non-list value is refused and kept.
    pub(crate) fn list_pop_front(
        &mut self,
        key: &str,
        count: usize,
        now: Instant,
    ) -> Result<Vec<Value>, KvError> {
        let Some(entry) = self.live_list(key, now)? else {
            return Ok(Vec::new());
        };
        if count == 0 || as_list(&entry.value).is_empty() {
            return Ok(Vec::new());
        }
        entry.drop_ids();
        let old_len = as_list(&entry.value).len();
        let (taken, left) = match Arc::make_mut(&mut entry.value) {
            Value::Array(list) => {
                let taken: Vec<Value> = list.drain(..count.min(list.len())).collect();
                (taken, list.len())
            }
            _ => (Vec::new(), 0),
        };
        if left == 0 {
            self.remove(key);
        } else {
            let list = Arc::clone(&entry.value);
            self.changes
                .list_changed(key, &list, || ListDelta::after(old_len, as_list(&list), 0));
        }
        Ok(taken)
    }

    /// Removes the list at `key` and returns it. A missing, expired or non-list key gives `None`,
    /// and a non-list value stays where it is.
    pub(crate) fn list_pop_all(&mut self, key: &str, now: Instant) -> Option<Arc<Value>> {
        if !self.live(key, now)?.value.is_array() {
            return None;
        }
        self.remove(key).map(Entry::into_value)
    }

    /// Stores every pair, in order (so the last of duplicate keys wins), all with the same TTL.
    /// In a full bounded store, the room for all the new keys is made first, or none is stored.
    pub(crate) fn mset(
        &mut self,
        entries: Vec<(String, Value)>,
        ttl: Option<Duration>,
        now: Instant,
    ) -> Result<(), KvError> {
        self.room_for_keys(entries.iter().map(|(key, _)| key.as_str()), now)?;
        let deadline = deadline_after(now, ttl);
        for (key, value) in entries {
            self.put(key, Arc::new(value), deadline);
        }
        Ok(())
    }

    /// The live value of each key, in the order given, duplicates included.
    pub(crate) fn mget(&mut self, keys: &[String], now: Instant) -> Vec<Option<Arc<Value>>> {
        keys.iter().map(|key| self.get(key, now)).collect()
    }

    /// Gives a live key a new TTL and returns `true`; a missing or expired key returns `false` and
    /// is not revived.
    pub(crate) fn expire(&mut self, key: &str, ttl: Duration, now: Instant) -> bool {
        if self.live(key, now).is_none() {
            return false;
        }
        self.set_deadline(key, deadline_after(now, Some(ttl)));
        true
    }

    /// Removes up to `limit` expired entries, earliest deadline first, and returns how many. Costs
    /// what it removes, not the size of the store.
    pub(crate) fn purge_expired(&mut self, limit: usize, now: Instant) -> usize {
        let keys = self.expiry.pop_expired(now, limit);
        for key in &keys {
            self.map.remove(key);
            self.note_expired(key);
        }
        keys.len()
    }

    /// How many entries are held, and how many of them have a deadline.
    pub(crate) fn stats(&self) -> Stats {
        Stats {
            entries: self.map.len(),
            expiring: self.expiry.len(),
            hits: self.counters.hits,
            misses: self.counters.misses,
            expirations: self.counters.expirations,
            evictions: self.counters.evictions,
            commands: self.counters.commands,
            watchers: self.changes.listeners(),
            ..Stats::default()
        }
    }

    /// The earliest deadline of any entry, for the owner task's expiry timer.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.expiry.next_deadline()
    }

    /// The live entry at `key`. An expired entry is removed here, so that no command ever sees it.
    /// Counts a hit or a miss.
    fn live(&mut self, key: &str, now: Instant) -> Option<&mut Entry> {
        let Some(entry) = self.map.get(key) else {
            self.counters.misses += 1;
            return None;
        };
        if entry.is_expired(now) {
            self.remove_expired(key);
            self.counters.misses += 1;
            return None;
        }
        self.counters.hits += 1;
        self.map.get_mut(key)
    }

    /// [`Store::live`] for the list calls: a live value that is not a list is refused.
    fn live_list(&mut self, key: &str, now: Instant) -> Result<Option<&mut Entry>, KvError> {
        match self.live(key, now) {
            Some(entry) if !entry.value.is_array() => Err(KvError::WrongType {
                key: key.to_owned(),
                expected: "a list",
                found: json_type_name(&entry.value),
            }),
            entry => Ok(entry),
        }
    }

    /// Removes an entry found expired, and its place in the expiry index, as an expiry.
    fn remove_expired(&mut self, key: &str) {
        self.unlink(key);
        self.note_expired(key);
    }

    /// Counts one expired entry as removed and tells watchers.
    fn note_expired(&mut self, key: &str) {
        self.counters.expirations += 1;
        self.changes.expired(key);
    }

    /// Counts one command applied, for [`Stats::commands`].
    pub(crate) fn note_command(&mut self) {
        self.counters.commands += 1;
    }

    /// Inserts or replaces an entry, keeping the expiry index in step.
    fn put(&mut self, key: String, value: Arc<Value>, deadline: Option<Instant>) {
        if let Some(entry) = self.map.get_mut(&key) {
            self.changes.set(&key, &value);
            self.expiry.reschedule(&key, entry.deadline, deadline);
            // The old entry drops here: off the owner task if it is big.
            *entry = Entry::new(value, deadline);
        } else {
            self.changes.created(&key, &value);
            self.expiry.reschedule(&key, None, deadline);
            self.map.insert_new(key, Entry::new(value, deadline));
        }
    }

    /// Changes the deadline of an existing entry, keeping the expiry index in step.
    fn set_deadline(&mut self, key: &str, deadline: Option<Instant>) {
        let Some(entry) = self.map.get_mut(key) else {
            return;
        };
        self.expiry.reschedule(key, entry.deadline, deadline);
        entry.deadline = deadline;
        #[cfg(feature = "durable")]
        self.changes.retimed(key);
    }

    /// Removes an entry and its place in the expiry index, as a deletion.
    fn remove(&mut self, key: &str) -> Option<Entry> {
        let entry = self.unlink(key)?;
        self.changes.deleted(key);
        Some(entry)
    }

    /// Takes an entry out of the map and the expiry index, telling nobody: the caller records why.
    fn unlink(&mut self, key: &str) -> Option<Entry> {
        let entry = self.map.remove(key)?;
        self.expiry.reschedule(key, entry.deadline, None);
        Some(entry)
    }
}

/// What the journal needs of the store (feature `durable`).
#[cfg(feature = "durable")]
impl Store {
    /// Puts an entry loaded from the journal's file, before the store starts journaling.
    pub(crate) fn load(&mut self, key: String, value: Value, deadline: Option<Instant>) {
        self.put(key, Arc::new(value), deadline);
    }

    /// Starts recording which keys change, for [`Store::take_journal`].
    pub(crate) fn start_journal(&mut self) {
        self.changes.journal();
    }

    /// How many changes the store has made (see `ChangeLog::marks`).
    pub(crate) fn marks(&self) -> u64 {
        self.changes.marks()
    }

    /// The state, at `now`, of every key changed since the last call: its value and deadline, or
    /// `None` for a key that is gone (or expired, which calls cannot tell from gone).
    pub(crate) fn take_journal(&mut self, now: Instant) -> Vec<Journaled> {
        self.changes
            .take_dirty()
            .into_iter()
            .map(|key| {
                let state = self
                    .map
                    .get(&key)
                    .filter(|entry| !entry.is_expired(now))
                    .map(|entry| (Arc::clone(&entry.value), entry.deadline));
                (key, state)
            })
            .collect()
    }
}

/// One key's state for the journal: its value and deadline, or `None`: gone.
#[cfg(feature = "durable")]
pub(crate) type Journaled = (String, Option<(Arc<Value>, Option<Instant>)>);

/// The store's own end (its owner task ending) frees the whole map, and the expiry index, off the
/// owner task: a million entries take as long to free as to fill.
impl Drop for Store {
    fn drop(&mut self) {
        if self.map.len() >= lazyfree::BIG {
            let (map, old, keys) = self.map.take_all();
            lazyfree::free_items(map);
            if let Some(old) = old {
                lazyfree::free_items(old);
            }
            lazyfree::free_later((keys, std::mem::take(&mut self.expiry)));
        }
    }
}

/// The items of a stored list (every list call checks the type first; anything else reads as
/// empty).
fn as_list(value: &Value) -> &[Value] {
    match value {
        Value::Array(items) => items,
        _ => &[],
    }
}

/// Drops the oldest items of `list` so that at most `max_len` remain (off the owner task when
/// they are many).
fn keep_newest(list: &mut Vec<Value>, max_len: usize) {
    let dropped = list.len().saturating_sub(max_len);
    if dropped >= lazyfree::BIG {
        lazyfree::free_items(list.drain(..dropped).collect::<Vec<Value>>());
    } else if dropped > 0 {
        list.drain(..dropped);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn overwriting_a_key_drops_its_old_deadline_from_the_index() {
        let t0 = Instant::now();
        let mut store = Store::default();
        store.set("k".into(), json!(1), Some(SEC), t0).unwrap();
        store.set("k".into(), json!(2), None, t0).unwrap();
        assert_eq!(store.expiry.len(), 0);
        assert_eq!(store.purge_expired(10, t0 + 2 * SEC), 0);
        assert_eq!(store.get("k", t0 + 2 * SEC).as_deref(), Some(&json!(2)));
    }

    #[test]
    fn lazy_expiry_removes_the_entry_and_its_index_slot() {
        let t0 = Instant::now();
        let mut store = Store::default();
        store.set("k".into(), json!(1), Some(SEC), t0).unwrap();
        assert_eq!(store.get("k", t0 + SEC), None);
        assert_eq!(store.map.len(), 0);
        assert_eq!(store.expiry.len(), 0);
    }

    fn big_list() -> Value {
        Value::Array((0..lazyfree::BIG).map(|i| json!(i)).collect())
    }

    /// How many things this thread has sent to the freeing thread.
    fn sent() -> usize {
        lazyfree::SENT.with(std::cell::Cell::get)
    }

    #[test]
    fn big_values_leaving_the_store_are_freed_off_the_owner_and_small_ones_inline() {
        let t0 = Instant::now();
        let mut store = Store::default();
        let before = sent();
        store.set("small".into(), json!([1, 2]), None, t0).unwrap();
        store.delete("small", t0);
        assert_eq!(sent(), before, "a small value is dropped inline");

        store.set("k".into(), big_list(), None, t0).unwrap();
        let held = Arc::downgrade(&store.map.get("k").unwrap().value);
        store.delete("k", t0);
        assert_eq!(sent(), before + 1, "deleted");
        lazyfree::flush();
        assert!(held.upgrade().is_none(), "and freed");

        store.set("k".into(), big_list(), None, t0).unwrap();
        store.set("k".into(), json!(1), None, t0).unwrap();
        assert_eq!(sent(), before + 2, "written over");

        store.set("k".into(), big_list(), Some(SEC), t0).unwrap();
        assert_eq!(store.purge_expired(10, t0 + SEC), 1);
        assert_eq!(sent(), before + 3, "expired");

        store.set("k".into(), big_list(), None, t0).unwrap();
        let reader = store.get("k", t0).unwrap();
        store.delete("k", t0);
        assert_eq!(sent(), before + 3, "a value a reader shares is not sent");
        drop(reader);

        // The list a pop hands out goes to the caller, not to the freeing thread.
        store.set("k".into(), big_list(), None, t0).unwrap();
        let popped = store.list_pop_all("k", t0).unwrap();
        assert_eq!(sent(), before + 3);
        assert_eq!(lazyfree::weight(&popped), lazyfree::BIG);
    }

    #[test]
    fn a_store_frees_its_map_off_the_owner_when_dropped() {
        let t0 = Instant::now();
        let mut store = Store::default();
        for i in 0..lazyfree::BIG {
            store.set(format!("k{i}"), json!(i), Some(SEC), t0).unwrap();
        }
        let before = sent();
        drop(store);
        assert_eq!(sent(), before + 2, "the map, and the expiry index");
        lazyfree::flush();
    }

    #[test]
    fn a_ttl_too_large_for_an_instant_never_expires() {
        let t0 = Instant::now();
        let mut store = Store::default();
        store
            .set("k".into(), json!(1), Some(Duration::MAX), t0)
            .unwrap();
        assert_eq!(store.next_deadline(), None);
        assert!(store.expire("k", Duration::MAX, t0));
        assert_eq!(store.get("k", t0 + 1000 * SEC).as_deref(), Some(&json!(1)));
    }
}
