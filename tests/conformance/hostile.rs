//! Hostile input, on both backends: what no caller would choose, yet must never take the store
//! down or leave it half-changed.
//!
//! - Rule 28 (depth): a value may nest [`MAX_DEPTH`] (128) levels (`[]` is one), a list item one
//!   level less; every write accepts exactly that and reads it back equal, and refuses one level
//!   more with `KvError::TooDeep` naming the full key, changing nothing, from the caller or from a
//!   closure. A value thousands of levels deep is in `tests/faults.rs` (in-process only).
//! - Rules 18 and 19 (closures): a panic whose payload panics on drop is caught as
//!   `UpdatePanicked`/`TransactionPanicked`; a closure whose captures panic on drop is dropped
//!   quietly, and the call succeeds; either way the store keeps serving.
//! - Rule 29 (re-entrancy): a call on the same store from inside one of its closures fails at once
//!   with `KvError::Reentrant` instead of stalling the owner task. A call on another store from
//!   inside a closure is in `tests/local/coordination.rs`.

use std::sync::{Arc, Mutex};

use ephemeral_kv::{KvError, KvHandle, MAX_DEPTH};
use futures::FutureExt;
use serde_json::{json, Value};

use crate::backend::Backend;

conformance!(
    rule_28_max_depth_values_are_accepted_by_every_write_and_read_back_equal,
    rule_28_one_level_past_max_depth_is_refused_with_too_deep_naming_the_full_key_and_changes_nothing,
    rule_28_list_items_that_would_nest_the_list_past_max_depth_are_refused_with_too_deep,
    rule_28_an_update_closure_returning_a_too_deep_value_gets_too_deep_and_the_key_keeps_its_value,
    rule_28_a_transaction_staging_a_too_deep_value_fails_with_too_deep_and_applies_none_of_its_writes,
    rule_18_19_a_panic_whose_payload_panics_on_drop_is_caught_and_the_store_keeps_serving,
    rule_18_19_closures_whose_captures_panic_on_drop_succeed_and_the_store_keeps_serving,
    rule_29_a_call_on_the_same_store_from_inside_a_closure_fails_at_once_with_reentrant,
    rule_13_a_float_with_no_json_form_is_refused_by_every_write_and_changes_nothing,
);

/// `levels` nested arrays around `1`: `nested(0)` is `1`, `nested(1)` is `[1]`.
fn nested(levels: usize) -> Value {
    let mut value = json!(1);
    for _ in 0..levels {
        value = Value::Array(vec![value]);
    }
    value
}

/// `levels` levels alternating objects and arrays around `"leaf"`, objects outermost.
fn nested_mixed(levels: usize) -> Value {
    let mut value = json!("leaf");
    for level in (0..levels).rev() {
        value = if level % 2 == 0 {
            json!({ "a": value, "n": level })
        } else {
            Value::Array(vec![json!(level), value])
        };
    }
    value
}

/// Whether `result` is the refusal of a value deeper than `MAX_DEPTH` for the full key `key`.
fn is_too_deep<T: std::fmt::Debug>(result: &Result<T, KvError>, key: &str) -> bool {
    matches!(result, Err(KvError::TooDeep { key: k, limit: 128 }) if k == key)
}

#[test]
fn the_depth_helpers_count_levels_as_the_store_does() {
    assert_eq!(MAX_DEPTH, 128);
    assert_eq!(nested(0), json!(1));
    assert_eq!(nested(2), json!([[1]]));
    assert_eq!(nested_mixed(2), json!({"a": [1, "leaf"], "n": 0}));
}

