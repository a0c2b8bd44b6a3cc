//! One test module per numbered rule of the core store (issue 2), each able to fail if its rule
//! breaks. TTL tests run on tokio's paused clock: time moves only when a test moves it.

use std::collections::HashMap;
use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;

use ephemeral_kv::{KvError, KvHandle, Stats};
use futures::FutureExt;
use serde_json::{json, Value};

const SEC: Duration = Duration::from_secs(1);

/// A store whose expired entries stay in memory until touched or purged, so tests can tell
/// "removed" from "invisible".
fn lazy_store() -> KvHandle {
    KvHandle::builder().active_expiry(false).spawn()
}

async fn stats(kv: &KvHandle) -> (usize, usize) {
    let Stats {
        entries, expiring, ..
    } = kv.stats().await.unwrap();
    (entries, expiring)
}

/// Rule 1: an expired key is invisible to every command.
mod rule_01_expired_keys_are_invisible {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn get_get_as_and_mget_do_not_return_an_expired_key() {
        let kv = lazy_store();
        kv.set("k", 7).ttl(SEC).await.unwrap();
        assert_eq!(kv.get_as::<u32>("k").await.unwrap(), Some(7));
        tokio::time::advance(SEC).await; // expired exactly at its deadline
        assert_eq!(kv.mget(["k"]).await.unwrap(), vec![None]);
        assert_eq!(kv.get_as::<u32>("k").await.unwrap(), None);
        assert_eq!(kv.get("k").await.unwrap(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn an_access_removes_the_expired_entry() {
        let kv = lazy_store();
        kv.set("k", 7).ttl(SEC).await.unwrap();
        tokio::time::advance(2 * SEC).await;
        assert_eq!(stats(&kv).await, (1, 1));
        assert_eq!(kv.get("k").await.unwrap(), None);
        assert_eq!(stats(&kv).await, (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn list_append_unique_does_not_append_to_an_expired_list() {
        let kv = lazy_store();
        kv.list_append_unique("l", [json!({"id": 1})])
            .ttl(SEC)
            .await
            .unwrap();
        tokio::time::advance(SEC).await;
        let list = kv
            .list_append_unique("l", [json!({"id": 2})])
            .await
            .unwrap();
        assert_eq!(list, vec![json!({"id": 2})]);
    }

    #[tokio::test(start_paused = true)]
    async fn list_pop_all_does_not_return_an_expired_list() {
        let kv = lazy_store();
        kv.set("l", json!([1, 2])).ttl(SEC).await.unwrap();
        tokio::time::advance(SEC).await;
        assert_eq!(kv.list_pop_all("l").await.unwrap(), Vec::<Value>::new());
    }

    #[tokio::test(start_paused = true)]
    async fn expire_does_not_revive_an_expired_key() {
        let kv = lazy_store();
        kv.set("k", 1).ttl(SEC).await.unwrap();
        tokio::time::advance(SEC).await;
        assert!(!kv.expire("k", 100 * SEC).await.unwrap());
        assert_eq!(kv.get("k").await.unwrap(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_is_live_until_its_deadline() {
        let kv = lazy_store();
        kv.set("k", 1).ttl(SEC).await.unwrap();
        tokio::time::advance(SEC - Duration::from_nanos(1)).await;
        assert_eq!(kv.get("k").await.unwrap().as_deref(), Some(&json!(1)));
    }
}

/// Rule 2: writing without `.ttl(..)` stores a value that never expires, replacing an earlier TTL.
mod rule_02_no_ttl_means_no_expiry {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn set_without_ttl_clears_the_old_ttl() {
        let kv = lazy_store();
        kv.set("k", 1).ttl(SEC).await.unwrap();
        kv.set("k", 2).await.unwrap();
        tokio::time::advance(10 * SEC).await;
        assert_eq!(kv.get("k").await.unwrap().as_deref(), Some(&json!(2)));
        assert_eq!(stats(&kv).await, (1, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn set_with_a_new_ttl_replaces_the_old_one() {
        let kv = lazy_store();
        kv.set("k", 1).ttl(SEC).await.unwrap();
        kv.set("k", 2).ttl(5 * SEC).await.unwrap();
        tokio::time::advance(2 * SEC).await;
        assert_eq!(kv.purge_expired().await.unwrap(), 0);
        assert_eq!(kv.get("k").await.unwrap().as_deref(), Some(&json!(2)));
        tokio::time::advance(3 * SEC).await;
        assert_eq!(kv.get("k").await.unwrap(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn mset_without_ttl_clears_the_old_ttl() {
        let kv = lazy_store();
        kv.set("k", 1).ttl(SEC).await.unwrap();
        kv.mset([("k", 2)]).await.unwrap();
        tokio::time::advance(10 * SEC).await;
        assert_eq!(kv.get("k").await.unwrap().as_deref(), Some(&json!(2)));
    }

    #[tokio::test(start_paused = true)]
    async fn list_append_unique_without_ttl_clears_the_old_ttl() {
        let kv = lazy_store();
        kv.list_append_unique("l", [json!({"id": 1})])
            .ttl(SEC)
            .await
            .unwrap();
        kv.list_append_unique("l", [json!({"id": 2})])
            .await
            .unwrap();
        tokio::time::advance(10 * SEC).await;
        assert_eq!(
            kv.list_pop_all("l").await.unwrap(),
            vec![json!({"id": 1}), json!({"id": 2})]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn list_append_unique_with_ttl_sets_the_ttl_even_when_nothing_is_added() {
        let kv = lazy_store();
        kv.list_append_unique("l", [json!({"id": 1})])
            .await
            .unwrap();
        kv.list_append_unique("l", [json!({"id": 1})])
            .ttl(SEC)
            .await
            .unwrap();
        tokio::time::advance(SEC).await;
        assert_eq!(kv.get("l").await.unwrap(), None);
    }
}

/// Rule 3: a zero TTL is an error and changes nothing; a huge TTL never panics and never expires.
mod rule_03_ttl_bounds {
    use super::*;

    fn is_invalid_ttl(err: KvError, key: &str) -> bool {
        matches!(err, KvError::InvalidTtl { key: k, ttl } if k == key && ttl.is_zero())
    }

    #[tokio::test(start_paused = true)]
    async fn zero_ttl_is_refused_everywhere_and_changes_nothing() {
        let kv = lazy_store();
        kv.set("k", "old").ttl(5 * SEC).await.unwrap();
        kv.list_append_unique("l", [json!({"id": 1})])
            .await
            .unwrap();

        let err = kv.set("k", "new").ttl(Duration::ZERO).await.unwrap_err();
        assert!(is_invalid_ttl(err, "k"));
        let err = kv.mset([("k", "new"), ("m", "new")]).ttl(Duration::ZERO);
        assert!(is_invalid_ttl(err.await.unwrap_err(), "k"));
        let err = kv
            .list_append_unique("l", [json!({"id": 2})])
            .ttl(Duration::ZERO)
            .await
            .unwrap_err();
        assert!(is_invalid_ttl(err, "l"));
        let err = kv.expire("k", Duration::ZERO).await.unwrap_err();
        assert!(is_invalid_ttl(err, "k"));

        assert_eq!(
            kv.mget(["k", "m", "l"]).await.unwrap(),
            vec![
                Some(Arc::new(json!("old"))),
                None,
                Some(Arc::new(json!([{"id": 1}])))
            ]
        );
        // "k" kept its 5 s TTL through the refused `expire`.
        tokio::time::advance(5 * SEC).await;
        assert_eq!(kv.get("k").await.unwrap(), None);
    }

    #[test]
    fn zero_ttl_error_message_names_the_key() {
        let err = KvError::InvalidTtl {
            key: "app:k".into(),
            ttl: Duration::ZERO,
        };
        assert_eq!(
            err.to_string(),
            "TTL for key `app:k` must be greater than zero, got 0ns"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_ttl_too_large_to_represent_means_never_expires() {
        let kv = lazy_store();
        kv.set("a", 1).ttl(Duration::MAX).await.unwrap();
        kv.mset([("b", 2)]).ttl(Duration::MAX).await.unwrap();
        kv.list_append_unique("c", [json!({"id": 3})])
            .ttl(Duration::MAX)
            .await
            .unwrap();
        kv.set("d", 4).ttl(SEC).await.unwrap();
        assert!(kv.expire("d", Duration::MAX).await.unwrap());
        tokio::time::advance(Duration::from_secs(10 * 365 * 24 * 3600)).await;
        assert_eq!(
            kv.mget(["a", "b", "d"]).await.unwrap(),
            vec![
                Some(Arc::new(json!(1))),
                Some(Arc::new(json!(2))),
                Some(Arc::new(json!(4)))
            ]
        );
        assert_eq!(
            kv.get("c").await.unwrap().as_deref(),
            Some(&json!([{"id": 3}]))
        );
        assert_eq!(stats(&kv).await, (4, 0));
    }
}

/// Rule 4: `list_append_unique`.
mod rule_04_list_append_unique {
    use super::*;

    #[tokio::test]
    async fn appends_only_new_ids_and_returns_the_whole_list() {
        let kv = KvHandle::spawn();
        kv.list_append_unique("l", [json!({"id": 1, "v": "a"})])
            .await
            .unwrap();
        let list = kv
            .list_append_unique(
                "l",
                [
                    json!({"id": 1, "v": "dup of stored"}),
                    json!({"id": 2, "v": "b"}),
                    json!({"id": 2, "v": "dup in call"}),
                    json!({"id": "2", "v": "string id differs"}),
                ],
            )
            .await
            .unwrap();
        assert_eq!(
            list,
            vec![
                json!({"id": 1, "v": "a"}),
                json!({"id": 2, "v": "b"}),
                json!({"id": "2", "v": "string id differs"}),
            ]
        );
    }

    #[tokio::test]
    async fn custom_id_key() {
        let kv = KvHandle::spawn();
        let list = kv
            .list_append_unique(
                "tasks",
                [
                    json!({"task_id": 42, "id": 1}),
                    json!({"task_id": 43, "id": 1}),
                    json!({"task_id": 42, "id": 2}),
                ],
            )
            .id_key("task_id")
            .await
            .unwrap();
        assert_eq!(
            list,
            vec![
                json!({"task_id": 42, "id": 1}),
                json!({"task_id": 43, "id": 1})
            ]
        );
    }

    #[tokio::test]
    async fn a_non_object_item_is_refused_and_nothing_is_appended() {
        let kv = KvHandle::spawn();
        kv.list_append_unique("l", [json!({"id": 1})])
            .await
            .unwrap();
        let err = kv
            .list_append_unique("l", [json!({"id": 2}), json!("not an object")])
            .await
            .unwrap_err();
        assert!(
            matches!(&err, KvError::InvalidItem { key, index: 1, .. } if key == "l"),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "item 1 for key `l` is invalid: it is a string, not a JSON object"
        );
        assert_eq!(
            kv.get("l").await.unwrap().as_deref(),
            Some(&json!([{"id": 1}]))
        );
    }

    #[tokio::test]
    async fn an_item_without_the_id_field_is_refused_and_nothing_is_appended() {
        let kv = KvHandle::spawn();
        let err = kv
            .list_append_unique("l", [json!({"id": 1}), json!({"name": "no id"})])
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "item 1 for key `l` is invalid: it has no `id` field (to use another field as the \
             id, call `.id_key(\"field\")`)"
        );
        assert_eq!(kv.get("l").await.unwrap(), None);
    }

    #[tokio::test]
    async fn an_existing_non_list_value_is_an_error_and_is_kept() {
        let kv = KvHandle::spawn();
        kv.set("k", json!({"id": 1})).await.unwrap();
        let err = kv
            .list_append_unique("k", [json!({"id": 2})])
            .await
            .unwrap_err();
        assert!(matches!(
            &err,
            KvError::WrongType { key, expected: "a list", found: "an object" } if key == "k"
        ));
        assert_eq!(
            kv.get("k").await.unwrap().as_deref(),
            Some(&json!({"id": 1}))
        );
    }

    #[tokio::test]
    async fn a_missing_key_starts_a_new_list_even_an_empty_one() {
        let kv = KvHandle::spawn();
        let list = kv
            .list_append_unique("l", Vec::<Value>::new())
            .await
            .unwrap();
        assert_eq!(list, Vec::<Value>::new());
        assert_eq!(kv.get("l").await.unwrap().as_deref(), Some(&json!([])));
    }

    #[tokio::test]
    async fn existing_elements_without_an_id_stay_and_never_match() {
        let kv = KvHandle::spawn();
        kv.set("l", json!(["text", {"name": "no id"}, {"id": null}]))
            .await
            .unwrap();
        let list = kv
            .list_append_unique("l", [json!({"id": 1}), json!({"id": null, "x": 1})])
            .await
            .unwrap();
        assert_eq!(
            list,
            vec![
                json!("text"),
                json!({"name": "no id"}),
                json!({"id": null}),
                json!({"id": 1})
            ]
        );
    }

    #[tokio::test]
    async fn typed_items_are_serialized() {
        #[derive(serde::Serialize)]
        struct Task {
            id: u32,
            desc: &'static str,
        }
        let kv = KvHandle::spawn();
        let list = kv
            .list_append_unique("t", vec![Task { id: 1, desc: "a" }])
            .await
            .unwrap();
        assert_eq!(list, vec![json!({"id": 1, "desc": "a"})]);
    }
}

/// Rule 5: `list_pop_all`.
mod rule_05_list_pop_all {
    use super::*;

    #[tokio::test]
    async fn pops_everything_and_removes_the_key() {
        let kv = KvHandle::spawn();
        kv.list_append_unique("l", [json!({"id": 1}), json!({"id": 2})])
            .await
            .unwrap();
        assert_eq!(
            kv.list_pop_all("l").await.unwrap(),
            vec![json!({"id": 1}), json!({"id": 2})]
        );
        assert_eq!(kv.get("l").await.unwrap(), None);
        assert_eq!(kv.list_pop_all("l").await.unwrap(), Vec::<Value>::new());
    }

    #[tokio::test]
    async fn a_non_list_value_gives_empty_and_is_left_untouched() {
        let kv = KvHandle::spawn();
        kv.set("s", "a string").await.unwrap();
        assert_eq!(kv.list_pop_all("s").await.unwrap(), Vec::<Value>::new());
        assert_eq!(
            kv.get("s").await.unwrap().as_deref(),
            Some(&json!("a string"))
        );
    }

    #[tokio::test]
    async fn a_list_stored_with_set_counts() {
        let kv = KvHandle::spawn();
        kv.set("l", vec![1, 2, 3]).await.unwrap();
        assert_eq!(
            kv.list_pop_all("l").await.unwrap(),
            vec![json!(1), json!(2), json!(3)]
        );
    }
}

/// Rule 6: `mset` is all-or-nothing and the last of duplicate keys wins.
mod rule_06_mset {
    use super::*;

    /// A value that serde_json cannot serialize: a map whose keys are not strings.
    fn unserializable() -> HashMap<(u8, u8), u8> {
        HashMap::from([((1, 2), 3)])
    }

    #[tokio::test]
    async fn a_value_that_fails_to_serialize_writes_nothing() {
        let kv = KvHandle::spawn();
        let first: HashMap<(u8, u8), u8> = HashMap::new();
        let err = kv
            .mset([("a", first), ("b", unserializable())])
            .await
            .unwrap_err();
        assert!(matches!(&err, KvError::Serialize { key, .. } if key == "b"));
        assert_eq!(kv.mget(["a", "b"]).await.unwrap(), vec![None, None]);
        assert_eq!(kv.stats().await.unwrap().entries, 0);
    }

    #[tokio::test]
    async fn set_of_an_unserializable_value_is_an_error() {
        let kv = KvHandle::spawn();
        kv.set("k", 1).await.unwrap();
        let err = kv.set("k", unserializable()).await.unwrap_err();
        assert!(matches!(&err, KvError::Serialize { key, .. } if key == "k"));
        assert!(err
            .to_string()
            .starts_with("value for key `k` cannot be serialized to JSON: "));
        assert_eq!(kv.get("k").await.unwrap().as_deref(), Some(&json!(1)));
    }

    #[tokio::test]
    async fn last_duplicate_wins() {
        let kv = KvHandle::spawn();
        kv.mset([("k", 1), ("j", 2), ("k", 3)]).await.unwrap();
        assert_eq!(
            kv.mget(["k", "j"]).await.unwrap(),
            vec![Some(Arc::new(json!(3))), Some(Arc::new(json!(2)))]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_ttl_applies_to_every_key() {
        let kv = lazy_store();
        kv.mset([("a", 1), ("b", 2)]).ttl(SEC).await.unwrap();
        assert_eq!(stats(&kv).await, (2, 2));
        tokio::time::advance(SEC).await;
        assert_eq!(kv.mget(["a", "b"]).await.unwrap(), vec![None, None]);
    }

    #[tokio::test]
    async fn accepts_a_hash_map() {
        let kv = KvHandle::spawn();
        let map: HashMap<String, Value> = HashMap::from([("x".into(), json!({"n": 1}))]);
        kv.mset(map).await.unwrap();
        assert_eq!(
            kv.get("x").await.unwrap().as_deref(),
            Some(&json!({"n": 1}))
        );
    }
}

/// Rule 7: `mget` keeps input order and duplicates.
mod rule_07_mget {
    use super::*;

    #[tokio::test]
    async fn keeps_order_and_duplicates_with_none_for_missing() {
        let kv = KvHandle::spawn();
        kv.mset([("a", 1), ("b", 2)]).await.unwrap();
        let keys = vec![
            "b".to_string(),
            "x".to_string(),
            "a".to_string(),
            "b".to_string(),
        ];
        let expected = vec![Some(json!(2)), None, Some(json!(1)), Some(json!(2))];
        let expected: Vec<_> = expected.into_iter().map(|v| v.map(Arc::new)).collect();
        assert_eq!(kv.mget(&keys).await.unwrap(), expected);
        assert_eq!(kv.mget(keys).await.unwrap(), expected);
        assert_eq!(kv.mget(Vec::<String>::new()).await.unwrap(), vec![]);
    }
}

/// Rule 8: `expire` tells whether a live key got its new TTL.
mod rule_08_expire {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn sets_a_new_ttl_on_a_live_key() {
        let kv = lazy_store();
        kv.set("k", 1).await.unwrap();
        assert!(kv.expire("k", 2 * SEC).await.unwrap());
        tokio::time::advance(SEC).await;
        assert_eq!(kv.get("k").await.unwrap().as_deref(), Some(&json!(1)));
        assert!(kv.expire("k", 2 * SEC).await.unwrap()); // counted from now: until t = 3 s
        tokio::time::advance(SEC).await;
        assert_eq!(kv.get("k").await.unwrap().as_deref(), Some(&json!(1)));
        tokio::time::advance(SEC).await;
        assert_eq!(kv.get("k").await.unwrap(), None);
    }

    #[tokio::test]
    async fn false_for_a_missing_key_which_stays_missing() {
        let kv = KvHandle::spawn();
        assert!(!kv.expire("nope", SEC).await.unwrap());
        assert_eq!(kv.stats().await.unwrap().entries, 0);
    }
}

/// Rule 9: `purge_expired` removes up to `limit` expired entries store-wide.
mod rule_09_purge_expired {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn removes_up_to_limit_across_prefixes_and_only_expired_ones() {
        let kv = lazy_store();
        let a = kv.with_prefix("a:");
        let b = kv.with_prefix("b:");
        for i in 0..3 {
            a.set(format!("{i}"), i).ttl(SEC).await.unwrap();
            b.set(format!("{i}"), i).ttl(SEC).await.unwrap();
        }
        kv.set("forever", 0).await.unwrap();
        kv.set("later", 0).ttl(10 * SEC).await.unwrap();
        tokio::time::advance(SEC).await;

        assert_eq!(a.purge_expired().limit(4).await.unwrap(), 4);
        assert_eq!(stats(&kv).await, (4, 3));
        assert_eq!(b.purge_expired().limit(0).await.unwrap(), 0);
        assert_eq!(kv.purge_expired().await.unwrap(), 2);
        assert_eq!(kv.purge_expired().await.unwrap(), 0);
        assert_eq!(stats(&kv).await, (2, 1));
        assert_eq!(
            kv.mget(["forever", "later"]).await.unwrap(),
            vec![Some(Arc::new(json!(0))), Some(Arc::new(json!(0)))]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn default_limit_is_1000() {
        let kv = lazy_store();
        let entries: Vec<(String, u32)> = (0..1500).map(|i| (format!("k{i}"), i)).collect();
        kv.mset(entries).ttl(SEC).await.unwrap();
        tokio::time::advance(SEC).await;
        assert_eq!(kv.purge_expired().await.unwrap(), 1000);
        assert_eq!(kv.purge_expired().await.unwrap(), 500);
    }
}

/// Rule 10: active expiry removes entries on its own; without it they wait for access or purge.
mod rule_10_active_expiry {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn on_by_default_removes_expired_entries_without_any_access() {
        let kv = KvHandle::spawn();
        kv.set("a", 1).ttl(SEC).await.unwrap();
        kv.set("b", 1).ttl(3 * SEC).await.unwrap();
        kv.set("c", 1).await.unwrap();
        // Sleeping on the paused clock lets the owner task's timer fire at each deadline.
        tokio::time::sleep(2 * SEC).await;
        assert_eq!(stats(&kv).await, (2, 1));
        tokio::time::sleep(2 * SEC).await;
        assert_eq!(stats(&kv).await, (1, 0));
        assert_eq!(kv.purge_expired().await.unwrap(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_mass_expiry_is_removed_in_slices_without_losing_any() {
        let kv = KvHandle::spawn();
        let entries: Vec<(String, u32)> = (0..2000).map(|i| (format!("k{i}"), i)).collect();
        kv.mset(entries).ttl(SEC).await.unwrap();
        tokio::time::sleep(2 * SEC).await;
        // Let the owner task finish its slices.
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        assert_eq!(stats(&kv).await, (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn rearms_for_a_new_earlier_deadline() {
        let kv = KvHandle::spawn();
        kv.set("late", 1).ttl(10 * SEC).await.unwrap();
        kv.set("early", 1).ttl(SEC).await.unwrap();
        tokio::time::sleep(2 * SEC).await;
        assert_eq!(stats(&kv).await, (1, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn off_leaves_expired_entries_until_touched_or_purged() {
        let kv = lazy_store();
        kv.set("a", 1).ttl(SEC).await.unwrap();
        kv.set("b", 1).ttl(SEC).await.unwrap();
        tokio::time::sleep(5 * SEC).await;
        assert_eq!(stats(&kv).await, (2, 2));
        assert_eq!(kv.get("a").await.unwrap(), None);
        assert_eq!(kv.purge_expired().await.unwrap(), 1);
        assert_eq!(stats(&kv).await, (0, 0));
    }
}

/// Rule 11: shutdown answers what was queued before it, then every call returns `Closed`.
mod rule_11_shutdown {
    use super::*;

    #[tokio::test]
    async fn answers_earlier_commands_then_closes_every_handle() {
        let kv = KvHandle::spawn();
        let other = kv.with_prefix("p:");
        let (set, (), get) = tokio::join!(kv.set("a", 1), kv.shutdown(), other.get("a"));
        assert!(matches!(set, Ok(())));
        assert!(matches!(get, Err(KvError::Closed)));
        assert!(kv.is_closed() && other.is_closed());
        assert!(matches!(kv.get("a").await, Err(KvError::Closed)));
        assert!(matches!(other.set("a", 1).await, Err(KvError::Closed)));
        assert!(matches!(kv.purge_expired().await, Err(KvError::Closed)));
        assert!(matches!(kv.list_pop_all("a").await, Err(KvError::Closed)));
        assert_eq!(KvError::Closed.to_string(), "the store is closed");
        kv.shutdown().await; // a second shutdown returns at once
    }

    #[tokio::test]
    async fn dropping_every_handle_stops_the_owner_task() {
        let metrics = tokio::runtime::Handle::current().metrics();
        let before = metrics.num_alive_tasks();
        let kv = KvHandle::spawn();
        kv.set("a", 1).await.unwrap();
        let clone = kv.with_prefix("p:");
        drop(kv);
        assert_eq!(metrics.num_alive_tasks(), before + 1);
        // The store still serves through the prefixed clone (its key is "p:a").
        assert_eq!(clone.get("a").await.unwrap(), None);
        drop(clone);
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(metrics.num_alive_tasks(), before);
    }
}

/// Rule 12: dropping a call's future never harms the store.
mod rule_12_cancellation {
    use super::*;

    #[tokio::test]
    async fn a_command_that_was_sent_is_applied_even_if_its_caller_left() {
        let kv = KvHandle::spawn();
        // One poll sends the command (the mailbox has room), then the future is dropped.
        assert!(kv.set("k", 1).into_future().now_or_never().is_none());
        assert!(kv
            .list_append_unique("l", [json!({"id": 1})])
            .into_future()
            .now_or_never()
            .is_none());
        assert_eq!(kv.get("k").await.unwrap().as_deref(), Some(&json!(1)));
        assert_eq!(
            kv.get("l").await.unwrap().as_deref(),
            Some(&json!([{"id": 1}]))
        );
    }

    #[tokio::test]
    async fn a_future_dropped_before_polling_sends_nothing() {
        let kv = KvHandle::spawn();
        drop(kv.set("k", 1).into_future());
        assert_eq!(kv.get("k").await.unwrap(), None);
    }
}

/// Rule 13: `KvError` is a proper error type.
mod rule_13_errors {
    use super::*;

    fn assert_error<E: std::error::Error + Send + Sync + 'static>() {}
    fn assert_handle<H: Clone + Send + Sync + std::fmt::Debug + 'static>() {}

    #[test]
    fn error_and_handle_have_the_promised_traits() {
        assert_error::<KvError>();
        assert_handle::<KvHandle>();
    }

    #[tokio::test]
    async fn deserialize_errors_name_the_key_and_keep_the_value() {
        let kv = KvHandle::builder().prefix("app:").spawn();
        kv.set("k", "text").await.unwrap();
        let err = kv.get_as::<u64>("k").await.unwrap_err();
        assert!(matches!(&err, KvError::Deserialize { key, .. } if key == "app:k"));
        assert!(std::error::Error::source(&err).is_some());
        assert_eq!(kv.get("k").await.unwrap().as_deref(), Some(&json!("text")));
    }

    #[tokio::test]
    async fn wrong_type_names_the_full_key() {
        let kv = KvHandle::builder().prefix("app:").spawn();
        kv.set("k", 5).await.unwrap();
        let err = kv
            .list_append_unique("k", [json!({"id": 1})])
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "key `app:k` holds a number, but this call needs a list"
        );
    }

    #[tokio::test]
    async fn handle_debug_shows_prefix_and_state() {
        let kv = KvHandle::builder().prefix("app:").spawn();
        assert_eq!(
            format!("{kv:?}"),
            r#"KvHandle { prefix: "app:", closed: false }"#
        );
    }
}

// Rule 14 (tracing) is tested in `tests/tracing.rs`, alone in its binary: tracing's scoped
// subscriber races with tests running on other threads.
