//! The bound on entries: making room for the keys a command is about to add, in a store built
//! with [`max_entries`](crate::KvBuilder::max_entries).
//!
//! Every store method that may add a key asks here before it changes anything, naming the keys
//! it will write; so a refused call changes nothing, and an `mset` or a transaction is counted
//! whole (all or nothing). Only a key the map does not hold needs room: overwriting an entry, even
//! an expired one not yet removed, leaves the map the same size. When the map is full:
//! 1. expired entries go first, earliest deadline first and only as many as needed, through the
//!    expiry index (as a purge removes them: counted as expirations and reported as expired),
//!    since they are dead anyway;
//! 2. then the store refuses with [`KvError::Full`], or, with `Eviction::VolatileTtl`, evicts
//!    the live keys closest to expiry (the front of the expiry index, Redis `volatile-ttl`),
//!    skipping every key the command writes; it refuses only when too few are left to evict,
//!    and counts them all before evicting one.
//!
//! Without a bound each check is one branch; with one and room to spare, one comparison more.

use foldhash::HashMap;
use tokio::time::Instant;

use super::Store;
use crate::error::KvError;
use crate::eviction::Eviction;
use crate::local::Bound;
use crate::txn::Op;

/// Where a command leaves a key it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    /// The key holds a value.
    Held,
    /// The key is deleted.
    Gone,
    /// As it was (only its TTL changed).
    Kept,
}

/// The keys one command writes, each once, in the order it first names them, with where it
/// leaves each. Only built when the store may be full, so its allocations are off the hot path.
#[derive(Debug, Default)]
struct Writes<'a> {
    keys: Vec<(&'a str, After)>,
    /// The position of each key in `keys`, once there are too many for a linear search.
    index: Option<HashMap<&'a str, usize>>,
}

/// Up to this many keys, a linear search is cheaper than hashing.
const LINEAR: usize = 16;

impl<'a> Writes<'a> {
    fn position(&self, key: &str) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(key).copied(),
            None => self.keys.iter().position(|(written, _)| *written == key),
        }
    }

    /// Notes that the command's next write to `key` leaves it `after` (a TTL change leaves
    /// whatever the earlier writes did).
    fn note(&mut self, key: &'a str, after: After) {
        if let Some(at) = self.position(key) {
            if after != After::Kept {
                self.keys[at].1 = after;
            }
            return;
        }
        if let Some(index) = &mut self.index {
            index.insert(key, self.keys.len());
        }
        self.keys.push((key, after));
        if self.index.is_none() && self.keys.len() > LINEAR {
            let index = self
                .keys
                .iter()
                .enumerate()
                .map(|(at, (key, _))| (*key, at))
                .collect();
            self.index = Some(index);
        }
    }

    fn contains(&self, key: &str) -> bool {
        self.position(key).is_some()
    }
}

impl Store {
    /// Makes room for `key`, which the command is about to give a value, or refuses with
    /// [`KvError::Full`] having changed nothing. Inlined: the hot path (`set`) pays one branch
    /// when the store is unbounded.
    #[inline]
    pub(super) fn room_for_key(&mut self, key: &str, now: Instant) -> Result<(), KvError> {
        match self.bound {
            None => Ok(()),
            // Overwriting an entry needs no room: a full store pays one lookup for it.
            Some(bound) if self.map.len() < bound.max_entries || self.map.contains_key(key) => {
                Ok(())
            }
            Some(bound) => {
                let mut writes = Writes::default();
                writes.note(key, After::Held);
                self.make_room(bound, &writes, now)
            }
        }
    }

