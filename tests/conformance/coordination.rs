//! The coordination rules (issue 5) on every backend.

use std::sync::Arc;
use std::time::Duration;

use ephemeral_kv::{KvError, Ttl};
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::time::timeout;

use crate::backend::Backend;

conformance!(
    incr_counts_from_zero_and_keeps_an_existing_ttl,
    incr_refuses_non_integers_and_overflow_and_changes_nothing,
    set_if_absent_is_a_lease_that_frees_itself,
    compare_and_set_swaps_only_on_the_expected_value,
    compare_and_set_keeps_or_renews_the_ttl,
    update_replaces_creates_and_deletes_keeping_the_ttl,
    a_panicking_update_changes_nothing_and_the_store_keeps_serving,
    transaction_applies_all_writes_together,
    transaction_abort_and_panic_write_nothing,
    get_del_exists_ttl_and_persist,
    scan_prefix_is_sorted_limited_relative_and_literal,
    stats_counts_entries_and_commands,
    watch_works_or_says_unsupported,
    wait_for_resolves_at_once_or_on_the_write_and_composes_with_timeout,
    concurrent_callers_lose_nothing,
);

async fn incr_counts_from_zero_and_keeps_an_existing_ttl(b: &impl Backend) {
    let kv = b.kv().await;
    assert_eq!(kv.incr("n", 1).await.unwrap(), 1);
    assert_eq!(kv.incr("n", -3).await.unwrap(), -2);
    assert_eq!(kv.get("n").await.unwrap().as_deref(), Some(&json!(-2)));
    assert_eq!(kv.ttl("n").await.unwrap(), Ttl::NoExpiry);
    assert_eq!(kv.incr("n", 1).ttl(b.units(5)).await.unwrap(), -1);
    assert_eq!(kv.ttl("n").await.unwrap(), Ttl::NoExpiry); // not created here: no TTL
    assert_eq!(kv.incr("w", 1).ttl(b.units(4)).await.unwrap(), 1);
    b.pass(2).await;
    assert_eq!(kv.incr("w", 1).ttl(b.units(4)).await.unwrap(), 2);
    b.assert_ttl(kv.ttl("w").await.unwrap(), 4, 2); // the window was not pushed back
    b.pass(3).await;
    assert_eq!(kv.incr("w", 1).await.unwrap(), 1); // a new window
    kv.set("big", i64::MAX - 1).await.unwrap();
    assert_eq!(kv.incr("big", 1).await.unwrap(), i64::MAX);
    assert_eq!(kv.incr("min", i64::MIN).await.unwrap(), i64::MIN);
}

async fn incr_refuses_non_integers_and_overflow_and_changes_nothing(b: &impl Backend) {
    let kv = b.kv().await;
    for (key, value, found) in [
        ("s", json!("7"), "a string"),
        ("f", json!(1.5), "a number"),
        ("u", json!(u64::MAX), "a number"),
        ("l", json!([1]), "a list"),
    ] {
        kv.set(key, value.clone()).await.unwrap();
        match kv.incr(key, 1).await {
            Err(KvError::WrongType {
                key: k,
                expected,
                found: f,
            }) => assert_eq!((k, expected, f), (b.full(key), "an integer (i64)", found)),
            other => panic!("{key}: {other:?}"),
        }
        assert_eq!(kv.get(key).await.unwrap().as_deref(), Some(&value));
    }
    kv.set("max", i64::MAX).ttl(b.units(10)).await.unwrap();
    match kv.incr("max", 1).await {
        Err(KvError::Overflow { key, current, by }) => {
            assert_eq!((key, current, by), (b.full("max"), i64::MAX, 1))
        }
        other => panic!("{other:?}"),
    }
    kv.set("min", i64::MIN).await.unwrap();
    assert!(matches!(
        kv.incr("min", -1).await,
        Err(KvError::Overflow {
            current: i64::MIN,
            by: -1,
            ..
        })
    ));
    assert_eq!(
        kv.get("max").await.unwrap().as_deref(),
        Some(&json!(i64::MAX))
    );
    b.assert_ttl(kv.ttl("max").await.unwrap(), 10, 0);
}

