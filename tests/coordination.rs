//! One test module per rule of the coordination primitives (issue 5), except watch and wait_for
//! (tests/watch_and_wait.rs). TTL tests run on tokio's paused clock.

use std::sync::Arc;
use std::time::Duration;

use ephemeral_kv::{KvError, KvHandle, Ttl};
use serde_json::{json, Value};

const SEC: Duration = Duration::from_secs(1);

/// A store whose expired entries stay in memory until touched or purged, so tests can tell
/// "removed" from "invisible".
fn lazy_store() -> KvHandle {
    KvHandle::builder().active_expiry(false).spawn()
}

mod incr {
    use super::*;

    #[tokio::test]
    async fn a_missing_key_counts_as_zero_and_each_call_returns_the_new_value() {
        let kv = KvHandle::spawn();
        assert_eq!(kv.incr("n", 1).await.unwrap(), 1);
        assert_eq!(kv.incr("n", 10).await.unwrap(), 11);
        assert_eq!(kv.incr("n", -12).await.unwrap(), -1);
        assert_eq!(kv.incr("m", -5).await.unwrap(), -5);
        assert_eq!(kv.get("n").await.unwrap().as_deref(), Some(&json!(-1)));
    }

    #[tokio::test(start_paused = true)]
    async fn the_ttl_is_set_only_when_the_call_creates_the_key() {
        let kv = KvHandle::spawn();
        kv.incr("window", 1).ttl(60 * SEC).await.unwrap();
        tokio::time::advance(20 * SEC).await;
        assert_eq!(kv.incr("window", 1).ttl(60 * SEC).await.unwrap(), 2);
        assert_eq!(kv.ttl("window").await.unwrap(), Ttl::Expires(40 * SEC));

        kv.set("plain", 5).await.unwrap();
        kv.incr("plain", 1).ttl(60 * SEC).await.unwrap();
        assert_eq!(kv.ttl("plain").await.unwrap(), Ttl::NoExpiry);
    }

