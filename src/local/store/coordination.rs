//! The store's rules for the coordination commands: counters, conditional writes, closures,
//! transactions, scans and TTL queries.
//!
//! Each runs whole on the owner task, so each read-modify-write is atomic by construction. Like the
//! rest of the store, this is synchronous code that takes `now`. It lives beside `mod.rs`, as a
//! child module with the same access to the map, so that the core rules and these stay easy to
//! tell apart.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::{deadline_after, Store};
use crate::closure;
use crate::command::{TxnFn, UpdateFn};
use crate::error::{json_type_name, KvError};
use crate::ttl::Ttl;
use crate::txn::{Op, Source, Txn};
use crate::value::check_depth;

impl Store {
    /// Adds `by` to the integer at `key` and returns the new value. A missing or expired key counts
    /// as 0 and is created with `ttl`; an existing key keeps its TTL. A value that is not an `i64`,
    /// or a sum past `i64`'s bounds, is an error and changes nothing.
    pub(crate) fn incr(
        &mut self,
        key: String,
        by: i64,
        ttl: Option<Duration>,
        now: Instant,
    ) -> Result<i64, KvError> {
        let Some(entry) = self.live(&key, now) else {
            self.room_for_key(&key, now)?;
            self.put(key, Arc::new(Value::from(by)), deadline_after(now, ttl));
            return Ok(by);
        };
        let Some(current) = entry.value.as_i64() else {
            return Err(KvError::WrongType {
                key,
                expected: "an integer (i64)",
                found: json_type_name(&entry.value),
            });
        };
        let Some(next) = current.checked_add(by) else {
            return Err(KvError::Overflow { key, current, by });
        };
        self.replace_value(&key, Arc::new(Value::from(next)));
        Ok(next)
    }

    /// Stores `value` with `ttl` only if `key` is missing or expired. Returns whether it did; a
    /// full bounded store may refuse the new key.
    pub(crate) fn set_if_absent(
        &mut self,
        key: String,
        value: Value,
        ttl: Option<Duration>,
        now: Instant,
    ) -> Result<bool, KvError> {
        if self.live(&key, now).is_some() {
            return Ok(false);
        }
        self.room_for_key(&key, now)?;
        self.put(key, Arc::new(value), deadline_after(now, ttl));
        Ok(true)
    }

    /// Stores `new` at `key` only if the key's live value equals `expected` (`None`: only if the key
    /// is missing or expired). Returns whether it did. With `ttl` the key gets that TTL; without,
    /// an existing key keeps its TTL and a created one never expires. A full bounded store may
    /// refuse to create the key.
    pub(crate) fn compare_and_set(
        &mut self,
        key: String,
        expected: Option<Value>,
        new: Value,
        ttl: Option<Duration>,
        now: Instant,
    ) -> Result<bool, KvError> {
        let current = self
            .live(&key, now)
            .map(|entry| (&*entry.value, entry.deadline));
        let deadline = match (current, expected.as_ref()) {
            (Some((value, deadline)), Some(expected)) if value == expected => {
                ttl.map_or(deadline, |ttl| deadline_after(now, Some(ttl)))
            }
            (None, None) => {
                self.room_for_key(&key, now)?;
                deadline_after(now, ttl)
            }
            _ => return Ok(false),
        };
        self.put(key, Arc::new(new), deadline);
        Ok(true)
    }

