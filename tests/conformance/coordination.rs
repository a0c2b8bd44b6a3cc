//! Rules 15–25 of `docs/rules.md` (the coordination calls), on both backends: `incr`,
//! `set_if_absent`, `compare_and_set`, `update`, `transaction`, `get_del`, `exists`/`ttl`/`persist`,
//! `scan_prefix`, `watch` (more in `feeds.rs`), `wait_for` and `stats`, including the races each
//! rule promises to survive; the typed calls among them (`Txn::get_as` and `Txn::set` of any
//! `Serialize` value in rule 19, `wait_for_as` in rule 24); and one change per key per command as
//! waiters see it (rule 30). What only the in-process owner task shows (closures run once, panics
//! caught on it, `stats` counters, `watch` events) is in `tests/local/`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ephemeral_kv::{KvError, Ttl};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::time::timeout;

use crate::backend::Backend;

conformance!(
    rule_15_incr_counts_from_zero_and_keeps_an_existing_ttl,
    rule_15_incr_refuses_non_integers_and_overflow_and_changes_nothing,
    rule_16_set_if_absent_is_a_lease_that_frees_itself,
    rule_16_set_if_absent_refuses_bad_input_before_storing_anything,
    rule_16_of_many_racing_workers_exactly_one_wins,
    rule_17_compare_and_set_swaps_only_on_the_expected_value,
    rule_17_compare_and_set_keeps_or_renews_the_ttl,
    rule_17_compare_and_set_with_a_ttl_too_large_to_represent_leaves_the_key_without_one,
    rule_18_update_replaces_creates_and_deletes_keeping_the_ttl,
    rule_18_19_a_panicking_closure_changes_nothing_and_the_store_keeps_serving,
    rule_19_transaction_applies_all_writes_together,
    rule_19_transaction_abort_and_panic_write_nothing,
    rule_19_a_txn_shows_its_prefix_and_staged_writes_not_the_store,
    rule_19_concurrent_transfers_keep_the_total,
    rule_19_txn_get_as_reads_staged_writes_first_and_set_round_trips_a_struct,
    rule_19_txn_set_of_an_unserializable_value_fails_with_serialize_and_applies_nothing,
    rule_20_get_del_takes_a_value_exactly_once,
    rule_21_exists_ttl_and_persist,
    rule_22_scan_prefix_is_sorted_limited_relative_and_literal,
    rule_23_watch_sees_writes_under_its_prefix,
    rule_24_wait_for_resolves_at_once_or_on_the_write_and_composes_with_timeout,
    rule_24_wait_for_waits_out_an_expired_value_and_a_delete_and_ends_on_shutdown,
    rule_24_30_wait_for_sees_one_write_per_key_per_command_and_no_txn_set_then_delete,
    rule_24_wait_for_as_resolves_with_the_struct_once_another_task_sets_it,
    rule_24_wait_for_as_of_a_value_that_does_not_fit_is_deserialize_and_the_value_stays,
    rule_25_stats_counts_entries_and_commands,
    rule_15_18_19_concurrent_callers_lose_nothing,
);

async fn rule_15_incr_counts_from_zero_and_keeps_an_existing_ttl(b: &impl Backend) {
    let kv = b.kv().await;
    assert_eq!(kv.incr("n", 1).await.unwrap(), 1);
    assert_eq!(kv.incr("n", -3).await.unwrap(), -2);
    assert_eq!(kv.get("n").await.unwrap().as_deref(), Some(&json!(-2)));
    assert_eq!(kv.incr("m", -5).await.unwrap(), -5);
    assert_eq!(kv.ttl("n").await.unwrap(), Ttl::NoExpiry);
    assert_eq!(kv.incr("n", 1).ttl(b.units(5)).await.unwrap(), -1);
    assert_eq!(kv.ttl("n").await.unwrap(), Ttl::NoExpiry); // not created here: no TTL
    assert_eq!(kv.incr("w", 1).ttl(b.units(4)).await.unwrap(), 1);
    b.pass(2).await;
    assert_eq!(kv.incr("w", 1).ttl(b.units(4)).await.unwrap(), 2);
    b.assert_ttl(kv.ttl("w").await.unwrap(), 4, 2); // the window was not pushed back
    assert_eq!(kv.incr("w", 1).await.unwrap(), 3);
    b.assert_ttl(kv.ttl("w").await.unwrap(), 4, 2); // nor dropped without the option
    b.pass(3).await;
    // A new window: counted from 0 again, with the new TTL.
    assert_eq!(kv.incr("w", 1).ttl(b.units(6)).await.unwrap(), 1);
    b.assert_ttl(kv.ttl("w").await.unwrap(), 6, 0);
    kv.set("big", i64::MAX - 1).await.unwrap();
    assert_eq!(kv.incr("big", 1).await.unwrap(), i64::MAX);
    assert_eq!(kv.incr("min", i64::MIN).await.unwrap(), i64::MIN);
}