async fn rule_28_max_depth_values_are_accepted_by_every_write_and_read_back_equal(
    b: &impl Backend,
) {
    let kv = b.kv().await;
    let deepest = nested(MAX_DEPTH);
    let mixed = nested_mixed(MAX_DEPTH);
    kv.set("set", deepest.clone()).await.unwrap();
    kv.set("mixed", &mixed).await.unwrap();
    kv.mset([("m1", deepest.clone()), ("m2", json!(2))])
        .await
        .unwrap();
    // A list is one level itself: its items may nest one level less.
    assert_eq!(
        kv.list_push("push", [nested(MAX_DEPTH - 1)]).await.unwrap(),
        1
    );
    let item = json!({"id": 1, "deep": nested(MAX_DEPTH - 2)}); // 127 levels
    let list = kv.list_append_unique("lau", [item.clone()]).await.unwrap();
    assert_eq!(list, vec![item.clone()]);
    assert!(kv.set_if_absent("sia", deepest.clone()).await.unwrap());
    assert!(kv
        .compare_and_set("cas", None, deepest.clone())
        .await
        .unwrap());
    // The expected value may be as deep, too.
    assert!(kv
        .compare_and_set("cas", Some(deepest.clone()), mixed.clone())
        .await
        .unwrap());
    let made = kv.update("upd", |_| Some(nested(MAX_DEPTH))).await.unwrap();
    assert_eq!(made.as_deref(), Some(&deepest));
    kv.transaction(|txn| txn.set("txn", nested(MAX_DEPTH)))
        .await
        .unwrap();

    let keys = [
        "set", "mixed", "m1", "push", "lau", "sia", "cas", "upd", "txn",
    ];
    let expected: Vec<Option<Arc<Value>>> = [
        deepest.clone(),
        mixed.clone(),
        deepest.clone(),
        json!([nested(MAX_DEPTH - 1)]),
        json!([item]),
        deepest.clone(),
        mixed.clone(),
        deepest.clone(),
        deepest.clone(),
    ]
    .into_iter()
    .map(|value| Some(Arc::new(value)))
    .collect();
    assert!(
        kv.mget(keys).await.unwrap() == expected,
        "a value did not read back equal"
    );
    assert_eq!(kv.get("set").await.unwrap().as_deref(), Some(&deepest));
    // Typed reads and the list calls read them back too.
    assert_eq!(kv.get_as::<Value>("mixed").await.unwrap(), Some(mixed));
    assert_eq!(
        kv.list_pop_all("push").await.unwrap(),
        vec![nested(MAX_DEPTH - 1)]
    );
    assert_eq!(kv.get_del("m1").await.unwrap(), Some(deepest));
}

async fn rule_28_one_level_past_max_depth_is_refused_with_too_deep_naming_the_full_key_and_changes_nothing(
    b: &impl Backend,
) {
    let root = b.kv().await;
    let kv = root.with_prefix("app:");
    let full = |key: &str| b.full(&format!("app:{key}"));
    let too_deep = || nested(MAX_DEPTH + 1);
    kv.set("k", "before").await.unwrap();
    kv.set("l", json!([{"id": 0}])).await.unwrap();

    assert!(is_too_deep(&kv.set("k", too_deep()).await, &full("k")));
    assert!(is_too_deep(
        &kv.set("k", nested_mixed(MAX_DEPTH + 1)).await,
        &full("k")
    ));
    let refused = kv.mset([("fresh", json!(1)), ("k", too_deep())]).await;
    assert!(is_too_deep(&refused, &full("k")), "{refused:?}");
    let refused = kv.list_push("l", [json!(1), too_deep()]).await;
    assert!(is_too_deep(&refused, &full("l")), "{refused:?}");
    let refused = kv
        .list_append_unique("l", [json!({"id": 1, "deep": nested(MAX_DEPTH)})])
        .await;
    assert!(is_too_deep(&refused, &full("l")), "{refused:?}");
    assert!(is_too_deep(
        &kv.set_if_absent("absent", too_deep()).await,
        &full("absent")
    ));
    assert!(is_too_deep(
        &kv.compare_and_set("k", Some(json!("before")), too_deep())
            .await,
        &full("k")
    ));
    // A too-deep expected value is refused the same way, before it is compared with anything.
    assert!(is_too_deep(
        &kv.compare_and_set("k", Some(too_deep()), "after").await,
        &full("k")
    ));

    let err = kv.set("k", too_deep()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "value for key `{}` nests deeper than 128 levels; store deep structures flattened or \
             as text",
            full("k")
        )
    );
    assert_eq!(
        kv.mget(["k", "l", "fresh", "absent"]).await.unwrap(),
        vec![
            Some(Arc::new(json!("before"))),
            Some(Arc::new(json!([{"id": 0}]))),
            None,
            None
        ]
    );
    assert_eq!(root.scan_prefix("").await.unwrap(), vec!["app:k", "app:l"]);
}

