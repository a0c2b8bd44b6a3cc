//! The table of keys: a hash map for the point commands, the same keys in order for
//! `scan_prefix`, and the table's sizing, none of it done in one go.
//!
//! - **Lookups** go to griddle's hash map (hashbrown underneath, hashed with foldhash): one probe
//!   for a `get`, whatever the size.
//! - **Order**: every key is also in a `BTreeSet`, sharing its one allocation with the map's key
//!   (`Arc<str>`), so a prefix scan walks only the keys under its prefix: `scan_prefix(p).limit(10)`
//!   costs a descent of the tree and ten steps, not a pass over the map. A new key pays an insert
//!   into the tree, a removed one a removal; overwriting, reading or re-timing a key costs nothing
//!   more.
//! - **Growing** is griddle's: the old table's entries move to the grown one a few per later
//!   insert, as in Redis's `dict.c`, so no insert pauses for a whole resize.
//! - **Shrinking** is ours, for griddle's `shrink_to` is one rehash: once three quarters of the
//!   table's peak are gone, a table sized for twice what is left takes its place and the entries
//!   move to it [`STEP`] per later insert or removal, in key order (the ordered set is the cursor).
//!   Lookups meanwhile look in both. Without it, a burst of keys that then expire would hold the
//!   table of its peak for as long as the store lives (`tests/churn.rs` pins it); done at once,
//!   the shrink after 500,000 keys expire was a pause of its own.

use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::Arc;

use super::lazyfree;

/// One hash table of the map.
type Map<V> = griddle::HashMap<Arc<str>, V, foldhash::fast::RandomState>;

/// A table this small is never shrunk: its memory is not worth the work.
const SMALL: usize = 1024;

/// Entries moved to the smaller table per insert or removal while shrinking.
const STEP: usize = 16;

/// A shrink under way: the old table, and the last key moved out of it (every key up to it, in
/// order, is in the new table).
#[derive(Debug)]
struct Shrink<V> {
    old: Map<V>,
    moved_to: Option<Arc<str>>,
}

/// Keys to values, looked up by hash and walked in order.
#[derive(Debug)]
pub(super) struct Table<V> {
    map: Map<V>,
    /// While shrinking: the table whose entries are moving to `map`.
    shrink: Option<Shrink<V>>,
    /// Every key of the table, in order.
    keys: BTreeSet<Arc<str>>,
    /// How many entries the table is sized for: what it was last shrunk to, or the most it has
    /// held since. `HashMap::capacity` is no guide: slots freed by removals count against it
    /// until the next rehash.
    sized_for: usize,
    /// The size the store was built for, which the table is never shrunk below.
    floor: usize,
}

impl<V: Send + 'static> Default for Table<V> {
    fn default() -> Self {
        Table::with_capacity(0)
    }
}

impl<V: Send + 'static> Table<V> {
    /// An empty table sized for `capacity` entries, never shrunk below that.
    pub(super) fn with_capacity(capacity: usize) -> Table<V> {
        Table {
            map: Map::with_capacity_and_hasher(capacity, Default::default()),
            shrink: None,
            keys: BTreeSet::new(),
            sized_for: capacity,
            floor: capacity,
        }
    }

    /// How many entries the table holds.
    pub(super) fn len(&self) -> usize {
        self.map.len() + self.shrink.as_ref().map_or(0, |shrink| shrink.old.len())
    }

    /// The value at `key`.
    pub(super) fn get(&self, key: &str) -> Option<&V> {
        match self.map.get(key) {
            Some(value) => Some(value),
            None => self.shrink.as_ref()?.old.get(key),
        }
    }

    /// The value at `key`, to change in place.
    pub(super) fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        if let Some(value) = self.map.get_mut(key) {
            return Some(value);
        }
        self.shrink.as_mut()?.old.get_mut(key)
    }

    /// Whether `key` is held.
    pub(super) fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Adds `key`, which the table must not hold (look it up first).
    pub(super) fn insert_new(&mut self, key: String, value: V) {
        let key: Arc<str> = Arc::from(key);
        debug_assert!(!self.contains_key(&key), "insert_new of a held key");
        self.keys.insert(Arc::clone(&key));
        self.map.insert(key, value);
        self.sized_for = self.sized_for.max(self.len());
        self.step();
    }

    /// Takes `key` out of the table.
    pub(super) fn remove(&mut self, key: &str) -> Option<V> {
        let value = match self.map.remove(key) {
            Some(value) => value,
            None => self.shrink.as_mut()?.old.remove(key)?,
        };
        self.keys.remove(key);
        self.step();
        self.shrink_if_sparse();
        Some(value)
    }

    /// The keys from `prefix` on, in order, with their values: the caller stops at the first key
    /// that does not start with `prefix`.
    pub(super) fn from<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a V)> {
        self.keys
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .filter_map(move |key| Some((&**key, self.get(key)?)))
    }

    /// Starts a shrink once the table holds less than a quarter of what it is sized for: to twice
    /// what it holds, so that the next one comes only after half of that has gone too (`O(1)` per
    /// removal over time).
    fn shrink_if_sparse(&mut self) {
        let len = self.len();
        if self.shrink.is_none()
            && self.sized_for > SMALL.max(self.floor)
            && len < self.sized_for / 4
        {
            self.sized_for = (len * 2).max(self.floor);
            let smaller = Map::with_capacity_and_hasher(self.sized_for, Default::default());
            let old = std::mem::replace(&mut self.map, smaller);
            self.shrink = Some(Shrink {
                old,
                moved_to: None,
            });
            self.step();
        }
    }

    /// Moves the next [`STEP`] entries of a shrink under way, in key order, and ends it once the
    /// old table is empty.
    fn step(&mut self) {
        let Table {
            map, shrink, keys, ..
        } = self;
        let Some(Shrink { old, moved_to }) = shrink else {
            return;
        };
        let from = match moved_to {
            Some(key) => Bound::Excluded(&**key),
            None => Bound::Unbounded,
        };
        let mut last = None;
        for key in keys.range::<str, _>((from, Bound::Unbounded)).take(STEP) {
            if old.is_empty() {
                break;
            }
            // A key added since the shrink began is in `map` already.
            if let Some(value) = old.remove(&**key) {
                map.insert(Arc::clone(key), value);
            }
            last = Some(key);
        }
        match last {
            Some(key) if !old.is_empty() => *moved_to = Some(Arc::clone(key)),
            _ => {
                // Done: the old table is empty, but its allocation is the peak's.
                if let Some(Shrink { old, .. }) = shrink.take() {
                    drop_table(old);
                }
            }
        }
    }

    /// Takes everything out, leaving the table empty: its tables and its ordered keys.
    pub(super) fn take_all(&mut self) -> (Map<V>, Option<Map<V>>, BTreeSet<Arc<str>>) {
        let taken = std::mem::take(self);
        let Table {
            map, shrink, keys, ..
        } = taken;
        (map, shrink.map(|shrink| shrink.old), keys)
    }
}

