//! The pop that serves a waiting `list_pop_front(..).wait(..)`: it takes the items only if they
//! reach the waiter, so a waiter that gave up takes nothing.

use serde_json::Value;
use tokio::time::Instant;

use super::{as_list, Store};
use crate::command::feed_queue::ListDelta;
use crate::error::KvError;

impl Store {
    /// Takes up to `count` items from the front of the list at `key` and hands them to `deliver`;
    /// if `deliver` gives them back (its caller stopped waiting), they go back where they were
    /// and nothing changed. Answers whether the items were delivered; `Ok(false)` also when the
    /// list is missing or empty.
    pub(crate) fn list_pop_front_to(
        &mut self,
        key: &str,
        count: usize,
        now: Instant,
        deliver: impl FnOnce(Vec<Value>) -> Result<(), Vec<Value>>,
    ) -> Result<bool, KvError> {
        let Some(entry) = self.live_list(key, now)? else {
            return Ok(false);
        };
        if count == 0 || as_list(&entry.value).is_empty() {
            return Ok(false);
        }
        let old_len = as_list(&entry.value).len();
        let taken: Vec<Value> = match std::sync::Arc::make_mut(&mut entry.value) {
            Value::Array(list) => list.drain(..count.min(list.len())).collect(),
            _ => return Ok(false),
        };
        if let Err(taken) = deliver(taken) {
            if let Value::Array(list) = std::sync::Arc::make_mut(&mut entry.value) {
                list.splice(..0, taken);
            }
            return Ok(false);
        }
        entry.drop_ids();
        let left = as_list(&entry.value).len();
        if left == 0 {
            self.remove(key);
        } else {
            let list = std::sync::Arc::clone(&entry.value);
            self.changes
                .list_changed(key, &list, || ListDelta::after(old_len, as_list(&list), 0));
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    #[test]
    fn items_a_waiter_cannot_take_go_back_where_they_were() {
        let t0 = Instant::now();
        let mut store = Store::default();
        let ttl = Some(Duration::from_secs(60));
        store
            .list_push(
                "inbox".into(),
                vec![json!(1), json!(2)],
                usize::MAX,
                ttl,
                t0,
            )
            .unwrap();
        let mut offered = Vec::new();
        let delivered = store.list_pop_front_to("inbox", 1, t0, |items| {
            offered = items.clone();
            Err(items) // the waiter's caller went away
        });
        assert!(!delivered.unwrap());
        assert_eq!(offered, vec![json!(1)]);
        assert_eq!(store.get("inbox", t0).as_deref(), Some(&json!([1, 2])));
        assert_eq!(
            store.ttl("inbox", t0),
            crate::ttl::Ttl::Expires(Duration::from_secs(60))
        );
        // Taken for real this time, the last item removes the key.
        let mut taken = Vec::new();
        let delivered = store.list_pop_front_to("inbox", 5, t0, |items| {
            taken = items;
            Ok(())
        });
        assert!(delivered.unwrap());
        assert_eq!(taken, vec![json!(1), json!(2)]);
        assert_eq!(store.get("inbox", t0), None);
        // An empty or missing list offers nothing.
        let offered = store.list_pop_front_to("inbox", 1, t0, |_| panic!("nothing to offer"));
        assert!(!offered.unwrap());
    }

    #[test]
    fn a_served_pop_frees_a_big_id_index_off_the_owner() {
        let t0 = Instant::now();
        let mut store = Store::default();
        let items: Vec<Value> = (0..super::super::lazyfree::BIG)
            .map(|i| json!({ "id": i }))
            .collect();
        store
            .list_append_unique("inbox".into(), items, "id", None, t0)
            .unwrap();
        let before = super::super::lazyfree::SENT.with(std::cell::Cell::get);
        let delivered = store.list_pop_front_to("inbox", 1, t0, |_| Ok(()));
        assert!(delivered.unwrap());
        let sent = super::super::lazyfree::SENT.with(std::cell::Cell::get);
        assert_eq!(
            sent,
            before + 1,
            "the id index of 64 ids went to the freeing thread"
        );
    }
}