/// A list is a level itself: an item of `MAX_DEPTH` levels would make the stored list one level
/// deeper than any value the store accepts, and than the Redis backend can read back (where such a
/// list could then be neither read nor popped). Regression: items were checked against
/// `MAX_DEPTH` itself.
async fn rule_28_list_items_that_would_nest_the_list_past_max_depth_are_refused_with_too_deep(
    b: &impl Backend,
) {
    let kv = b.kv().await;
    let pushed = kv.list_push("push", [nested(MAX_DEPTH)]).await;
    assert!(is_too_deep(&pushed, &b.full("push")), "{pushed:?}");
    let item = json!({"id": 1, "deep": nested(MAX_DEPTH - 1)}); // 128 levels
    let appended = kv.list_append_unique("lau", [item]).await;
    assert!(is_too_deep(&appended, &b.full("lau")), "{appended:?}");
    assert_eq!(kv.scan_prefix("").await.unwrap(), Vec::<String>::new());
}

async fn rule_28_an_update_closure_returning_a_too_deep_value_gets_too_deep_and_the_key_keeps_its_value(
    b: &impl Backend,
) {
    let kv = b.kv().await;
    kv.set("k", "old").ttl(b.units(50)).await.unwrap();
    let result = kv.update("k", |_| Some(nested(MAX_DEPTH + 1))).await;
    assert!(is_too_deep(&result, &b.full("k")), "{result:?}");
    let result = kv.update("new", |_| Some(nested(MAX_DEPTH + 1))).await;
    assert!(is_too_deep(&result, &b.full("new")), "{result:?}");
    assert_eq!(
        kv.mget(["k", "new"]).await.unwrap(),
        vec![Some(Arc::new(json!("old"))), None]
    );
    b.assert_ttl(kv.ttl("k").await.unwrap(), 50, 0);
    // The store keeps serving, closures included.
    let made = kv.update("k", |_| Some(json!("new"))).await.unwrap();
    assert_eq!(made.as_deref(), Some(&json!("new")));
}

async fn rule_28_a_transaction_staging_a_too_deep_value_fails_with_too_deep_and_applies_none_of_its_writes(
    b: &impl Backend,
) {
    let kv = b.kv().await.with_prefix("app:");
    kv.mset([("a", 1), ("gone", 2)]).await.unwrap();
    let result = kv
        .transaction(|txn| {
            txn.set("a", 100);
            txn.delete("gone");
            txn.set("deep", nested(MAX_DEPTH + 1));
            txn.set("after", 3);
            "returned"
        })
        .await;
    assert!(is_too_deep(&result, &b.full("app:deep")), "{result:?}");
    assert_eq!(
        kv.mget(["a", "gone", "deep", "after"]).await.unwrap(),
        vec![
            Some(Arc::new(json!(1))),
            Some(Arc::new(json!(2))),
            None,
            None
        ]
    );
    // The next transaction runs as normal.
    assert!(kv.transaction(|txn| txn.delete("gone")).await.unwrap());
}

/// A panic payload, or a captured value, whose `Drop` panics.
struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("PanicsOnDrop dropped");
    }
}