/// Frees an emptied table's allocation, a big one off the owner task: returning a peak's
/// hundreds of megabytes to the system takes a while (unmapping them, page by page).
fn drop_table<V: Send + 'static>(old: Map<V>) {
    if old.capacity() >= BIG_TABLE {
        lazyfree::free_later(old);
    }
}

/// From this many slots on, an emptied table is freed off the owner task: megabytes, which the
/// allocator returns to the system with `munmap`.
const BIG_TABLE: usize = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_in_order_from_a_prefix() {
        let mut table = Table::default();
        for key in ["b:2", "a:1", "b:1", "c", "b:10"] {
            table.insert_new(key.to_owned(), key.len());
        }
        let under_b: Vec<&str> = table
            .from("b:")
            .take_while(|(key, _)| key.starts_with("b:"))
            .map(|(key, _)| key)
            .collect();
        assert_eq!(under_b, ["b:1", "b:10", "b:2"]);
        assert_eq!(table.remove("b:10"), Some(4));
        assert_eq!(table.from("b:1").next(), Some(("b:1", &3)));
        assert_eq!(table.from("b:1").nth(1), Some(("b:2", &3)));
        assert_eq!(table.len(), 4);
    }

    #[test]
    fn a_shrink_moves_entries_a_step_at_a_time_and_loses_none() {
        let mut table = Table::default();
        let n = 40 * SMALL;
        for i in 0..n {
            table.insert_new(format!("k{i:06}"), i);
        }
        // Three quarters and one more go: the shrink starts, and moves one step per removal.
        for i in 0..=(3 * n / 4) {
            assert_eq!(table.remove(&format!("k{i:06}")), Some(i));
        }
        let left = n - 3 * n / 4 - 1;
        assert!(table.shrink.is_some(), "a shrink is under way");
        assert_eq!(table.sized_for, 2 * left);
        assert_eq!(table.len(), left);
        // During it, every key is found, written and added, in whichever table it is.
        for i in (3 * n / 4 + 1)..n {
            assert_eq!(table.get(&format!("k{i:06}")), Some(&i));
        }
        *table.get_mut("k039999").unwrap() = 7;
        table.insert_new("new".into(), 1);
        for _ in 0..(left / STEP + 1) {
            table.insert_new("tmp".into(), 0);
            table.remove("tmp");
        }
        assert!(table.shrink.is_none(), "the shrink ended");
        assert_eq!(table.len(), left + 1);
        assert_eq!(table.get("k039999"), Some(&7));
        assert_eq!(table.get("new"), Some(&1));
        assert_eq!(table.from("").count(), left + 1);
    }

    #[test]
    fn a_table_is_never_shrunk_below_its_floor() {
        let mut table = Table::with_capacity(100 * SMALL);
        for i in 0..(8 * SMALL) {
            table.insert_new(format!("k{i}"), i);
        }
        for i in 0..(8 * SMALL) {
            table.remove(&format!("k{i}"));
        }
        assert!(table.shrink.is_none());
        assert_eq!(table.sized_for, 100 * SMALL);
    }
}