async fn rule_15_incr_refuses_non_integers_and_overflow_and_changes_nothing(b: &impl Backend) {
    let kv = b.kv().await;
    for (key, value, found) in [
        ("s", json!("7"), "a string"),
        ("f", json!(1.5), "a number"),
        ("u", json!(u64::MAX), "a number"),
        ("l", json!([1]), "a list"),
        ("z", Value::Null, "null"),
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
    assert_eq!(
        kv.incr("s", 1).await.unwrap_err().to_string(),
        format!(
            "key `{}` holds a string, but this call needs an integer (i64)",
            b.full("s")
        )
    );
    kv.set("max", i64::MAX).ttl(b.units(10)).await.unwrap();
    let err = kv.incr("max", 1).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "incrementing key `{}` (holding {}) by 1 would overflow an i64",
            b.full("max"),
            i64::MAX
        )
    );
    match err {
        KvError::Overflow { key, current, by } => {
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
    assert_eq!(
        kv.get("min").await.unwrap().as_deref(),
        Some(&json!(i64::MIN))
    );
    b.assert_ttl(kv.ttl("max").await.unwrap(), 10, 0);
}

async fn rule_16_set_if_absent_is_a_lease_that_frees_itself(b: &impl Backend) {
    let kv = b.kv().await;
    assert!(kv
        .set_if_absent("lock", "w1")
        .ttl(b.units(2))
        .await
        .unwrap());
    b.assert_ttl(kv.ttl("lock").await.unwrap(), 2, 0);
    assert!(!kv.set_if_absent("lock", "w2").await.unwrap());
    // A refused call leaves the holder's value and TTL alone.
    assert!(!kv
        .set_if_absent("lock", "w2")
        .ttl(b.units(9))
        .await
        .unwrap());
    assert_eq!(kv.get("lock").await.unwrap().as_deref(), Some(&json!("w1")));
    b.assert_ttl(kv.ttl("lock").await.unwrap(), 2, 0);
    b.pass(3).await;
    assert!(kv.set_if_absent("lock", "w2").await.unwrap());
    assert_eq!(kv.get("lock").await.unwrap().as_deref(), Some(&json!("w2")));
    assert_eq!(kv.ttl("lock").await.unwrap(), Ttl::NoExpiry);
}

async fn rule_16_set_if_absent_refuses_bad_input_before_storing_anything(b: &impl Backend) {
    let kv = b.kv().await;
    let unserializable = std::collections::HashMap::from([((1u8, 2u8), 3u8)]);
    let err = kv.set_if_absent("k", unserializable).await.unwrap_err();
    assert!(matches!(&err, KvError::Serialize { key, .. } if *key == b.full("k")));
    assert!(!kv.exists("k").await.unwrap());
    // (A zero TTL: rule 3.)
}

async fn rule_16_of_many_racing_workers_exactly_one_wins(b: &impl Backend) {
    let kv = b.kv().await;
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

async fn rule_17_compare_and_set_swaps_only_on_the_expected_value(b: &impl Backend) {
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
    assert_eq!(
        kv.get("state").await.unwrap().as_deref(),
        Some(&json!("busy"))
    );
    assert!(!kv
        .compare_and_set("missing", Some(Value::Null), 1)
        .await
        .unwrap());
    assert!(!kv.exists("missing").await.unwrap());
    // Objects compare by content, whatever order their fields were written in, and as a whole.
    kv.set("obj", json!({"b": 1, "a": [1, 2.5, "x"]}))
        .await
        .unwrap();
    assert!(!kv
        .compare_and_set("obj", Some(json!({"b": 1})), 0)
        .await
        .unwrap());
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

async fn rule_17_compare_and_set_keeps_or_renews_the_ttl(b: &impl Backend) {
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
                                                       // A refused swap changes neither value nor TTL.
    assert!(!kv
        .compare_and_set("lock", Some(json!("nope")), "x")
        .ttl(b.units(30))
        .await
        .unwrap());
    b.assert_ttl(kv.ttl("lock").await.unwrap(), 4, 2);
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

async fn rule_17_compare_and_set_with_a_ttl_too_large_to_represent_leaves_the_key_without_one(
    b: &impl Backend,
) {
    let kv = b.kv().await;
    kv.set("lock", "w1").ttl(b.units(50)).await.unwrap();
    assert!(kv
        .compare_and_set("lock", Some(json!("w1")), "w2")
        .ttl(Duration::MAX)
        .await
        .unwrap());
    assert_eq!(kv.ttl("lock").await.unwrap(), Ttl::NoExpiry);
    assert_eq!(kv.get("lock").await.unwrap().as_deref(), Some(&json!("w2")));
    // Creating a key with it, too.
    assert!(kv
        .compare_and_set("fresh", None, 1)
        .ttl(Duration::MAX)
        .await
        .unwrap());
    assert_eq!(kv.ttl("fresh").await.unwrap(), Ttl::NoExpiry);
}

async fn rule_18_update_replaces_creates_and_deletes_keeping_the_ttl(b: &impl Backend) {
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
    assert_eq!(
        kv.get("cart").await.unwrap().as_deref(),
        Some(&json!(["apple", "apple"]))
    );
    b.assert_ttl(kv.ttl("cart").await.unwrap(), 5, 0);
    assert_eq!(kv.update("cart", |_| None).await.unwrap(), None);
    assert!(!kv.exists("cart").await.unwrap());
    assert_eq!(kv.update("nothing", |_| None).await.unwrap(), None);
    assert!(!kv.exists("nothing").await.unwrap());
    // A missing key: the closure sees `None`.
    let seen = kv
        .update("fresh", |cur| Some(json!(cur.is_none())))
        .await
        .unwrap();
    assert_eq!(seen.as_deref(), Some(&json!(true)));
}

async fn rule_18_19_a_panicking_closure_changes_nothing_and_the_store_keeps_serving(
    b: &impl Backend,
) {
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
    let err = kv
        .update("k", |_| -> Option<Value> { panic!("{} bugs", 2) })
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "the update closure for key `{}` panicked: 2 bugs",
            b.full("k")
        )
    );
    assert_eq!(kv.get("k").await.unwrap().as_deref(), Some(&json!(1)));
    kv.set("other", 1).await.unwrap();
    let result = kv
        .transaction(|txn| {
            txn.set("k", 2);
            txn.delete("other");
            txn.set("new", 3);
            panic!("txn boom");
        })
        .await;
    match result {
        Err(KvError::TransactionPanicked { prefix, message }) => {
            assert_eq!(
                (prefix.as_str(), message.as_str()),
                (b.prefix(), "txn boom")
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        kv.mget(["k", "other", "new"]).await.unwrap(),
        vec![Some(Arc::new(json!(1))), Some(Arc::new(json!(1))), None]
    );
    kv.set("k", 3).await.unwrap();
    assert_eq!(kv.get("k").await.unwrap().as_deref(), Some(&json!(3)));
    assert!(kv.transaction(|txn| txn.delete("other")).await.unwrap());
}

async fn rule_19_transaction_applies_all_writes_together(b: &impl Backend) {
    let root = b.kv().await;
    // Keys inside are relative to the handle's prefix.
    let kv = root.with_prefix("app:");
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
            let after_delete = txn.get("old").cloned();
            txn.set("lease", "me");
            let expired = txn.expire("lease", Duration::from_secs(3600)).unwrap();
            let missing = txn.expire("never", Duration::from_secs(1)).unwrap();
            txn.set("ttl", "z"); // a set drops the TTL, as `set` does
            (amount, own_write, deleted, after_delete, expired, missing)
        })
        .await
        .unwrap();
    assert_eq!(
        out,
        (30, Some(json!(30)), (true, false, false), None, true, false)
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
    assert_eq!(
        root.scan_prefix("").await.unwrap(),
        vec!["app:acct:a", "app:acct:b", "app:lease", "app:ttl"]
    );
    assert_eq!(kv.ttl("ttl").await.unwrap(), Ttl::NoExpiry);
    assert_eq!(kv.ttl("never").await.unwrap(), Ttl::Missing); // `expire` created nothing
    assert!(
        matches!(kv.ttl("lease").await.unwrap(), Ttl::Expires(left) if left > Duration::from_secs(3500))
    );
    let zero = kv
        .transaction(|txn| txn.expire("lease", Duration::ZERO))
        .await
        .unwrap();
    assert!(
        matches!(&zero, Err(KvError::InvalidTtl { key, .. }) if *key == b.full("app:lease")),
        "{zero:?}"
    );
}

async fn rule_19_transaction_abort_and_panic_write_nothing(b: &impl Backend) {
    let kv = b.kv().await;
    kv.set("balance", 5).await.unwrap();
    let done = kv
        .transaction(|txn| {
            let balance = txn.get("balance").and_then(Value::as_i64).unwrap_or(0);
            txn.set("balance", balance - 8);
            txn.set("other", 1);
            if balance < 8 {
                txn.abort();
                txn.set("after_abort", 1); // dropped too
                return false;
            }
            true
        })
        .await
        .unwrap();
    assert!(!done);
    assert_eq!(
        kv.mget(["balance", "other", "after_abort"]).await.unwrap(),
        vec![Some(Arc::new(json!(5))), None, None]
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

async fn rule_19_a_txn_shows_its_prefix_and_staged_writes_not_the_store(b: &impl Backend) {
    let kv = b.kv().await.with_prefix("app:");
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
        format!(
            "Txn {{ prefix: {:?}, staged_writes: 2, aborted: false, failed: false, .. }}",
            b.full("app:")
        )
    );
}

async fn rule_19_concurrent_transfers_keep_the_total(b: &impl Backend) {
    let kv = b.kv().await;
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
                for _ in 0..20 {
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

/// A typed value, as callers store them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Account {
    owner: String,
    balance: i64,
}

fn account(owner: &str, balance: i64) -> Account {
    Account {
        owner: owner.to_owned(),
        balance,
    }
}

async fn rule_19_txn_get_as_reads_staged_writes_first_and_set_round_trips_a_struct(
    b: &impl Backend,
) {
    let kv = b.kv().await.with_prefix("app:");
    kv.set("acct:a", account("a", 100)).await.unwrap();
    kv.set("text", "not an account").await.unwrap();
    let seen = kv
        .transaction(|txn| {
            let stored = txn.get_as::<Account>("acct:a").unwrap();
            txn.set("acct:a", account("a", 70));
            let b_account = account("b", 30);
            txn.set("acct:b", &b_account); // by reference, too
            let staged = (
                txn.get_as::<Account>("acct:a").unwrap(),
                txn.get_as::<Account>("acct:b").unwrap(),
            );
            assert_eq!(staged.1.as_ref(), Some(&b_account));
            txn.delete("acct:b");
            let deleted = txn.get_as::<Account>("acct:b").unwrap();
            txn.set("acct:b", account("b", 30));
            let missing = txn.get_as::<Account>("acct:none").unwrap();
            // A value that does not fit is the closure's to handle; the transaction goes on.
            let misfit = match txn.get_as::<Account>("text") {
                Err(KvError::Deserialize { key, .. }) => key,
                other => panic!("expected Deserialize, got {other:?}"),
            };
            (stored, staged, deleted, missing, misfit)
        })
        .await
        .unwrap();
    assert_eq!(
        seen,
        (
            Some(account("a", 100)),
            (Some(account("a", 70)), Some(account("b", 30))),
            None,
            None,
            b.full("app:text")
        )
    );
    assert_eq!(
        kv.get_as::<Account>("acct:a").await.unwrap(),
        Some(account("a", 70))
    );
    assert_eq!(
        kv.get_as::<Account>("acct:b").await.unwrap(),
        Some(account("b", 30))
    );
    assert_eq!(
        kv.get("acct:b").await.unwrap().as_deref(),
        Some(&json!({"owner": "b", "balance": 30}))
    );
}

async fn rule_19_txn_set_of_an_unserializable_value_fails_with_serialize_and_applies_nothing(
    b: &impl Backend,
) {
    let kv = b.kv().await.with_prefix("app:");
    kv.mset([("a", 1), ("gone", 2)]).await.unwrap();
    let unserializable: HashMap<(u8, u8), u8> = HashMap::from([((1, 2), 3)]);
    let result = kv
        .transaction(move |txn| {
            txn.set("a", 100);
            txn.delete("gone");
            txn.set("bad", &unserializable);
            txn.set("after", 3);
            txn.expire("a", Duration::from_secs(60)).unwrap();
            "returned"
        })
        .await;
    match result {
        Err(KvError::Serialize { key, source }) => {
            assert_eq!(key, b.full("app:bad"));
            assert!(!source.to_string().is_empty());
        }
        other => panic!("expected Serialize, got {other:?}"),
    }
    assert_eq!(
        kv.mget(["a", "gone", "bad", "after"]).await.unwrap(),
        vec![
            Some(Arc::new(json!(1))),
            Some(Arc::new(json!(2))),
            None,
            None
        ]
    );
    assert_eq!(kv.ttl("a").await.unwrap(), Ttl::NoExpiry);
    // The next transaction is not affected.
    assert_eq!(
        kv.transaction(|txn| {
            txn.set("after", 4);
            txn.get("after").cloned()
        })
        .await
        .unwrap(),
        Some(json!(4))
    );
}

async fn rule_20_get_del_takes_a_value_exactly_once(b: &impl Backend) {
    let kv = b.kv().await;
    kv.set("job", "done").await.unwrap();
    assert_eq!(kv.get_del("job").await.unwrap(), Some(json!("done")));
    assert_eq!(kv.get_del("job").await.unwrap(), None);
    assert!(!kv.exists("job").await.unwrap());
    // Of many tasks taking one key, one gets the value.
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

async fn rule_21_exists_ttl_and_persist(b: &impl Backend) {
    let kv = b.kv().await;
    kv.set("null", Value::Null).await.unwrap();
    assert!(kv.exists("null").await.unwrap());
    assert!(!kv.exists("nope").await.unwrap());
    kv.set("forever", 1).await.unwrap();
    kv.set("lease", 1).ttl(b.units(30)).await.unwrap();
    kv.set("short", 1).ttl(b.units(2)).await.unwrap();
    assert_eq!(kv.ttl("nope").await.unwrap(), Ttl::Missing);
    assert_eq!(kv.ttl("forever").await.unwrap(), Ttl::NoExpiry);
    b.assert_ttl(kv.ttl("lease").await.unwrap(), 30, 0);
    b.pass(1).await;
    b.assert_ttl(kv.ttl("lease").await.unwrap(), 30, 1);
    assert!(kv.persist("lease").await.unwrap());
    assert!(!kv.persist("lease").await.unwrap());
    assert!(!kv.persist("nope").await.unwrap());
    assert!(!kv.persist("forever").await.unwrap());
    assert_eq!(kv.ttl("lease").await.unwrap(), Ttl::NoExpiry);
    // A persisted key outlives its old TTL.
    assert!(kv.persist("short").await.unwrap());
    b.pass(2).await;
    assert_eq!(kv.get("short").await.unwrap().as_deref(), Some(&json!(1)));
}

async fn rule_22_scan_prefix_is_sorted_limited_relative_and_literal(b: &impl Backend) {
    let kv = b.kv().await;
    kv.mset([
        ("run:42:b", 1),
        ("run:42:a", 2),
        ("run:7:a", 3),
        ("run:42:c", 4),
        ("run:4:a", 5),
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
    // Sorted by the relative key: `:` sorts after `2`.
    assert_eq!(
        kv.with_prefix("run:").scan_prefix("4").await.unwrap(),
        vec!["42:a", "42:b", "42:c", "4:a"]
    );
    assert_eq!(kv.scan_prefix("").await.unwrap().len(), 8);
    assert_eq!(kv.scan_prefix("g*").await.unwrap(), vec!["g*b:1"]);
    assert_eq!(kv.scan_prefix("g?[x]\\").await.unwrap(), vec!["g?[x]\\:1"]);
}

async fn rule_23_watch_sees_writes_under_its_prefix(b: &impl Backend) {
    let kv = b.kv().await;
    assert!(b.has_watch());
    let mut events = kv.watch("inbox:").await.unwrap();
    kv.set("elsewhere", 1).await.unwrap();
    kv.set("inbox:1", "hi").await.unwrap();
    let event = timeout(b.units(10), events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(event.key(), "inbox:1");
}

async fn rule_24_wait_for_resolves_at_once_or_on_the_write_and_composes_with_timeout(
    b: &impl Backend,
) {
    let kv = b.kv().await;
    kv.set("ready", 1).await.unwrap();
    assert_eq!(*kv.wait_for("ready").await.unwrap(), json!(1));
    assert_eq!(kv.get("ready").await.unwrap().as_deref(), Some(&json!(1))); // not taken
    let waiter = kv.clone();
    let result = tokio::spawn(async move { waiter.wait_for("job:7:result").await });
    // Several waiters, through another handle, woken by any write that gives the key a value.
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let jobs = kv.with_prefix("job:");
            tokio::spawn(async move { jobs.wait_for("8:done").await })
        })
        .collect();
    b.pass(1).await;
    assert!(!result.is_finished());
    kv.set("job:7:result", json!({"rows": 3})).await.unwrap();
    kv.incr("job:8:done", 3).await.unwrap();
    let value = timeout(b.units(10), result)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(*value, json!({"rows": 3}));
    for waiter in waiters {
        let value = timeout(b.units(10), waiter)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(*value, json!(3));
    }
    let waiter = kv.clone();
    let late = tokio::spawn(async move { waiter.wait_for("never").await });
    b.pass(1).await;
    assert_eq!(kv.stats().await.unwrap().watchers, 1); // a pending wait counts (rule 25)
    late.abort();
    b.pass(1).await;
    assert_eq!(kv.stats().await.unwrap().watchers, 0); // the abandoned wait is forgotten
}

async fn rule_24_wait_for_waits_out_an_expired_value_and_a_delete_and_ends_on_shutdown(
    b: &impl Backend,
) {
    // Expired entries stay in memory in-process: a wait must still not return them.
    let kv = b
        .build(ephemeral_kv::KvHandle::builder().active_expiry(false))
        .await;
    kv.set("k", "stale").ttl(b.unit()).await.unwrap();
    b.pass(2).await;
    assert!(timeout(b.unit(), kv.wait_for("k")).await.is_err());
    kv.set("k", "fresh").await.unwrap();
    assert_eq!(*kv.wait_for("k").await.unwrap(), json!("fresh"));

    let waiter = kv.clone();
    let waiting = tokio::spawn(async move { waiter.wait_for("never").await });
    b.pass(1).await;
    kv.delete("never").await.unwrap();
    b.pass(1).await;
    assert!(!waiting.is_finished()); // a delete does not wake it
    kv.shutdown().await;
    let ended = timeout(b.units(10), waiting).await.unwrap().unwrap();
    assert!(matches!(ended, Err(KvError::Closed)), "{ended:?}");
}

/// One command changes a key once: an `mset` naming a key twice wakes its waiters with the last
/// value, and a transaction that sets then deletes a key does not wake them at all.
async fn rule_24_30_wait_for_sees_one_write_per_key_per_command_and_no_txn_set_then_delete(
    b: &impl Backend,
) {
    let kv = b.kv().await;
    let waiter = kv.clone();
    let mut waiting = tokio::spawn(async move { waiter.wait_for("k").await });
    b.pass(1).await;
    kv.transaction(|txn| {
        txn.set("k", "passing");
        txn.delete("k");
    })
    .await
    .unwrap();
    assert!(timeout(b.units(3), &mut waiting).await.is_err()); // not woken
    assert!(!kv.exists("k").await.unwrap());
    kv.mset([
        ("k", json!("first")),
        ("other", json!(0)),
        ("k", json!("last")),
    ])
    .await
    .unwrap();
    let value = timeout(b.units(10), waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(*value, json!("last"));
}

/// A typed hand-off between tasks.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Report {
    job: u32,
    rows: Vec<String>,
}

async fn rule_24_wait_for_as_resolves_with_the_struct_once_another_task_sets_it(b: &impl Backend) {
    let kv = b.kv().await.with_prefix("jobs:");
    let waiter = kv.clone();
    let waiting = tokio::spawn(async move { waiter.wait_for_as::<Report>("7:result").await });
    b.pass(1).await;
    assert!(!waiting.is_finished());
    let worker = kv.clone();
    tokio::spawn(async move {
        let report = Report {
            job: 7,
            rows: vec!["a".into(), "b".into()],
        };
        worker.set("7:result", &report).await.unwrap();
    });
    let report = timeout(b.units(10), waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        report,
        Report {
            job: 7,
            rows: vec!["a".into(), "b".into()]
        }
    );
    // A key that already holds a value answers at once.
    assert_eq!(kv.wait_for_as::<Report>("7:result").await.unwrap(), report);
}

async fn rule_24_wait_for_as_of_a_value_that_does_not_fit_is_deserialize_and_the_value_stays(
    b: &impl Backend,
) {
    let kv = b.kv().await.with_prefix("jobs:");
    let waiter = kv.clone();
    let waiting = tokio::spawn(async move { waiter.wait_for_as::<Report>("7:result").await });
    b.pass(1).await;
    kv.set("7:result", json!({"job": "seven"})).await.unwrap();
    let result = timeout(b.units(10), waiting).await.unwrap().unwrap();
    match result {
        Err(KvError::Deserialize { key, source }) => {
            assert_eq!(key, b.full("jobs:7:result"));
            assert!(!source.to_string().is_empty());
        }
        other => panic!("expected Deserialize, got {other:?}"),
    }
    assert_eq!(
        kv.get("7:result").await.unwrap().as_deref(),
        Some(&json!({"job": "seven"}))
    );
    // At once, too.
    assert!(matches!(
        kv.wait_for_as::<Report>("7:result").await,
        Err(KvError::Deserialize { key, .. }) if key == b.full("jobs:7:result")
    ));
    assert!(kv.exists("7:result").await.unwrap());
}

async fn rule_25_stats_counts_entries_and_commands(b: &impl Backend) {
    let kv = b.kv().await;
    kv.mset([("a", 1), ("b", 2), ("c", 3)]).await.unwrap();
    let stats = kv.stats().await.unwrap();
    assert_eq!(stats.entries, 3);
    assert_eq!(stats.commands, 2); // the mset and this stats
    assert_eq!(stats.mailbox_depth, 0);
}

/// Rules 15, 18 and 19: concurrent `incr`, `update` and `transaction` lose nothing, and appended
/// items are popped exactly once.
async fn rule_15_18_19_concurrent_callers_lose_nothing(b: &impl Backend) {
    let kv = b.kv().await;
    crate::support::races::inbox_and_counters(&[kv], 16, 20).await;
}