async fn rule_18_19_a_panic_whose_payload_panics_on_drop_is_caught_and_the_store_keeps_serving(
    b: &impl Backend,
) {
    let kv = b.kv().await;
    kv.set("k", 1).await.unwrap();
    let result = kv
        .update("k", |_| -> Option<Value> {
            std::panic::panic_any(PanicsOnDrop)
        })
        .await;
    match result {
        Err(KvError::UpdatePanicked { key, message }) => assert_eq!(
            (key, message.as_str()),
            (b.full("k"), "a panic with a non-string payload")
        ),
        other => panic!("expected UpdatePanicked, got {other:?}"),
    }
    let result = kv
        .transaction(|txn| {
            txn.set("k", 2);
            txn.set("t", 2);
            std::panic::panic_any(PanicsOnDrop)
        })
        .await;
    match result {
        Err(KvError::TransactionPanicked { prefix, message }) => assert_eq!(
            (prefix.as_str(), message.as_str()),
            (b.prefix(), "a panic with a non-string payload")
        ),
        other => panic!("expected TransactionPanicked, got {other:?}"),
    }
    assert_eq!(
        kv.mget(["k", "t"]).await.unwrap(),
        vec![Some(Arc::new(json!(1))), None]
    );
    kv.set("after", "still serving").await.unwrap();
    assert_eq!(
        kv.get("after").await.unwrap().as_deref(),
        Some(&json!("still serving"))
    );
    assert!(!kv.is_closed());
}

async fn rule_18_19_closures_whose_captures_panic_on_drop_succeed_and_the_store_keeps_serving(
    b: &impl Backend,
) {
    let kv = b.kv().await;
    kv.set("k", 1).await.unwrap();
    // The closure runs to the end and its value is stored; dropping it afterwards panics, which
    // the executor catches and ignores.
    let guard = PanicsOnDrop;
    let made = kv
        .update("k", move |cur| {
            let _held = &guard;
            Some(json!(cur.and_then(Value::as_i64).unwrap_or(0) + 1))
        })
        .await;
    assert_eq!(made.unwrap().as_deref(), Some(&json!(2)));
    let guard = PanicsOnDrop;
    let returned = kv
        .transaction(move |txn| {
            let _held = &guard;
            txn.set("t", "written");
            "returned"
        })
        .await;
    assert_eq!(returned.unwrap(), "returned");
    assert_eq!(
        kv.mget(["k", "t"]).await.unwrap(),
        vec![Some(Arc::new(json!(2))), Some(Arc::new(json!("written")))]
    );
    kv.set("after", 3).await.unwrap();
    assert_eq!(kv.get("after").await.unwrap().as_deref(), Some(&json!(3)));
    assert!(!kv.is_closed());
}

/// What a closure saw of calls on its own store, made from inside it.
#[derive(Debug, Default)]
struct Seen {
    /// Each call polled once: `None` would mean it was sent and is waiting for the owner task.
    polled_once: Vec<Option<Result<(), KvError>>>,
    /// `futures::executor::block_on(kv.get(..))`, which would stall the store if sent.
    blocked_on: Option<Result<Option<Arc<Value>>, KvError>>,
}

/// Makes calls on `kv` (a handle of the store whose closure is running) and notes what came back.
fn call_back_into(kv: &KvHandle) -> Seen {
    // One poll each: a call refused at once is ready; one that was sent would wait for the owner
    // task, which is busy running this closure.
    let polled_once = vec![
        kv.get("x").map(|r| r.map(drop)).now_or_never(),
        kv.set("x", 1).map(|r| r.map(drop)).now_or_never(),
        kv.wait_for("x").map(|r| r.map(drop)).now_or_never(),
        kv.with_prefix("p:")
            .exists("x")
            .map(|r| r.map(drop))
            .now_or_never(),
    ];
    let blocked_on = Some(futures::executor::block_on(kv.get("x")));
    Seen {
        polled_once,
        blocked_on,
    }
}

