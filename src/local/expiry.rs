//! The expiry index: every key that has a deadline, in deadline order.
//!
//! Why an index and not a scan of the map: `purge_expired` and active expiry must cost what they
//! remove, not what the store holds. A store with a million live keys and ten expired ones should
//! find those ten by looking at ten entries. The index is a `BTreeSet` ordered by
//! `(deadline, key)`, so the expired keys are always a prefix of it.
//!
//! The index holds exactly the keys of the map whose entry has a deadline, with that deadline.
//! [`Store`](super::store::Store) keeps that invariant by changing the index only through
//! [`ExpiryIndex::reschedule`], which takes the old `(deadline, key)` pair out before the new one
//! goes in.

use std::collections::BTreeSet;

use tokio::time::Instant;

/// Keys with a deadline, ordered by deadline.
#[derive(Debug, Default)]
pub(crate) struct ExpiryIndex {
    by_deadline: BTreeSet<(Instant, String)>,
}

impl ExpiryIndex {
    /// Moves `key` from deadline `old` to deadline `new`, where `None` means "has none, so is not
    /// in the index". The one way the store changes the index for a key it writes, re-times or
    /// removes: the old pair always leaves before the new one goes in, so a stale
    /// `(deadline, key)` pair can never expire a fresh value.
    pub(crate) fn reschedule(&mut self, key: &str, old: Option<Instant>, new: Option<Instant>) {
        if old == new {
            return;
        }
        // `BTreeSet<(Instant, String)>` can only be searched with an owned tuple; that probe's
        // allocation is paid only for a key that had a deadline, and the stored key is then
        // reused for the new deadline.
        let stored = old.and_then(|old| self.by_deadline.take(&(old, key.to_owned())));
        if let Some(new) = new {
            let key = stored.map_or_else(|| key.to_owned(), |(_, key)| key);
            self.by_deadline.insert((new, key));
        }
    }

    /// Removes and returns the keys whose deadline is at or before `now`, earliest first, at most
    /// `limit` of them. Costs `O(removed · log n)`.
    pub(crate) fn pop_expired(&mut self, now: Instant, limit: usize) -> Vec<String> {
        let mut keys = Vec::new();
        while keys.len() < limit {
            match self.by_deadline.first() {
                Some((deadline, _)) if *deadline <= now => {}
                _ => break,
            }
            if let Some((_, key)) = self.by_deadline.pop_first() {
                keys.push(key);
            }
        }
        keys
    }

    /// The first `count` entries in deadline order whose key `skip` does not name, earliest
    /// first: the keys a bounded store evicts to make room (Redis `volatile-ttl`). Costs what it
    /// returns and skips, not the size of the index.
    pub(crate) fn earliest(
        &self,
        count: usize,
        skip: impl Fn(&str) -> bool,
    ) -> Vec<(Instant, String)> {
        self.by_deadline
            .iter()
            .filter(|(_, key)| !skip(key))
            .take(count)
            .cloned()
            .collect()
    }

    /// Forgets an entry that [`earliest`](ExpiryIndex::earliest) returned (no key copied).
    pub(crate) fn remove_entry(&mut self, entry: &(Instant, String)) {
        self.by_deadline.remove(entry);
    }

    /// The earliest deadline, if any key has one.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.by_deadline.first().map(|(deadline, _)| *deadline)
    }

    /// How many keys have a deadline.
    pub(crate) fn len(&self) -> usize {
        self.by_deadline.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn pops_only_expired_keys_in_deadline_order_up_to_limit() {
        let t0 = Instant::now();
        let mut index = ExpiryIndex::default();
        index.reschedule("c", None, Some(t0 + Duration::from_secs(3)));
        index.reschedule("a", None, Some(t0 + Duration::from_secs(1)));
        index.reschedule("b", None, Some(t0 + Duration::from_secs(2)));
        index.reschedule("z", None, Some(t0 + Duration::from_secs(9)));

        assert_eq!(index.next_deadline(), Some(t0 + Duration::from_secs(1)));
        let now = t0 + Duration::from_secs(3);
        assert_eq!(index.pop_expired(now, 2), vec!["a", "b"]);
        assert_eq!(index.pop_expired(now, 10), vec!["c"]);
        assert_eq!(index.pop_expired(now, 10), Vec::<String>::new());
        assert_eq!(index.len(), 1);
        index.reschedule("y", None, Some(t0 + Duration::from_secs(5)));
        index.reschedule("x", None, Some(t0 + Duration::from_secs(7)));
        let first = index.earliest(2, |key| key == "y");
        assert_eq!(
            first,
            vec![
                (t0 + Duration::from_secs(7), "x".to_owned()),
                (t0 + Duration::from_secs(9), "z".to_owned())
            ]
        );
        index.remove_entry(&first[0]);
        index.reschedule("y", Some(t0 + Duration::from_secs(5)), None);
        assert_eq!(index.len(), 1);
        index.reschedule("z", Some(t0 + Duration::from_secs(9)), None);
        assert_eq!(index.len(), 0);
        assert_eq!(index.next_deadline(), None);
    }
}