    /// [`room_for_key`](Store::room_for_key) for every key of an `mset`, counted together.
    pub(super) fn room_for_keys<'a>(
        &mut self,
        keys: impl ExactSizeIterator<Item = &'a str>,
        now: Instant,
    ) -> Result<(), KvError> {
        let Some(bound) = self.bound else {
            return Ok(());
        };
        // Each key adds at most one entry: no need to look them up while that fits.
        if self.map.len().saturating_add(keys.len()) <= bound.max_entries {
            return Ok(());
        }
        let mut writes = Writes::default();
        for key in keys {
            writes.note(key, After::Held);
        }
        self.make_room(bound, &writes, now)
    }

    /// Makes room for what a transaction's writes leave, counted together: the keys it deletes
    /// free room for the ones it adds.
    pub(super) fn room_for_ops(&mut self, ops: &[Op], now: Instant) -> Result<(), KvError> {
        let Some(bound) = self.bound else {
            return Ok(());
        };
        let sets = ops.iter().filter(|op| matches!(op, Op::Set { .. })).count();
        if self.map.len().saturating_add(sets) <= bound.max_entries {
            return Ok(());
        }
        let mut writes = Writes::default();
        for op in ops {
            match op {
                Op::Set { key, .. } => writes.note(key, After::Held),
                Op::Delete { key } => writes.note(key, After::Gone),
                Op::Expire { key, .. } => writes.note(key, After::Kept),
            }
        }
        self.make_room(bound, &writes, now)
    }

    /// The slow path, when the map may be full: expired entries first, then the policy.
    #[cold]
    fn make_room(
        &mut self,
        bound: Bound,
        writes: &Writes<'_>,
        now: Instant,
    ) -> Result<(), KvError> {
        // Expired entries are dead anyway: let go of as many as are needed, earliest first, so
        // that the command costs what it removes (a store of a million expired entries does not
        // stall one call). Removing one may make a key of the command new (an expired entry it
        // would have overwritten), which the next count sees; each round removes at least one.
        let mut over = self.overflow(bound, writes);
        while over > 0 && self.purge_expired(over, now) > 0 {
            over = self.overflow(bound, writes);
        }
        if over == 0 {
            return Ok(());
        }
        if bound.eviction == Eviction::VolatileTtl {
            // Every entry left in the index is live. Count them all before evicting one, so that
            // a refused call evicts nothing.
            let victims = self.expiry.earliest(over, |key| writes.contains(key));
            if victims.len() == over {
                for victim in victims {
                    self.evict(victim);
                }
                return Ok(());
            }
        }
        Err(KvError::Full {
            key: self.first_new(writes).to_owned(),
            max_entries: bound.max_entries,
        })
    }

    /// How many entries the map would hold past its bound after the command's writes.
    fn overflow(&self, bound: Bound, writes: &Writes<'_>) -> usize {
        let (mut added, mut removed) = (0_usize, 0_usize);
        for (key, after) in &writes.keys {
            let held = self.map.contains_key(key);
            match after {
                After::Held if !held => added += 1,
                After::Gone if held => removed += 1,
                _ => {}
            }
        }
        (self.map.len() + added).saturating_sub(bound.max_entries.saturating_add(removed))
    }

    /// The first key the command would add, for [`KvError::Full`]. There is one whenever the map
    /// would overflow, since it never holds more than its bound between commands.
    fn first_new<'a>(&self, writes: &Writes<'a>) -> &'a str {
        writes
            .keys
            .iter()
            .find(|(key, after)| *after == After::Held && !self.map.contains_key(key))
            .map_or("", |(key, _)| key)
    }

    /// Removes a live entry to make room, counts it and tells watchers.
    fn evict(&mut self, victim: (Instant, String)) {
        self.expiry.remove_entry(&victim);
        let (_, key) = victim;
        self.map.remove(&key);
        self.counters.evictions += 1;
        self.changes.evicted(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bounded(max_entries: usize) -> Store {
        let mut store = Store::default();
        store.bound = Some(Bound {
            max_entries,
            eviction: Eviction::Refuse,
        });
        store
    }

    #[test]
    fn an_mset_of_many_keys_counts_each_new_key_once() {
        let t0 = Instant::now();
        let mut store = bounded(20);
        for i in 0..18 {
            store.set(format!("k{i}"), json!(i), None, t0).unwrap();
        }
        // More keys than a linear search is used for: the held ones again, and "new" twice.
        let mut entries: Vec<(String, serde_json::Value)> =
            (0..18).map(|i| (format!("k{i}"), json!(0))).collect();
        entries.push(("new".into(), json!(1)));
        entries.push(("new".into(), json!(2)));
        store.mset(entries.clone(), None, t0).unwrap();
        assert_eq!(store.map.len(), 19);

        entries.push(("a".into(), json!(3)));
        entries.push(("b".into(), json!(4)));
        let refused = store.mset(entries, None, t0);
        assert!(
            matches!(&refused, Err(KvError::Full { key, max_entries: 20 }) if key == "a"),
            "{refused:?}"
        );
        assert_eq!(store.map.len(), 19);
        assert_eq!(store.get("k0", t0).as_deref(), Some(&json!(0)));
    }
}