fn assert_refused_at_once(seen: &Seen) {
    let ops: Vec<_> = seen
        .polled_once
        .iter()
        .map(|call| match call {
            Some(Err(KvError::Reentrant { op })) => *op,
            other => panic!("expected Reentrant at once, got {other:?}"),
        })
        .collect();
    assert_eq!(ops, ["get", "set", "wait_for", "exists"]);
    assert!(
        matches!(seen.blocked_on, Some(Err(KvError::Reentrant { op: "get" }))),
        "{seen:?}"
    );
}

async fn rule_29_a_call_on_the_same_store_from_inside_a_closure_fails_at_once_with_reentrant(
    b: &impl Backend,
) {
    let kv = b.kv().await;
    kv.set("k", 1).await.unwrap();
    // From an `update` closure: what it saw goes out through a shared slot.
    let slot = Arc::new(Mutex::new(None));
    let (inner, writer) = (kv.clone(), Arc::clone(&slot));
    let made = kv
        .update("k", move |cur| {
            *writer.lock().unwrap() = Some(call_back_into(&inner));
            cur.cloned()
        })
        .await
        .unwrap();
    assert_eq!(made.as_deref(), Some(&json!(1)));
    let seen = slot.lock().unwrap().take().expect("the closure ran");
    assert_refused_at_once(&seen);

    // From a `transaction` closure: what it saw is its result.
    let inner = kv.clone();
    let seen = kv
        .transaction(move |txn| {
            txn.set("t", 1);
            call_back_into(&inner)
        })
        .await
        .unwrap();
    assert_refused_at_once(&seen);
    let err = KvError::Reentrant { op: "get" };
    assert_eq!(
        err.to_string(),
        "`get` was called from inside an `update`/`transaction` closure of the same store, which \
         cannot answer until the closure returns; make the call before or after the closure"
    );

    // The store keeps serving, and the refused `set`s inside wrote nothing.
    assert_eq!(
        kv.mget(["k", "t", "x"]).await.unwrap(),
        vec![Some(Arc::new(json!(1))), Some(Arc::new(json!(1))), None]
    );
    kv.set("x", 2).await.unwrap();
    assert_eq!(*kv.wait_for("x").await.unwrap(), json!(2));
}

/// NaN and the infinities have no JSON form, and serde_json would write them as `null`: every
/// write refuses them with `Serialize`, naming the full key, and nothing changes.
async fn rule_13_a_float_with_no_json_form_is_refused_by_every_write_and_changes_nothing(
    b: &impl Backend,
) {
    let kv = b.kv().await;
    kv.set("k", 1).await.unwrap();
    let is_refused = |result: Result<(), KvError>, key: &str| match result {
        Err(KvError::Serialize { key: named, source }) => {
            assert_eq!(named, b.full(key));
            assert!(source.to_string().contains("NaN or infinite"), "{source}");
        }
        other => panic!("expected Serialize for a non-finite float, got {other:?}"),
    };
    is_refused(kv.set("k", f64::NAN).await, "k");
    is_refused(kv.set("new", vec![1.0, f64::INFINITY]).await, "new");
    is_refused(
        kv.mset([("k", 2.0), ("new", f64::NEG_INFINITY)]).await,
        "new",
    );
    is_refused(kv.set_if_absent("new", f32::NAN).await.map(drop), "new");
    is_refused(
        kv.compare_and_set("k", Some(json!(1)), f64::NAN)
            .await
            .map(drop),
        "k",
    );
    is_refused(kv.list_push("list", [f64::NAN]).await.map(drop), "list");
    is_refused(
        kv.transaction(|txn| {
            txn.set("k", 3);
            txn.set("new", f64::INFINITY);
        })
        .await,
        "new",
    );
    assert_eq!(
        kv.mget(["k", "new", "list"]).await.unwrap(),
        vec![Some(Arc::new(json!(1))), None, None]
    );
}