async fn set_if_absent_is_a_lease_that_frees_itself(b: &impl Backend) {
    let kv = b.kv().await;
    assert!(kv
        .set_if_absent("lock", "w1")
        .ttl(b.units(2))
        .await
        .unwrap());
    assert!(!kv.set_if_absent("lock", "w2").await.unwrap());
    assert_eq!(kv.get("lock").await.unwrap().as_deref(), Some(&json!("w1")));
    b.pass(3).await;
    assert!(kv.set_if_absent("lock", "w2").await.unwrap());
    assert_eq!(kv.get("lock").await.unwrap().as_deref(), Some(&json!("w2")));
    assert_eq!(kv.ttl("lock").await.unwrap(), Ttl::NoExpiry);
}

async fn compare_and_set_swaps_only_on_the_expected_value(b: &impl Backend) {
    let kv = b.kv().await;
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
    assert!(!kv
        .compare_and_set("missing", Some(Value::Null), 1)
        .await
        .unwrap());
    assert!(!kv.exists("missing").await.unwrap());
    // Objects compare by content, whatever order their fields were written in.
    kv.set("obj", json!({"b": 1, "a": [1, 2.5, "x"]}))
        .await
        .unwrap();
    assert!(kv
        .compare_and_set(
            "obj",
            Some(json!({"a": [1, 2.5, "x"], "b": 1})),
            json!({"v": 2})
        )
        .await
        .unwrap());
    assert_eq!(
        kv.get("obj").await.unwrap().as_deref(),
        Some(&json!({"v": 2}))
    );
    kv.set("null", Value::Null).await.unwrap();
    assert!(kv
        .compare_and_set("null", Some(Value::Null), 1)
        .await
        .unwrap());
}

async fn compare_and_set_keeps_or_renews_the_ttl(b: &impl Backend) {
    let kv = b.kv().await;
    kv.set_if_absent("lock", "w1")
        .ttl(b.units(4))
        .await
        .unwrap();
    b.pass(2).await;
    assert!(kv
        .compare_and_set("lock", Some(json!("w1")), "w1")
        .await
        .unwrap());
    b.assert_ttl(kv.ttl("lock").await.unwrap(), 4, 2); // kept
    assert!(kv
        .compare_and_set("lock", Some(json!("w1")), "w1")
        .ttl(b.units(4))
        .await
        .unwrap());
    b.pass(3).await;
    assert_eq!(kv.get("lock").await.unwrap().as_deref(), Some(&json!("w1"))); // renewed
    assert!(kv
        .compare_and_set("fresh", None, 1)
        .ttl(b.units(2))
        .await
        .unwrap());
    b.assert_ttl(kv.ttl("fresh").await.unwrap(), 2, 0);
    assert!(kv.compare_and_set("plain", None, 1).await.unwrap());
    assert_eq!(kv.ttl("plain").await.unwrap(), Ttl::NoExpiry);
}

async fn update_replaces_creates_and_deletes_keeping_the_ttl(b: &impl Backend) {
    let kv = b.kv().await;
    let add_apple = |cur: Option<&Value>| {
        let mut cart = cur.cloned().unwrap_or(json!([]));
        cart.as_array_mut()?.push(json!("apple"));
        Some(cart)
    };
    assert_eq!(
        kv.update("cart", add_apple).await.unwrap().as_deref(),
        Some(&json!(["apple"]))
    );
    assert_eq!(kv.ttl("cart").await.unwrap(), Ttl::NoExpiry);
    kv.expire("cart", b.units(5)).await.unwrap();
    assert_eq!(
        kv.update("cart", add_apple).await.unwrap().as_deref(),
        Some(&json!(["apple", "apple"]))
    );
    b.assert_ttl(kv.ttl("cart").await.unwrap(), 5, 0);
    assert_eq!(kv.update("cart", |_| None).await.unwrap(), None);
    assert!(!kv.exists("cart").await.unwrap());
    assert_eq!(kv.update("nothing", |_| None).await.unwrap(), None);
    assert!(!kv.exists("nothing").await.unwrap());
}