    /// Runs `f` on the live value at `key` and stores what it returns (`None` deletes the key);
    /// returns the new value. An existing key keeps its TTL; a created one never expires, and may
    /// be refused by a full bounded store (after `f` ran: only then is it known to create).
    ///
    /// `f` only ever sees a shared reference, so if it panics the store is exactly as before: the
    /// panic is caught and reported as [`KvError::UpdatePanicked`].
    pub(crate) fn update(
        &mut self,
        key: String,
        mut f: UpdateFn,
        now: Instant,
    ) -> Result<Option<Arc<Value>>, KvError> {
        let current = self.live(&key, now).map(|entry| Arc::clone(&entry.value));
        let existed = current.is_some();
        let ran = closure::run(self.id, || f.call(current.as_deref()));
        drop(f); // quietly: see `UpdateFn`
        let new = ran.map_err(|message| KvError::UpdatePanicked {
            key: key.clone(),
            message,
        })?;
        // What the closure made must be a value the store can keep: no deeper than `MAX_DEPTH`.
        let new = new
            .map(|value| check_depth(&key, value))
            .transpose()?
            .map(Arc::new);
        // Let go of our reference first, so a value held nowhere else can be handed out unshared.
        drop(current);
        if new.is_some() && !existed {
            self.room_for_key(&key, now)?;
        }
        match &new {
            Some(value) if existed => self.replace_value(&key, Arc::clone(value)),
            Some(value) => self.put(key, Arc::clone(value), None),
            None if existed => {
                self.remove(&key);
            }
            None => {}
        }
        Ok(new)
    }

    /// Runs `f` on a [`Txn`] over this store, then applies every write it staged, in order, or none
    /// if it panicked (reported as [`KvError::TransactionPanicked`]) or aborted, or if a full
    /// bounded store has no room for the keys it leaves ([`KvError::Full`]).
    pub(crate) fn transaction(
        &mut self,
        prefix: &str,
        mut f: TxnFn,
        now: Instant,
    ) -> Result<(), KvError> {
        let mut txn = Txn::new(&*self, prefix, now);
        let ran = closure::run(self.id, || f.call(&mut txn));
        drop(f); // quietly: see `TxnFn`
        ran.map_err(|message| KvError::TransactionPanicked {
            prefix: prefix.to_owned(),
            message,
        })?;
        let ops = txn.into_ops()?;
        self.room_for_ops(&ops, now)?;
        // An expired key it deletes goes as an expiry first, as with `delete`: counted, and
        // reported to watchers as expired rather than as a deletion of a value no call could
        // read, even when the transaction writes the key in between (rule 30). A key it only
        // writes is written over, as `set` does.
        for op in &ops {
            if let Op::Delete { key } = op {
                self.expire_if_due(key, now);
            }
        }
        for op in ops {
            match op {
                Op::Set { key, value } => self.put(key, value, None),
                Op::Delete { key } => {
                    self.remove(&key);
                }
                Op::Expire { key, ttl } => self.set_deadline(&key, deadline_after(now, Some(ttl))),
            }
        }
        Ok(())
    }

    /// Removes the live value at `key` and returns it.
    pub(crate) fn get_del(&mut self, key: &str, now: Instant) -> Option<Arc<Value>> {
        self.live(key, now)?;
        self.remove(key).map(super::Entry::into_value)
    }

    /// Whether `key` holds a live value.
    pub(crate) fn exists(&mut self, key: &str, now: Instant) -> bool {
        self.live(key, now).is_some()
    }

    /// How long `key` has left.
    pub(crate) fn ttl(&mut self, key: &str, now: Instant) -> Ttl {
        match self.live(key, now).map(|entry| entry.deadline) {
            None => Ttl::Missing,
            Some(None) => Ttl::NoExpiry,
            Some(Some(deadline)) => Ttl::Expires(deadline - now),
        }
    }

    /// Makes a live key never expire. Returns whether it had a TTL to remove.
    pub(crate) fn persist(&mut self, key: &str, now: Instant) -> bool {
        match self.live(key, now) {
            Some(entry) if entry.deadline.is_some() => {
                self.set_deadline(key, None);
                true
            }
            _ => false,
        }
    }

    /// The live keys starting with `prefix`, sorted, at most `limit` of them.
    ///
    /// Walks the table's ordered keys from `prefix` on: costs the keys under the prefix it
    /// examines (the live ones it returns, and any expired ones among them), not the store.
    pub(crate) fn scan_prefix(&self, prefix: &str, limit: usize, now: Instant) -> Vec<String> {
        self.map
            .from(prefix)
            .take_while(|(key, _)| key.starts_with(prefix))
            .filter(|(_, entry)| !entry.is_expired(now))
            .take(limit)
            .map(|(key, _)| key.to_owned())
            .collect()
    }

