//! The expiry index: every key that has a deadline, in deadline order.
//!
//! Why an index and not a scan of the map: `purge_expired` and active expiry must cost what they
//! remove, not what the store holds. A store with a million live keys and ten expired ones should
//! find those ten by looking at ten entries. The index is a `BTreeSet` ordered by
//! `(deadline, key)`, so the expired keys are always a prefix of it.
//!
//! The index holds exactly the keys of the map whose entry has a deadline, with that deadline.
//! [`Store`](super::store::Store) keeps that invariant: whenever it changes or removes an entry's
//! deadline, it removes the old `(deadline, key)` pair here first.

use std::collections::BTreeSet;

use tokio::time::Instant;

/// Keys with a deadline, ordered by deadline.
#[derive(Debug, Default)]
pub(crate) struct ExpiryIndex {
    by_deadline: BTreeSet<(Instant, String)>,
}

impl ExpiryIndex {
    /// Records that `key` expires at `deadline`.
    pub(crate) fn insert(&mut self, deadline: Instant, key: String) {
        self.by_deadline.insert((deadline, key));
    }

    /// Forgets that `key` expires at `deadline`.
    pub(crate) fn remove(&mut self, deadline: Instant, key: &str) {
        // `BTreeSet<(Instant, String)>` can only be searched with an owned tuple; the allocation is
        // paid only when a key that had a TTL is overwritten or deleted.
        self.by_deadline.remove(&(deadline, key.to_owned()));
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
        index.insert(t0 + Duration::from_secs(3), "c".into());
        index.insert(t0 + Duration::from_secs(1), "a".into());
        index.insert(t0 + Duration::from_secs(2), "b".into());
        index.insert(t0 + Duration::from_secs(9), "z".into());

        assert_eq!(index.next_deadline(), Some(t0 + Duration::from_secs(1)));
        let now = t0 + Duration::from_secs(3);
        assert_eq!(index.pop_expired(now, 2), vec!["a", "b"]);
        assert_eq!(index.pop_expired(now, 10), vec!["c"]);
        assert_eq!(index.pop_expired(now, 10), Vec::<String>::new());
        assert_eq!(index.len(), 1);
        index.insert(t0 + Duration::from_secs(5), "y".into());
        index.insert(t0 + Duration::from_secs(7), "x".into());
        let first = index.earliest(2, |key| key == "y");
        assert_eq!(
            first,
            vec![
                (t0 + Duration::from_secs(7), "x".to_owned()),
                (t0 + Duration::from_secs(9), "z".to_owned())
            ]
        );
        index.remove_entry(&first[0]);
        index.remove(t0 + Duration::from_secs(5), "y");
        assert_eq!(index.len(), 1);
        index.remove(t0 + Duration::from_secs(9), "z");
        assert_eq!(index.len(), 0);
        assert_eq!(index.next_deadline(), None);
    }
}