    #[tokio::test(start_paused = true)]
    async fn an_existing_ttl_is_kept_without_the_option_too() {
        let kv = KvHandle::spawn();
        kv.set("n", 1).ttl(10 * SEC).await.unwrap();
        kv.incr("n", 1).await.unwrap();
        assert_eq!(kv.ttl("n").await.unwrap(), Ttl::Expires(10 * SEC));
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_counter_starts_again_from_zero_with_the_new_ttl() {
        let kv = lazy_store();
        kv.incr("n", 7).ttl(SEC).await.unwrap();
        tokio::time::advance(SEC).await;
        assert_eq!(kv.incr("n", 1).ttl(5 * SEC).await.unwrap(), 1);
        assert_eq!(kv.ttl("n").await.unwrap(), Ttl::Expires(5 * SEC));
    }

    #[tokio::test]
    async fn a_non_integer_is_an_error_naming_the_full_key_and_is_kept() {
        let kv = KvHandle::builder().prefix("app:").spawn();
        for value in [
            json!("7"),
            json!(1.5),
            json!(u64::MAX),
            json!(null),
            json!([1]),
        ] {
            kv.set("n", value.clone()).await.unwrap();
            let err = kv.incr("n", 1).await.unwrap_err();
            assert!(
                matches!(&err, KvError::WrongType { key, expected: "an integer (i64)", .. } if key == "app:n"),
                "{err:?}"
            );
            assert_eq!(kv.get("n").await.unwrap().as_deref(), Some(&value));
        }
        kv.set("n", "seven").await.unwrap();
        assert_eq!(
            kv.incr("n", 1).await.unwrap_err().to_string(),
            "key `app:n` holds a string, but this call needs an integer (i64)"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn past_i64_bounds_is_an_error_and_changes_nothing() {
        let kv = KvHandle::spawn();
        kv.set("big", i64::MAX - 1).ttl(9 * SEC).await.unwrap();
        let err = kv.incr("big", 2).await.unwrap_err();
        assert!(matches!(
            &err,
            KvError::Overflow { key, current, by: 2 } if key == "big" && *current == i64::MAX - 1
        ));
        assert_eq!(
            err.to_string(),
            format!(
                "incrementing key `big` (holding {}) by 2 would overflow an i64",
                i64::MAX - 1
            )
        );
        assert_eq!(
            kv.get("big").await.unwrap().as_deref(),
            Some(&json!(i64::MAX - 1))
        );
        assert_eq!(kv.ttl("big").await.unwrap(), Ttl::Expires(9 * SEC));
        assert_eq!(kv.incr("big", 1).await.unwrap(), i64::MAX);

        kv.set("small", i64::MIN).await.unwrap();
        assert!(matches!(
            kv.incr("small", -1).await,
            Err(KvError::Overflow { .. })
        ));
        assert_eq!(
            kv.get("small").await.unwrap().as_deref(),
            Some(&json!(i64::MIN))
        );
    }

    #[tokio::test]
    async fn a_zero_ttl_is_refused_and_creates_nothing() {
        let kv = KvHandle::spawn();
        let err = kv.incr("n", 1).ttl(Duration::ZERO).await.unwrap_err();
        assert!(matches!(err, KvError::InvalidTtl { key, .. } if key == "n"));
        assert!(!kv.exists("n").await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_increments_are_never_lost() {
        let kv = KvHandle::spawn();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let kv = kv.clone();
                tokio::spawn(async move {
                    for _ in 0..100 {
                        kv.incr("hits", 1).await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(kv.get_as::<i64>("hits").await.unwrap(), Some(800));
    }
}

mod set_if_absent {
    use super::*;

    #[tokio::test]
    async fn stores_only_when_absent_and_says_so() {
        let kv = KvHandle::spawn();
        assert!(kv.set_if_absent("lock", "w1").await.unwrap());
        assert!(!kv.set_if_absent("lock", "w2").await.unwrap());
        assert_eq!(kv.get("lock").await.unwrap().as_deref(), Some(&json!("w1")));
    }

    #[tokio::test(start_paused = true)]
    async fn the_ttl_applies_to_the_stored_key_and_an_expired_key_is_absent() {
        let kv = lazy_store();
        assert!(kv.set_if_absent("lock", "w1").ttl(30 * SEC).await.unwrap());
        assert_eq!(kv.ttl("lock").await.unwrap(), Ttl::Expires(30 * SEC));
        // A refused call leaves the holder's TTL alone.
        assert!(!kv.set_if_absent("lock", "w2").ttl(90 * SEC).await.unwrap());
        assert_eq!(kv.ttl("lock").await.unwrap(), Ttl::Expires(30 * SEC));
        tokio::time::advance(30 * SEC).await;
        assert!(kv.set_if_absent("lock", "w2").await.unwrap());
        assert_eq!(kv.get("lock").await.unwrap().as_deref(), Some(&json!("w2")));
        assert_eq!(kv.ttl("lock").await.unwrap(), Ttl::NoExpiry);
    }

    #[tokio::test]
    async fn bad_input_is_refused_before_anything_is_stored() {
        let kv = KvHandle::spawn();
        let err = kv
            .set_if_absent("k", 1)
            .ttl(Duration::ZERO)
            .await
            .unwrap_err();
        assert!(matches!(err, KvError::InvalidTtl { .. }));
        let unserializable = std::collections::HashMap::from([((1u8, 2u8), 3u8)]);
        let err = kv.set_if_absent("k", unserializable).await.unwrap_err();
        assert!(matches!(err, KvError::Serialize { key, .. } if key == "k"));
        assert!(!kv.exists("k").await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn of_many_racing_workers_exactly_one_wins() {
        let kv = KvHandle::spawn();
        let tasks: Vec<_> = (0..16)
            .map(|worker| {
                let kv = kv.clone();
                tokio::spawn(async move { kv.set_if_absent("lock", worker).await.unwrap() })
            })
            .collect();
        let mut winners = 0;
        for task in tasks {
            winners += usize::from(task.await.unwrap());
        }
        assert_eq!(winners, 1);
    }
}

mod compare_and_set {
    use super::*;

    #[tokio::test]
    async fn swaps_only_when_the_current_value_matches() {
        let kv = KvHandle::spawn();
        assert!(!kv
            .compare_and_set("state", Some(json!("idle")), "busy")
            .await
            .unwrap());
        assert!(!kv.exists("state").await.unwrap());
        assert!(kv.compare_and_set("state", None, "idle").await.unwrap());
        assert!(!kv.compare_and_set("state", None, "other").await.unwrap());
        assert!(kv
            .compare_and_set("state", Some(json!("idle")), "busy")
            .await
            .unwrap());
        assert!(!kv
            .compare_and_set("state", Some(json!("idle")), "busy2")
            .await
            .unwrap());
        assert_eq!(
            kv.get("state").await.unwrap().as_deref(),
            Some(&json!("busy"))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn keeps_the_ttl_unless_given_one() {
        let kv = KvHandle::spawn();
        kv.set("lease", "w1").ttl(10 * SEC).await.unwrap();
        assert!(kv
            .compare_and_set("lease", Some(json!("w1")), "w1b")
            .await
            .unwrap());
        assert_eq!(kv.ttl("lease").await.unwrap(), Ttl::Expires(10 * SEC));
        assert!(kv
            .compare_and_set("lease", Some(json!("w1b")), "w1c")
            .ttl(60 * SEC)
            .await
            .unwrap());
        assert_eq!(kv.ttl("lease").await.unwrap(), Ttl::Expires(60 * SEC));
        // A refused swap changes neither value nor TTL.
        assert!(!kv
            .compare_and_set("lease", Some(json!("nope")), "x")
            .ttl(SEC)
            .await
            .unwrap());
        assert_eq!(kv.ttl("lease").await.unwrap(), Ttl::Expires(60 * SEC));
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_key_matches_none_and_never_its_old_value() {
        let kv = lazy_store();
        kv.set("k", "old").ttl(SEC).await.unwrap();
        tokio::time::advance(SEC).await;
        assert!(!kv
            .compare_and_set("k", Some(json!("old")), "new")
            .await
            .unwrap());
        assert!(kv.compare_and_set("k", None, "fresh").await.unwrap());
        assert_eq!(kv.ttl("k").await.unwrap(), Ttl::NoExpiry);
    }

    #[tokio::test]
    async fn compares_whole_json_values() {
        let kv = KvHandle::spawn();
        kv.set("cfg", json!({"a": 1, "b": [1, 2]})).await.unwrap();
        assert!(!kv
            .compare_and_set("cfg", Some(json!({"a": 1})), 0)
            .await
            .unwrap());
        assert!(kv
            .compare_and_set("cfg", Some(json!({"b": [1, 2], "a": 1})), 0)
            .await
            .unwrap());
    }
}

mod update {
    use super::*;

    #[tokio::test]
    async fn the_closure_sees_the_current_value_and_its_result_is_stored() {
        let kv = KvHandle::spawn();
        let new = kv
            .update("cart", |cur| {
                assert_eq!(cur, None);
                Some(json!(["apple"]))
            })
            .await
            .unwrap();
        assert_eq!(new.as_deref(), Some(&json!(["apple"])));
        let new = kv
            .update("cart", |cur| {
                let mut cart = cur.cloned()?;
                cart.as_array_mut()?.push(json!("pear"));
                Some(cart)
            })
            .await
            .unwrap();
        assert_eq!(new.as_deref(), Some(&json!(["apple", "pear"])));
        assert_eq!(kv.get("cart").await.unwrap(), new);
    }

    #[tokio::test]
    async fn returning_none_deletes_the_key() {
        let kv = KvHandle::spawn();
        kv.set("k", 1).await.unwrap();
        assert_eq!(kv.update("k", |_| None).await.unwrap(), None);
        assert!(!kv.exists("k").await.unwrap());
        assert_eq!(kv.update("missing", |_| None).await.unwrap(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn an_existing_key_keeps_its_ttl_and_a_created_one_gets_none() {
        let kv = lazy_store();
        kv.set("k", 1).ttl(10 * SEC).await.unwrap();
        kv.update("k", |_| Some(json!(2))).await.unwrap();
        assert_eq!(kv.ttl("k").await.unwrap(), Ttl::Expires(10 * SEC));
        tokio::time::advance(10 * SEC).await;
        // Expired: the closure sees nothing, and the new key never expires.
        let seen = kv
            .update("k", |cur| Some(json!(cur.is_some())))
            .await
            .unwrap();
        assert_eq!(seen.as_deref(), Some(&json!(false)));
        assert_eq!(kv.ttl("k").await.unwrap(), Ttl::NoExpiry);
    }

    #[tokio::test]
    async fn a_panicking_closure_is_an_error_the_key_is_unchanged_and_the_owner_keeps_serving() {
        let kv = KvHandle::builder().prefix("app:").spawn();
        kv.set("cart", json!(["apple"])).await.unwrap();
        let err = kv
            .update("cart", |_| panic!("closure bug"))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, KvError::UpdatePanicked { key, message } if key == "app:cart" && message == "closure bug"),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "the update closure for key `app:cart` panicked: closure bug"
        );
        assert_eq!(
            kv.get("cart").await.unwrap().as_deref(),
            Some(&json!(["apple"]))
        );
        let formatted = kv
            .update("cart", |_| panic!("{} bugs", 2))
            .await
            .unwrap_err();
        assert!(
            matches!(formatted, KvError::UpdatePanicked { message, .. } if message == "2 bugs")
        );
        // The owner task is still there and serving.
        kv.set("after", 1).await.unwrap();
        assert_eq!(kv.get("after").await.unwrap().as_deref(), Some(&json!(1)));
        assert!(!kv.is_closed());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_updates_are_never_lost() {
        let kv = KvHandle::spawn();
        let tasks: Vec<_> = (0..8)
            .map(|task| {
                let kv = kv.clone();
                tokio::spawn(async move {
                    for i in 0..25 {
                        kv.update("list", move |cur| {
                            let mut list = cur.cloned().unwrap_or(json!([]));
                            list.as_array_mut()?.push(json!(task * 100 + i));
                            Some(list)
                        })
                        .await
                        .unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let list = kv.get("list").await.unwrap().unwrap();
        assert_eq!(list.as_array().unwrap().len(), 200);
    }
}

mod transaction {
    use super::*;

    #[tokio::test]
    async fn debug_shows_the_prefix_and_staged_writes_not_the_store() {
        let kv = KvHandle::spawn().with_prefix("app:");
        kv.set("secret", "do not print").await.unwrap();
        let shown = kv
            .transaction(|txn| {
                txn.set("a", 1);
                txn.set("b", 2);
                format!("{txn:?}")
            })
            .await
            .unwrap();
        assert_eq!(
            shown,
            r#"Txn { prefix: "app:", staged_writes: 2, aborted: false, .. }"#
        );
    }

    #[tokio::test]
    async fn applies_every_write_and_returns_the_closures_result() {
        let root = KvHandle::spawn();
        let kv = root.with_prefix("app:");
        kv.mset([("a", 10), ("b", 1), ("gone", 0)]).await.unwrap();
        let out = kv
            .transaction(|txn| {
                let a = txn.get("a").and_then(Value::as_i64).unwrap();
                txn.set("a", a - 4);
                txn.set("c", json!({"from": "a"}));
                let deleted = txn.delete("gone");
                (a, deleted, txn.get("c").cloned(), txn.get("gone").cloned())
            })
            .await
            .unwrap();
        assert_eq!(out, (10, true, Some(json!({"from": "a"})), None));
        assert_eq!(
            kv.mget(["a", "b", "c", "gone"]).await.unwrap(),
            vec![
                Some(Arc::new(json!(6))),
                Some(Arc::new(json!(1))),
                Some(Arc::new(json!({"from": "a"}))),
                None
            ]
        );
        // Keys were relative to the handle's prefix.
        assert_eq!(
            root.scan_prefix("").await.unwrap(),
            vec!["app:a", "app:b", "app:c"]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn expire_gives_a_ttl_refuses_zero_and_does_not_create() {
        let kv = KvHandle::spawn();
        kv.set("a", 1).await.unwrap();
        let out = kv
            .transaction(|txn| {
                let zero = txn.expire("a", Duration::ZERO);
                let missing = txn.expire("missing", SEC).unwrap();
                let live = txn.expire("a", 5 * SEC).unwrap();
                (zero, missing, live)
            })
            .await
            .unwrap();
        assert!(matches!(out.0, Err(KvError::InvalidTtl { ref key, .. }) if key == "a"));
        assert_eq!((out.1, out.2), (false, true));
        assert_eq!(kv.ttl("a").await.unwrap(), Ttl::Expires(5 * SEC));
        assert_eq!(kv.ttl("missing").await.unwrap(), Ttl::Missing);
    }

    #[tokio::test]
    async fn a_panicking_closure_applies_none_of_its_writes_and_the_owner_keeps_serving() {
        let kv = KvHandle::builder().prefix("app:").spawn();
        kv.mset([("a", 1), ("b", 2)]).await.unwrap();
        let err = kv
            .transaction(|txn| {
                txn.set("a", 100);
                txn.delete("b");
                txn.set("c", 3);
                panic!("halfway");
            })
            .await
            .unwrap_err();
        assert!(
            matches!(&err, KvError::TransactionPanicked { prefix, message } if prefix == "app:" && message == "halfway"),
            "{err:?}"
        );
        assert_eq!(
            kv.mget(["a", "b", "c"]).await.unwrap(),
            vec![Some(Arc::new(json!(1))), Some(Arc::new(json!(2))), None]
        );
        assert_eq!(kv.stats().await.unwrap().entries, 2);
        assert!(kv.transaction(|txn| txn.delete("a")).await.unwrap());
    }

    #[tokio::test]
    async fn abort_drops_every_staged_write() {
        let kv = KvHandle::spawn();
        kv.set("a", 1).await.unwrap();
        let out = kv
            .transaction(|txn| {
                txn.set("a", 2);
                txn.abort();
                txn.set("b", 3);
                "aborted"
            })
            .await
            .unwrap();
        assert_eq!(out, "aborted");
        assert_eq!(
            kv.mget(["a", "b"]).await.unwrap(),
            vec![Some(Arc::new(json!(1))), None]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn expired_keys_are_invisible_inside_a_transaction() {
        let kv = lazy_store();
        kv.set("a", 1).ttl(SEC).await.unwrap();
        tokio::time::advance(SEC).await;
        let seen = kv
            .transaction(|txn| {
                (
                    txn.get("a").cloned(),
                    txn.delete("a"),
                    txn.expire("a", SEC).unwrap(),
                )
            })
            .await
            .unwrap();
        assert_eq!(seen, (None, false, false));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_transfers_keep_the_total() {
        let kv = KvHandle::spawn();
        kv.mset([("a", 1000), ("b", 1000)]).await.unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|task| {
                let kv = kv.clone();
                tokio::spawn(async move {
                    let (from, to) = if task % 2 == 0 {
                        ("a", "b")
                    } else {
                        ("b", "a")
                    };
                    for _ in 0..50 {
                        kv.transaction(move |txn| {
                            let f = txn.get(from).and_then(Value::as_i64).unwrap_or(0);
                            let t = txn.get(to).and_then(Value::as_i64).unwrap_or(0);
                            txn.set(from, f - 7);
                            txn.set(to, t + 7);
                        })
                        .await
                        .unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let a = kv.get_as::<i64>("a").await.unwrap().unwrap();
        let b = kv.get_as::<i64>("b").await.unwrap().unwrap();
        assert_eq!((a + b, a), (2000, 1000));
    }
}

mod key_queries {
    use super::*;

    #[tokio::test]
    async fn get_del_returns_the_value_once_and_removes_it() {
        let kv = KvHandle::spawn();
        kv.set("result", json!({"ok": true})).await.unwrap();
        assert_eq!(
            kv.get_del("result").await.unwrap(),
            Some(json!({"ok": true}))
        );
        assert_eq!(kv.get_del("result").await.unwrap(), None);
        assert!(!kv.exists("result").await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn of_many_racing_get_dels_exactly_one_gets_the_value() {
        let kv = KvHandle::spawn();
        kv.set("result", 42).await.unwrap();
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let kv = kv.clone();
                tokio::spawn(async move { kv.get_del("result").await.unwrap() })
            })
            .collect();
        let mut got = Vec::new();
        for task in tasks {
            got.extend(task.await.unwrap());
        }
        assert_eq!(got, vec![json!(42)]);
    }

    #[tokio::test(start_paused = true)]
    async fn ttl_tells_missing_no_expiry_and_time_left_apart() {
        let kv = KvHandle::spawn();
        kv.set("forever", 1).await.unwrap();
        kv.set("lease", 1).ttl(30 * SEC).await.unwrap();
        tokio::time::advance(Duration::from_millis(12_500)).await;
        assert_eq!(kv.ttl("missing").await.unwrap(), Ttl::Missing);
        assert_eq!(kv.ttl("forever").await.unwrap(), Ttl::NoExpiry);
        assert_eq!(
            kv.ttl("lease").await.unwrap(),
            Ttl::Expires(Duration::from_millis(17_500))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn persist_removes_a_ttl_and_says_whether_there_was_one() {
        let kv = KvHandle::spawn();
        kv.set("k", 1).ttl(SEC).await.unwrap();
        assert!(kv.persist("k").await.unwrap());
        assert!(!kv.persist("k").await.unwrap());
        assert!(!kv.persist("missing").await.unwrap());
        tokio::time::advance(10 * SEC).await;
        assert_eq!(kv.get("k").await.unwrap().as_deref(), Some(&json!(1)));
        assert_eq!(kv.stats().await.unwrap().expiring, 0);
    }

    #[tokio::test]
    async fn exists_counts_a_stored_null() {
        let kv = KvHandle::spawn();
        kv.set("null", Value::Null).await.unwrap();
        assert!(kv.exists("null").await.unwrap());
        assert!(!kv.exists("nothing").await.unwrap());
    }

    #[tokio::test]
    async fn scan_prefix_is_sorted_relative_to_the_handle_and_limited() {
        let kv = KvHandle::spawn();
        kv.mset([
            ("run:42:c", 0),
            ("run:42:a", 0),
            ("run:42:b", 0),
            ("run:4:a", 0),
            ("other", 0),
        ])
        .await
        .unwrap();
        assert_eq!(
            kv.scan_prefix("run:42:").await.unwrap(),
            vec!["run:42:a", "run:42:b", "run:42:c"]
        );
        assert_eq!(
            kv.scan_prefix("run:42:").limit(2).await.unwrap(),
            vec!["run:42:a", "run:42:b"]
        );
        assert_eq!(
            kv.scan_prefix("run:42:").limit(0).await.unwrap(),
            Vec::<String>::new()
        );
        let run = kv.with_prefix("run:");
        assert_eq!(
            run.scan_prefix("4").await.unwrap(),
            vec!["42:a", "42:b", "42:c", "4:a"]
        );
        assert_eq!(kv.scan_prefix("").await.unwrap().len(), 5);
    }
}

/// Expired keys are invisible to every primitive, even while they are still held in memory.
mod expired_keys_are_invisible {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn to_every_coordination_call() {
        let kv = lazy_store();
        for key in ["a", "b", "c", "d", "e", "f", "g"] {
            kv.set(key, 5).ttl(SEC).await.unwrap();
        }
        tokio::time::advance(SEC).await;
        assert_eq!(kv.stats().await.unwrap().entries, 7); // still held
        assert!(!kv.exists("a").await.unwrap());
        assert_eq!(kv.ttl("b").await.unwrap(), Ttl::Missing);
        assert!(!kv.persist("c").await.unwrap());
        assert_eq!(kv.get_del("d").await.unwrap(), None);
        assert_eq!(kv.incr("e", 1).await.unwrap(), 1);
        assert_eq!(kv.scan_prefix("").await.unwrap(), vec!["e"]);
        assert!(kv.set_if_absent("f", 0).await.unwrap());
        assert_eq!(kv.update("g", |cur| cur.cloned()).await.unwrap(), None);
    }
}

mod stats {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn counts_hits_misses_expirations_and_commands() {
        let kv = lazy_store();
        kv.set("a", 1).await.unwrap(); // 1 command
        kv.set("t", 1).ttl(SEC).await.unwrap(); // 2
        kv.get("a").await.unwrap(); // 3, hit
        kv.get("missing").await.unwrap(); // 4, miss
        kv.mget(["a", "a", "nope"]).await.unwrap(); // 5, 2 hits 1 miss
        kv.incr("a", 1).await.unwrap(); // 6, hit
        tokio::time::advance(SEC).await;
        kv.exists("t").await.unwrap(); // 7, miss + expiration
        kv.set("u", 1).ttl(SEC).await.unwrap(); // 8
        tokio::time::advance(SEC).await;
        assert_eq!(kv.purge_expired().await.unwrap(), 1); // 9, expiration
        let stats = kv.stats().await.unwrap(); // 10
        assert_eq!(
            (stats.hits, stats.misses, stats.expirations, stats.commands),
            (4, 3, 2, 10)
        );
        assert_eq!((stats.entries, stats.expiring, stats.watchers), (1, 0, 0));
        assert_eq!(stats.mailbox_depth, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn active_expiry_counts_expirations() {
        let kv = KvHandle::spawn();
        kv.mset([("a", 1), ("b", 2)]).ttl(SEC).await.unwrap();
        tokio::time::sleep(2 * SEC).await;
        let stats = kv.stats().await.unwrap();
        assert_eq!((stats.entries, stats.expirations), (0, 2));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn mailbox_depth_counts_the_commands_queued_ahead() {
        let kv = KvHandle::builder().mailbox_capacity(64).spawn();
        assert_eq!(kv.stats().await.unwrap().mailbox_depth, 0);
        // Queue commands without letting the owner task run: on a current-thread runtime it only
        // runs when this task yields. Polling a call once puts its command in the mailbox.
        let mut queued = Vec::new();
        for i in 0..10 {
            let kv = kv.clone();
            let mut call = Box::pin(async move { kv.set("k", i).await });
            assert!(futures::poll!(call.as_mut()).is_pending());
            queued.push(call);
        }
        let stats = kv.stats().await.unwrap();
        assert_eq!(stats.mailbox_depth, 10);
        for call in queued {
            call.await.unwrap();
        }
        assert_eq!(kv.get("k").await.unwrap().as_deref(), Some(&json!(9)));
    }
}