    /// Removes `key` as expired if its deadline has passed, so that a command about to remove it
    /// reports an expiry to watchers, not a deletion of a value nobody could see.
    fn expire_if_due(&mut self, key: &str, now: Instant) {
        if self.map.get(key).is_some_and(|entry| entry.is_expired(now)) {
            self.remove_expired(key);
        }
    }

    /// Replaces the value of an existing entry and keeps its deadline.
    fn replace_value(&mut self, key: &str, value: Arc<Value>) {
        if let Some(entry) = self.map.get_mut(key) {
            self.changes.set(key, &value);
            super::lazyfree::release(std::mem::replace(&mut entry.value, value));
            entry.drop_ids();
        }
    }
}

/// A transaction reads the store directly: the live value and deadline at a key, without removing
/// an expired entry ([`Txn`] reads through a shared reference).
impl Source for Store {
    fn read(&self, key: &str, now: Instant) -> Option<(&Arc<Value>, Option<Instant>)> {
        self.map
            .get(key)
            .filter(|entry| !entry.is_expired(now))
            .map(|entry| (&entry.value, entry.deadline))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn a_panicking_transaction_leaves_map_index_and_change_log_untouched() {
        let t0 = Instant::now();
        let mut store = Store::default();
        store.changes.set_listeners(1);
        store.set("a".into(), json!(1), Some(SEC), t0).unwrap();
        let _ = store.changes.take().len();
        let result = store.transaction(
            "",
            TxnFn::new(|txn| {
                txn.set("a", 2);
                txn.delete("a");
                panic!("boom");
            }),
            t0,
        );
        assert!(matches!(result, Err(KvError::TransactionPanicked { .. })));
        assert_eq!(store.get("a", t0).as_deref(), Some(&json!(1)));
        assert_eq!(store.next_deadline(), Some(t0 + SEC));
        assert_eq!(store.changes.take().len(), 0);
    }

    #[test]
    fn scan_prefix_with_a_limit_keeps_the_first_keys_in_order() {
        let t0 = Instant::now();
        let mut store = Store::default();
        for key in ["p:d", "p:b", "q:a", "p:a", "p:c"] {
            store.set(key.into(), json!(0), None, t0).unwrap();
        }
        assert_eq!(store.scan_prefix("p:", 2, t0), vec!["p:a", "p:b"]);
        assert_eq!(store.scan_prefix("p:", 10, t0).len(), 4);
        assert_eq!(store.scan_prefix("p:", 0, t0), Vec::<String>::new());
    }

    #[test]
    fn scan_prefix_walks_only_its_prefix_and_skips_expired_keys_before_the_limit() {
        let t0 = Instant::now();
        let mut store = Store::default();
        for key in ["p", "p:a", "p:c", "p;", "o:z", "p:\u{10ffff}"] {
            store.set(key.into(), json!(0), None, t0).unwrap();
        }
        store.set("p:b".into(), json!(0), Some(SEC), t0).unwrap();
        assert_eq!(store.scan_prefix("p:", 2, t0), vec!["p:a", "p:b"]);
        // Once expired, "p:b" is passed over and the limit is filled from after it.
        assert_eq!(store.scan_prefix("p:", 2, t0 + SEC), vec!["p:a", "p:c"]);
        assert_eq!(
            store.scan_prefix("p:", 10, t0 + SEC),
            vec!["p:a", "p:c", "p:\u{10ffff}"]
        );
        assert_eq!(store.scan_prefix("", 3, t0 + SEC), vec!["o:z", "p", "p:a"]);
        assert_eq!(store.scan_prefix("q", 10, t0), Vec::<String>::new());
        // A key removed or added later is seen as the map sees it.
        store.delete("p:a", t0);
        store.set("p:0".into(), json!(1), None, t0).unwrap();
        assert_eq!(store.scan_prefix("p:", 1, t0 + SEC), vec!["p:0"]);
    }
}