async fn a_panicking_update_changes_nothing_and_the_store_keeps_serving(b: &impl Backend) {
    let kv = b.kv().await;
    kv.set("k", 1).await.unwrap();
    let result = kv
        .update("k", |_| -> Option<Value> { panic!("boom") })
        .await;
    match result {
        Err(KvError::UpdatePanicked { key, message }) => {
            assert_eq!((key, message), (b.full("k"), "boom".to_owned()))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(kv.get("k").await.unwrap().as_deref(), Some(&json!(1)));
    let result = kv
        .transaction(|txn| {
            txn.set("k", 2);
            panic!("txn boom");
        })
        .await;
    assert!(
        matches!(result, Err(KvError::TransactionPanicked { message, .. }) if message == "txn boom")
    );
    assert_eq!(kv.get("k").await.unwrap().as_deref(), Some(&json!(1)));
    kv.set("k", 3).await.unwrap();
    assert_eq!(kv.get("k").await.unwrap().as_deref(), Some(&json!(3)));
}

async fn transaction_applies_all_writes_together(b: &impl Backend) {
    let kv = b.kv().await;
    kv.mset([("acct:a", 100), ("acct:b", 0)]).await.unwrap();
    kv.set("old", "x").await.unwrap();
    kv.set("ttl", "y").ttl(b.units(10)).await.unwrap();
    let out = kv
        .transaction(|txn| {
            let a = txn.get("acct:a").and_then(Value::as_i64).unwrap_or(0);
            let b = txn.get("acct:b").and_then(Value::as_i64).unwrap_or(0);
            let amount = a.min(30);
            txn.set("acct:a", a - amount);
            txn.set("acct:b", b + amount);
            let own_write = txn.get("acct:b").cloned();
            let deleted = (txn.delete("old"), txn.delete("old"), txn.delete("never"));
            txn.set("lease", "me");
            let expired = txn.expire("lease", Duration::from_secs(3600)).unwrap();
            let missing = txn.expire("never", Duration::from_secs(1)).unwrap();
            txn.set("ttl", "z"); // a set drops the TTL, as `set` does
            (amount, own_write, deleted, expired, missing)
        })
        .await
        .unwrap();
    assert_eq!(
        out,
        (30, Some(json!(30)), (true, false, false), true, false)
    );
    assert_eq!(
        kv.mget(["acct:a", "acct:b", "old", "ttl"]).await.unwrap(),
        vec![
            Some(Arc::new(json!(70))),
            Some(Arc::new(json!(30))),
            None,
            Some(Arc::new(json!("z")))
        ]
    );
    assert_eq!(kv.ttl("ttl").await.unwrap(), Ttl::NoExpiry);
    assert!(
        matches!(kv.ttl("lease").await.unwrap(), Ttl::Expires(left) if left > Duration::from_secs(3500))
    );
    let zero = kv
        .transaction(|txn| txn.expire("lease", Duration::ZERO))
        .await
        .unwrap();
    assert!(matches!(zero, Err(KvError::InvalidTtl { .. })));
}

async fn transaction_abort_and_panic_write_nothing(b: &impl Backend) {
    let kv = b.kv().await;
    kv.set("balance", 5).await.unwrap();
    let done = kv
        .transaction(|txn| {
            let balance = txn.get("balance").and_then(Value::as_i64).unwrap_or(0);
            txn.set("balance", balance - 8);
            txn.set("other", 1);
            if balance < 8 {
                txn.abort();
                return false;
            }
            true
        })
        .await
        .unwrap();
    assert!(!done);
    assert_eq!(
        kv.mget(["balance", "other"]).await.unwrap(),
        vec![Some(Arc::new(json!(5))), None]
    );
    // A closure that panics on a value it read: on Redis the first run reads nothing fetched
    // yet, which must not count as the panic.
    let result = kv
        .transaction(|txn| {
            let balance = txn
                .get("balance")
                .and_then(Value::as_i64)
                .expect("balance is there");
            txn.set("balance", balance + 1);
            if balance == 5 {
                panic!("five");
            }
        })
        .await;
    assert!(
        matches!(result, Err(KvError::TransactionPanicked { message, .. }) if message == "five")
    );
    let ok = kv
        .transaction(|txn| txn.get("balance").and_then(Value::as_i64).expect("there") + 1)
        .await
        .unwrap();
    assert_eq!(ok, 6);
    assert_eq!(kv.get("balance").await.unwrap().as_deref(), Some(&json!(5)));
}

async fn get_del_exists_ttl_and_persist(b: &impl Backend) {
    let kv = b.kv().await;
    kv.set("job", "done").await.unwrap();
    assert_eq!(kv.get_del("job").await.unwrap(), Some(json!("done")));
    assert_eq!(kv.get_del("job").await.unwrap(), None);
    kv.set("null", Value::Null).await.unwrap();
    assert!(kv.exists("null").await.unwrap());
    assert!(!kv.exists("nope").await.unwrap());
    kv.set("forever", 1).await.unwrap();
    kv.set("lease", 1).ttl(b.units(30)).await.unwrap();
    assert_eq!(kv.ttl("nope").await.unwrap(), Ttl::Missing);
    assert_eq!(kv.ttl("forever").await.unwrap(), Ttl::NoExpiry);
    b.assert_ttl(kv.ttl("lease").await.unwrap(), 30, 0);
    assert!(kv.persist("lease").await.unwrap());
    assert!(!kv.persist("lease").await.unwrap());
    assert!(!kv.persist("nope").await.unwrap());
    assert_eq!(kv.ttl("lease").await.unwrap(), Ttl::NoExpiry);
}

async fn scan_prefix_is_sorted_limited_relative_and_literal(b: &impl Backend) {
    let kv = b.kv().await;
    kv.mset([
        ("run:42:b", 1),
        ("run:42:a", 2),
        ("run:7:a", 3),
        ("run:42:c", 4),
    ])
    .await
    .unwrap();
    kv.set("run:42:gone", 0).ttl(b.unit()).await.unwrap();
    kv.mset([("g*b:1", 0), ("gXb:1", 0), ("g?[x]\\:1", 0)])
        .await
        .unwrap();
    b.pass(2).await;
    assert_eq!(
        kv.scan_prefix("run:42:").await.unwrap(),
        vec!["run:42:a", "run:42:b", "run:42:c"]
    );
    assert_eq!(
        kv.scan_prefix("run:42:").limit(2).await.unwrap(),
        vec!["run:42:a", "run:42:b"]
    );
    assert_eq!(
        kv.scan_prefix("run:").limit(0).await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        kv.with_prefix("run:42:").scan_prefix("").await.unwrap(),
        vec!["a", "b", "c"]
    );
    assert_eq!(kv.scan_prefix("g*").await.unwrap(), vec!["g*b:1"]);
    assert_eq!(kv.scan_prefix("g?[x]\\").await.unwrap(), vec!["g?[x]\\:1"]);
}

async fn stats_counts_entries_and_commands(b: &impl Backend) {
    let kv = b.kv().await;
    kv.mset([("a", 1), ("b", 2), ("c", 3)]).await.unwrap();
    let stats = kv.stats().await.unwrap();
    assert_eq!(stats.entries, 3);
    assert_eq!(stats.commands, 2); // the mset and this stats
    assert_eq!(stats.mailbox_depth, 0);
}

async fn watch_works_or_says_unsupported(b: &impl Backend) {
    let kv = b.kv().await;
    if b.has_watch() {
        let mut events = kv.watch("inbox:").await.unwrap();
        kv.set("elsewhere", 1).await.unwrap();
        kv.set("inbox:1", "hi").await.unwrap();
        let event = events.next().await.unwrap().unwrap();
        assert_eq!(event.key(), "inbox:1");
    } else {
        assert!(matches!(
            kv.watch("inbox:").await,
            Err(KvError::Unsupported {
                op: "watch",
                backend: "redis"
            })
        ));
    }
}

async fn wait_for_resolves_at_once_or_on_the_write_and_composes_with_timeout(b: &impl Backend) {
    let kv = b.kv().await;
    kv.set("ready", 1).await.unwrap();
    assert_eq!(*kv.wait_for("ready").await.unwrap(), json!(1));
    let waiter = kv.clone();
    let result = tokio::spawn(async move { waiter.wait_for("job:7:result").await });
    b.pass(1).await;
    assert!(!result.is_finished());
    kv.set("job:7:result", json!({"rows": 3})).await.unwrap();
    let value = timeout(b.units(10), result)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(*value, json!({"rows": 3}));
    let late = timeout(b.unit(), kv.wait_for("never")).await;
    assert!(late.is_err());
    b.pass(1).await;
    assert_eq!(kv.stats().await.unwrap().watchers, 0); // the abandoned wait is forgotten
}

async fn concurrent_callers_lose_nothing(b: &impl Backend) {
    let kv = b.kv().await;
    crate::races::inbox_and_counters(&[kv], 16, 20).await;
}
