//! Rules 1–9 and 11–13 of `docs/rules.md` (the core store), on both backends: expiry is
//! invisible, TTLs are replaced or refused, `list_append_unique`, `list_pop_all`, `mset`, `mget`,
//! `expire`, `purge_expired` (with each backend's count), shutdown, dropped calls, and errors that
//! name the full key (serde's message reachable only through `source()`, so an error chain prints
//! it once). Rule 10 (active expiry) is the in-process owner task's, in `tests/local/core.rs`; rule
//! 14 (logging) is in `tests/tracing.rs`. Also: call values are futures that `join_all` takes.

use std::collections::HashMap;
use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;

use ephemeral_kv::{KvError, Ttl};
use futures::FutureExt;
use serde_json::{json, Value};

use crate::backend::Backend;

conformance!(
    rule_01_an_expired_key_is_invisible_to_every_command,
    rule_01_a_key_is_live_until_its_ttl_runs_out,
    rule_02_writes_without_a_ttl_never_expire_and_drop_an_earlier_ttl,
    rule_02_list_append_unique_with_a_ttl_sets_it_even_when_nothing_is_added,
    rule_03_a_zero_ttl_is_refused_everywhere_and_changes_nothing,
    rule_03_a_ttl_too_large_to_represent_means_never_expires,
    rule_04_list_append_unique_appends_new_ids_and_returns_the_whole_list,
    rule_04_list_append_unique_ids_are_scalars_compared_by_value,
    rule_04_list_append_unique_refuses_bad_items_and_appends_nothing,
    rule_04_list_append_unique_keeps_a_non_list_value,
    rule_04_list_append_unique_keeps_odd_elements_and_starts_empty_lists,
    rule_05_list_pop_all_pops_lists_only,
    rule_06_mset_is_all_or_nothing_and_the_last_duplicate_wins,
    rule_07_mget_keeps_order_and_duplicates,
    rule_08_expire_reports_whether_a_live_key_got_its_ttl,
    rule_09_purge_expired_leaves_expired_keys_invisible,
    rule_11_shutdown_answers_what_was_queued_then_closes_every_handle,
    rule_12_a_dropped_call_never_harms_the_store,
    rule_13_errors_name_the_full_key,
    rule_13_a_handle_shows_its_prefix_and_whether_its_store_runs,
    rule_13_serde_messages_come_only_through_source_so_a_chain_prints_them_once,
    rule_13_an_item_without_its_id_field_points_at_id_key,
    call_values_are_futures_that_combinators_accept,
    values_of_every_json_type_come_back_exactly,
    prefixes_namespace_and_stack,
);

async fn rule_01_an_expired_key_is_invisible_to_every_command(b: &impl Backend) {
    let kv = b.kv().await;
    kv.set("k", 7).ttl(b.unit()).await.unwrap();
    kv.set("l", json!([{"id": 1}])).ttl(b.unit()).await.unwrap();
    for key in ["n", "sia", "cas", "upd", "txn"] {
        kv.set(key, 5).ttl(b.unit()).await.unwrap();
    }
    kv.set("q", json!([1, 2])).ttl(b.unit()).await.unwrap();
    assert_eq!(kv.get("k").await.unwrap().as_deref(), Some(&json!(7)));
    assert_eq!(kv.get_as::<u32>("k").await.unwrap(), Some(7));
    b.pass(2).await;
    assert_eq!(kv.get("k").await.unwrap(), None);
    assert_eq!(kv.get_as::<u32>("k").await.unwrap(), None);
    assert_eq!(kv.mget(["k", "l"]).await.unwrap(), vec![None, None]);
    assert!(!kv.exists("k").await.unwrap());
    assert_eq!(kv.ttl("k").await.unwrap(), Ttl::Missing);
    assert!(!kv.expire("k", b.units(100)).await.unwrap());
    assert!(!kv.persist("k").await.unwrap());
    assert_eq!(kv.get("k").await.unwrap(), None); // not revived
    assert_eq!(kv.get_del("k").await.unwrap(), None);
    assert_eq!(kv.list_pop_all("l").await.unwrap(), Vec::<Value>::new());
    assert_eq!(
        kv.list_pop_front("q", 1).await.unwrap(),
        Vec::<Value>::new()
    );
    assert_eq!(kv.scan_prefix("").await.unwrap(), Vec::<String>::new());
    // Inside a transaction, too: nothing to read, delete or give a TTL.
    let seen = kv
        .transaction(|txn| {
            (
                txn.get("txn").cloned(),
                txn.delete("txn"),
                txn.expire("txn", Duration::from_secs(60)).unwrap(),
            )
        })
        .await
        .unwrap();
    assert_eq!(seen, (None, false, false));
    assert_eq!(kv.incr("n", 1).await.unwrap(), 1); // counts from 0, not 5
    assert!(kv.set_if_absent("sia", 0).await.unwrap()); // absent
                                                        // An expired key never matches its old value, and matches `None`.
    assert!(!kv.compare_and_set("cas", Some(json!(5)), 6).await.unwrap());
    assert!(kv.compare_and_set("cas", None, 6).await.unwrap());
    assert_eq!(kv.ttl("cas").await.unwrap(), Ttl::NoExpiry);
    // `update` sees nothing, and the key it creates never expires.
    let seen = kv
        .update("upd", |cur| Some(json!(cur.is_some())))
        .await
        .unwrap();
    assert_eq!(seen.as_deref(), Some(&json!(false)));
    assert_eq!(kv.ttl("upd").await.unwrap(), Ttl::NoExpiry);
    kv.set("l", json!([{"id": 1}])).ttl(b.unit()).await.unwrap();
    b.pass(2).await;
    let list = kv
        .list_append_unique("l", [json!({"id": 2})])
        .await
        .unwrap();
    assert_eq!(list, vec![json!({"id": 2})]);
}

async fn rule_01_a_key_is_live_until_its_ttl_runs_out(b: &impl Backend) {
    let kv = b.kv().await;
    kv.set("k", 1).ttl(b.units(4)).await.unwrap();
    b.pass(2).await;
    assert_eq!(kv.get("k").await.unwrap().as_deref(), Some(&json!(1)));
    b.pass(3).await;
    assert_eq!(kv.get("k").await.unwrap(), None);
}

async fn rule_02_writes_without_a_ttl_never_expire_and_drop_an_earlier_ttl(b: &impl Backend) {
    let kv = b.kv().await;
    kv.set("set", 1).ttl(b.unit()).await.unwrap();
    kv.set("set", 2).await.unwrap();
    kv.set("mset", 1).ttl(b.unit()).await.unwrap();
    kv.mset([("mset", 2)]).await.unwrap();
    kv.list_append_unique("list", [json!({"id": 1})])
        .ttl(b.unit())
        .await
        .unwrap();
    kv.list_append_unique("list", [json!({"id": 2})])
        .await
        .unwrap();
    kv.list_push("push", [1]).ttl(b.unit()).await.unwrap();
    kv.list_push("push", [2]).await.unwrap();
    kv.set("new_ttl", 1).ttl(b.unit()).await.unwrap();
    kv.set("new_ttl", 2).ttl(b.units(4)).await.unwrap();
    b.pass(2).await;
    assert_eq!(
        kv.mget(["set", "mset", "new_ttl"]).await.unwrap(),
        vec![
            Some(Arc::new(json!(2))),
            Some(Arc::new(json!(2))),
            Some(Arc::new(json!(2)))
        ]
    );
    assert_eq!(
        kv.get("list").await.unwrap().as_deref(),
        Some(&json!([{"id": 1}, {"id": 2}]))
    );
    assert_eq!(
        kv.get("push").await.unwrap().as_deref(),
        Some(&json!([1, 2]))
    );
    for key in ["set", "mset", "list", "push"] {
        assert_eq!(kv.ttl(key).await.unwrap(), Ttl::NoExpiry, "{key}");
    }
    // The new TTL replaced the old one, and runs out in its turn.
    b.assert_ttl(kv.ttl("new_ttl").await.unwrap(), 4, 2);
    b.pass(3).await;
    assert_eq!(kv.get("new_ttl").await.unwrap(), None);
}

async fn rule_02_list_append_unique_with_a_ttl_sets_it_even_when_nothing_is_added(
    b: &impl Backend,
) {
    let kv = b.kv().await;
    kv.list_append_unique("l", [json!({"id": 1})])
        .await
        .unwrap();
    kv.list_append_unique("l", [json!({"id": 1})])
        .ttl(b.units(3))
        .await
        .unwrap();
    b.assert_ttl(kv.ttl("l").await.unwrap(), 3, 0);
    b.pass(4).await;
    assert_eq!(kv.get("l").await.unwrap(), None);
}

fn is_invalid_ttl(result: Result<impl std::fmt::Debug, KvError>, key: &str) -> bool {
    matches!(result, Err(KvError::InvalidTtl { key: k, ttl }) if k == key && ttl.is_zero())
}

async fn rule_03_a_zero_ttl_is_refused_everywhere_and_changes_nothing(b: &impl Backend) {
    let kv = b.kv().await;
    let zero = std::time::Duration::ZERO;
    kv.set("k", 1).ttl(b.units(10)).await.unwrap();
    kv.list_append_unique("kept", [json!({"id": 1})])
        .await
        .unwrap();
    let k = b.full("k");
    let refused = kv.set("k", 2).ttl(zero).await;
    assert_eq!(
        refused.as_ref().unwrap_err().to_string(),
        format!("TTL for key `{k}` must be greater than zero, got 0ns")
    );
    assert!(is_invalid_ttl(refused, &k));
    assert!(is_invalid_ttl(kv.expire("k", zero).await, &k));
    // `mset` names its first key.
    assert!(is_invalid_ttl(
        kv.mset([("k", 3), ("m", 3)]).ttl(zero).await,
        &k
    ));
    assert!(is_invalid_ttl(
        kv.list_append_unique("l", [json!({"id": 1})])
            .ttl(zero)
            .await,
        &b.full("l")
    ));
    assert!(is_invalid_ttl(
        kv.list_append_unique("kept", [json!({"id": 2})])
            .ttl(zero)
            .await,
        &b.full("kept")
    ));
    assert!(is_invalid_ttl(
        kv.list_push("p", [1]).ttl(zero).await,
        &b.full("p")
    ));
    assert!(is_invalid_ttl(
        kv.incr("n", 1).ttl(zero).await,
        &b.full("n")
    ));
    assert!(is_invalid_ttl(
        kv.set_if_absent("a", 1).ttl(zero).await,
        &b.full("a")
    ));
    assert!(is_invalid_ttl(
        kv.compare_and_set("k", Some(json!(1)), 9).ttl(zero).await,
        &k
    ));
    assert_eq!(kv.get("k").await.unwrap().as_deref(), Some(&json!(1)));
    b.assert_ttl(kv.ttl("k").await.unwrap(), 10, 0);
    assert_eq!(
        kv.mget(["m", "l", "p", "n", "a"]).await.unwrap(),
        vec![None, None, None, None, None]
    );
    assert_eq!(
        kv.get("kept").await.unwrap().as_deref(),
        Some(&json!([{"id": 1}]))
    );
}

async fn rule_03_a_ttl_too_large_to_represent_means_never_expires(b: &impl Backend) {
    let kv = b.kv().await;
    let huge = std::time::Duration::MAX;
    kv.set("set", 1).ttl(huge).await.unwrap();
    kv.mset([("mset", 1)]).ttl(huge).await.unwrap();
    kv.list_append_unique("list", [json!({"id": 1})])
        .ttl(huge)
        .await
        .unwrap();
    kv.list_push("push", [1]).ttl(huge).await.unwrap();
    kv.set("expire", 1).ttl(b.unit()).await.unwrap();
    assert!(kv.expire("expire", huge).await.unwrap());
    assert_eq!(kv.incr("incr", 1).ttl(huge).await.unwrap(), 1);
    assert!(kv.set_if_absent("sia", 1).ttl(huge).await.unwrap());
    assert!(kv.compare_and_set("cas", None, 1).ttl(huge).await.unwrap());
    b.pass(2).await;
    for key in [
        "set", "mset", "list", "push", "expire", "incr", "sia", "cas",
    ] {
        assert_eq!(kv.ttl(key).await.unwrap(), Ttl::NoExpiry, "{key}");
    }
}

async fn rule_04_list_append_unique_appends_new_ids_and_returns_the_whole_list(b: &impl Backend) {
    let kv = b.kv().await;
    let first = kv
        .list_append_unique("users", vec![json!({"id": 1, "name": "Alice"})])
        .await
        .unwrap();
    assert_eq!(first, vec![json!({"id": 1, "name": "Alice"})]);
    let users = kv
        .list_append_unique(
            "users",
            vec![
                json!({"id": 1, "name": "Alice again"}),
                json!({"id": 2, "name": "Bob"}),
                json!({"id": 2, "name": "Bob again"}), // earlier in the same call wins
                json!({"id": "1", "name": "a string id is another id"}),
            ],
        )
        .await
        .unwrap();
    let expected = vec![
        json!({"id": 1, "name": "Alice"}),
        json!({"id": 2, "name": "Bob"}),
        json!({"id": "1", "name": "a string id is another id"}),
    ];
    assert_eq!(users, expected);
    assert_eq!(
        kv.get("users").await.unwrap().as_deref(),
        Some(&Value::Array(expected))
    );
    // With `id_key`, that field is the id and `id` is an ordinary field.
    let tasks = kv
        .list_append_unique(
            "tasks",
            vec![
                json!({"task_id": 42, "id": 1, "desc": "Review PR"}),
                json!({"task_id": 42, "desc": "dup"}),
                json!({"task_id": 42.0, "desc": "the same number"}),
                json!({"task_id": 43, "id": 1, "desc": "the same `id`, another task"}),
                json!({"task_id": null, "desc": "null id"}),
                json!({"task_id": 1.5, "desc": "a float id"}),
            ],
        )
        .id_key("task_id")
        .await
        .unwrap();
    assert_eq!(
        tasks,
        vec![
            json!({"task_id": 42, "id": 1, "desc": "Review PR"}),
            json!({"task_id": 43, "id": 1, "desc": "the same `id`, another task"}),
            json!({"task_id": null, "desc": "null id"}),
            json!({"task_id": 1.5, "desc": "a float id"}),
        ]
    );
    // Typed items are serialized first.
    #[derive(serde::Serialize)]
    struct Task {
        id: u32,
        desc: &'static str,
    }
    let typed = kv
        .list_append_unique(
            "typed",
            vec![Task { id: 1, desc: "a" }, Task { id: 1, desc: "dup" }],
        )
        .await
        .unwrap();
    assert_eq!(typed, vec![json!({"id": 1, "desc": "a"})]);
}

/// Ids compare as JSON scalars, numbers by value (`1` and `1.0` are one id, as in the reference
/// and on Redis); a list or an object is no id: the call is refused and appends nothing.
async fn rule_04_list_append_unique_ids_are_scalars_compared_by_value(b: &impl Backend) {
    let kv = b.kv().await;
    let list = kv
        .list_append_unique(
            "l",
            [json!({"id": 1}), json!({"id": 1.0}), json!({"id": 1e0})],
        )
        .await
        .unwrap();
    assert_eq!(list, vec![json!({"id": 1})]);
    for bad in [json!({"id": [1]}), json!({"id": {}}), json!({"id": []})] {
        let refused = kv.list_append_unique("l", [json!({"id": 2}), bad]).await;
        match refused {
            Err(KvError::InvalidItem {
                index: 1, reason, ..
            }) => {
                assert!(
                    reason.contains("ids must be strings, numbers, booleans or null"),
                    "{reason}"
                )
            }
            other => panic!("expected InvalidItem, got {other:?}"),
        }
    }
    assert_eq!(
        kv.get("l").await.unwrap().as_deref(),
        Some(&json!([{"id": 1}]))
    );
}

async fn rule_04_list_append_unique_refuses_bad_items_and_appends_nothing(b: &impl Backend) {
    let kv = b.kv().await;
    kv.list_append_unique("l", [json!({"id": 1})])
        .await
        .unwrap();
    let not_object = kv
        .list_append_unique("l", [json!({"id": 2}), json!("text")])
        .await
        .unwrap_err();
    assert!(
        matches!(&not_object, KvError::InvalidItem { key, index: 1, .. } if *key == b.full("l")),
        "{not_object:?}"
    );
    assert_eq!(
        not_object.to_string(),
        format!(
            "item 1 for key `{}` is invalid: it is a string, not a JSON object",
            b.full("l")
        )
    );
    let no_id = kv
        .list_append_unique("l", [json!({"id": 3}), json!({"name": "x"})])
        .await;
    assert!(matches!(no_id, Err(KvError::InvalidItem { index: 1, .. })));
    assert_eq!(
        kv.get("l").await.unwrap().as_deref(),
        Some(&json!([{"id": 1}]))
    );
    // A refused call on a missing key creates nothing.
    let no_id = kv
        .list_append_unique("new", [json!({"id": 1}), json!({"name": "no id"})])
        .await
        .unwrap_err();
    assert_eq!(
        no_id.to_string(),
        format!(
            "item 1 for key `{}` is invalid: it has no `id` field (to use another field as the \
             id, call `.id_key(\"field\")`)",
            b.full("new")
        )
    );
    assert!(!kv.exists("new").await.unwrap());
}

async fn rule_04_list_append_unique_keeps_a_non_list_value(b: &impl Backend) {
    let kv = b.kv().await;
    for (key, value, found) in [
        ("s", json!("Alice"), "a string"),
        ("o", json!({"id": 1}), "an object"),
        ("n", json!(1.5), "a number"),
        ("b", json!(true), "a boolean"),
        ("z", Value::Null, "null"),
    ] {
        kv.set(key, value.clone()).await.unwrap();
        let err = kv
            .list_append_unique(key, [json!({"id": 1})])
            .await
            .unwrap_err();
        match err {
            KvError::WrongType {
                key: k,
                expected,
                found: f,
            } => assert_eq!((k, expected, f), (b.full(key), "a list", found)),
            other => panic!("{key}: {other:?}"),
        }
        assert_eq!(kv.get(key).await.unwrap().as_deref(), Some(&value));
    }
}

async fn rule_04_list_append_unique_keeps_odd_elements_and_starts_empty_lists(b: &impl Backend) {
    let kv = b.kv().await;
    let odd = json!([
        1,
        "x",
        {"name": "no id"},
        {"id": 1},
        [],
        {},
        12345678901234567890u64,
        {"id": [2]},
        {"id": {"n": 2}}
    ]);
    kv.set("l", odd.clone()).await.unwrap();
    let list = kv
        .list_append_unique("l", [json!({"id": 1}), json!({"id": 2})])
        .await
        .unwrap();
    let mut expected = odd.as_array().unwrap().clone();
    expected.push(json!({"id": 2}));
    assert_eq!(list, expected);
    assert_eq!(
        kv.get("l").await.unwrap().as_deref(),
        Some(&Value::Array(expected))
    );
    // `null` is an id like any other scalar.
    kv.set("nulls", json!(["text", {"name": "no id"}, {"id": null}]))
        .await
        .unwrap();
    let list = kv
        .list_append_unique("nulls", [json!({"id": 1}), json!({"id": null, "x": 1})])
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
    let empty = kv
        .list_append_unique("new", Vec::<Value>::new())
        .await
        .unwrap();
    assert_eq!(empty, Vec::<Value>::new());
    assert_eq!(kv.get("new").await.unwrap().as_deref(), Some(&json!([])));
    kv.set("empty", json!([])).await.unwrap();
    let one = kv
        .list_append_unique("empty", [json!({"id": 1})])
        .await
        .unwrap();
    assert_eq!(one, vec![json!({"id": 1})]);
}

async fn rule_05_list_pop_all_pops_lists_only(b: &impl Backend) {
    let kv = b.kv().await;
    kv.list_append_unique("inbox", [json!({"id": 1}), json!({"id": 2})])
        .await
        .unwrap();
    assert_eq!(
        kv.list_pop_all("inbox").await.unwrap(),
        vec![json!({"id": 1}), json!({"id": 2})]
    );
    assert!(!kv.exists("inbox").await.unwrap());
    assert_eq!(kv.list_pop_all("inbox").await.unwrap(), Vec::<Value>::new());
    kv.set("events", json!(["a", "b"])).await.unwrap();
    assert_eq!(
        kv.list_pop_all("events").await.unwrap(),
        vec![json!("a"), json!("b")]
    );
    kv.set("name", "Alice").await.unwrap();
    assert_eq!(kv.list_pop_all("name").await.unwrap(), Vec::<Value>::new());
    assert_eq!(
        kv.get("name").await.unwrap().as_deref(),
        Some(&json!("Alice"))
    );
}

async fn rule_06_mset_is_all_or_nothing_and_the_last_duplicate_wins(b: &impl Backend) {
    let kv = b.kv().await;
    // An empty map serializes; one with non-string keys does not.
    let fine: HashMap<(u8, u8), u8> = HashMap::new();
    let bad: HashMap<(u8, u8), u8> = HashMap::from([((1, 2), 3)]);
    let failed = kv.mset([("a", fine.clone()), ("b", bad)]).await;
    assert!(
        matches!(&failed, Err(KvError::Serialize { key, .. }) if *key == b.full("b")),
        "{failed:?}"
    );
    let failed = kv
        .mset([("c", fine.clone()), ("d", fine)])
        .ttl(std::time::Duration::ZERO)
        .await;
    assert!(matches!(failed, Err(KvError::InvalidTtl { .. })));
    assert_eq!(
        kv.mget(["a", "b", "c", "d"]).await.unwrap(),
        vec![None, None, None, None]
    );
    kv.mset([("x", 1), ("y", 2), ("x", 3)]).await.unwrap();
    assert_eq!(
        kv.mget(["x", "y"]).await.unwrap(),
        vec![Some(Arc::new(json!(3))), Some(Arc::new(json!(2)))]
    );
    kv.mset([("t1", "a"), ("t2", "b")])
        .ttl(b.units(2))
        .await
        .unwrap();
    b.assert_ttl(kv.ttl("t2").await.unwrap(), 2, 0);
    b.pass(3).await;
    assert_eq!(kv.mget(["t1", "t2"]).await.unwrap(), vec![None, None]);
    kv.mset(Vec::<(&str, Value)>::new()).await.unwrap();
    // Any collection of pairs will do, a map included.
    let map: HashMap<String, Value> = HashMap::from([("map".into(), json!({"n": 1}))]);
    kv.mset(map).await.unwrap();
    assert_eq!(
        kv.get("map").await.unwrap().as_deref(),
        Some(&json!({"n": 1}))
    );
}

async fn rule_07_mget_keeps_order_and_duplicates(b: &impl Backend) {
    let kv = b.kv().await;
    kv.set("bar", "bar_value").await.unwrap();
    kv.set("baz", 3).await.unwrap();
    assert_eq!(
        kv.mget(["foo", "bar", "baz", "bar"]).await.unwrap(),
        vec![
            None,
            Some(Arc::new(json!("bar_value"))),
            Some(Arc::new(json!(3))),
            Some(Arc::new(json!("bar_value")))
        ]
    );
    assert_eq!(
        kv.mget(Vec::<String>::new()).await.unwrap(),
        Vec::<Option<Arc<Value>>>::new()
    );
    // Borrowed and owned `String` keys alike.
    let keys: Vec<String> = ["baz", "foo", "baz"].map(String::from).to_vec();
    let expected = vec![Some(Arc::new(json!(3))), None, Some(Arc::new(json!(3)))];
    assert_eq!(kv.mget(&keys).await.unwrap(), expected);
    assert_eq!(kv.mget(keys).await.unwrap(), expected);
}

async fn rule_08_expire_reports_whether_a_live_key_got_its_ttl(b: &impl Backend) {
    let kv = b.kv().await;
    kv.set("k", 1).await.unwrap();
    assert!(kv.expire("k", b.units(2)).await.unwrap());
    b.assert_ttl(kv.ttl("k").await.unwrap(), 2, 0);
    assert!(!kv.expire("missing", b.units(2)).await.unwrap());
    assert!(!kv.exists("missing").await.unwrap());
    b.pass(1).await;
    // A new TTL counts from now, not from the earlier one.
    assert!(kv.expire("k", b.units(3)).await.unwrap());
    b.assert_ttl(kv.ttl("k").await.unwrap(), 3, 0);
    b.pass(2).await; // past the first TTL
    assert_eq!(kv.get("k").await.unwrap().as_deref(), Some(&json!(1)));
    b.pass(2).await;
    assert_eq!(kv.get("k").await.unwrap(), None);
}

async fn rule_09_purge_expired_leaves_expired_keys_invisible(b: &impl Backend) {
    let kv = b
        .build(ephemeral_kv::KvHandle::builder().active_expiry(false))
        .await;
    kv.set("a", 1).ttl(b.unit()).await.unwrap();
    kv.set("b", 1).ttl(b.unit()).await.unwrap();
    kv.set("keep", 1).await.unwrap();
    b.pass(2).await;
    assert_eq!(kv.purge_expired().limit(1000).await.unwrap(), b.purged(2));
    assert_eq!(kv.purge_expired().await.unwrap(), 0);
    assert_eq!(kv.scan_prefix("").await.unwrap(), vec!["keep"]);
}

async fn rule_11_shutdown_answers_what_was_queued_then_closes_every_handle(b: &impl Backend) {
    let kv = b.kv().await;
    let clone = kv.clone();
    let prefixed = kv.with_prefix("p:");
    let (set, (), get) = tokio::join!(
        kv.set("k", 1).into_future(),
        kv.shutdown(),
        prefixed.get("k").into_future()
    );
    set.unwrap(); // queued before the shutdown: answered
    assert!(matches!(get, Err(KvError::Closed))); // queued after it
    assert!(kv.is_closed() && clone.is_closed() && prefixed.is_closed());
    assert!(matches!(clone.get("k").await, Err(KvError::Closed)));
    assert!(matches!(clone.set("k", 2).await, Err(KvError::Closed)));
    assert!(matches!(prefixed.set("k", 2).await, Err(KvError::Closed)));
    assert!(matches!(kv.purge_expired().await, Err(KvError::Closed)));
    assert!(matches!(kv.list_pop_all("k").await, Err(KvError::Closed)));
    assert_eq!(KvError::Closed.to_string(), "the store was shut down");
    clone.shutdown().await; // already stopped: returns at once
}

async fn rule_12_a_dropped_call_never_harms_the_store(b: &impl Backend) {
    let kv = b.kv().await;
    kv.list_append_unique("l", [json!({"id": 1})])
        .await
        .unwrap();
    // Polled once (so the command is sent), then dropped.
    let mut call = kv.list_append_unique("l", [json!({"id": 2})]).into_future();
    let _ = (&mut call).now_or_never();
    drop(call);
    let never_polled = kv.set("untouched", 1);
    drop(never_polled);
    let list = kv
        .list_append_unique("l", [json!({"id": 3})])
        .await
        .unwrap();
    assert!(
        list == vec![json!({"id": 1}), json!({"id": 2}), json!({"id": 3})]
            || list == vec![json!({"id": 1}), json!({"id": 3})],
        "{list:?}"
    );
    assert_eq!(kv.get("untouched").await.unwrap(), None);
}

async fn rule_13_errors_name_the_full_key(b: &impl Backend) {
    let kv = b.kv().await;
    kv.set("name", "Alice").await.unwrap();
    let err = kv
        .list_append_unique("name", [json!({"id": 1})])
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "key `{}` holds a string, but this call needs a list",
            b.full("name")
        )
    );
    let err = kv.get_as::<u64>("name").await.unwrap_err();
    assert!(matches!(&err, KvError::Deserialize { key, .. } if *key == b.full("name")));
    assert!(std::error::Error::source(&err).is_some());
    let unserializable: HashMap<(u8, u8), u8> = HashMap::from([((1, 2), 3)]);
    let err = kv.set("name", unserializable).await.unwrap_err();
    assert!(matches!(&err, KvError::Serialize { key, .. } if *key == b.full("name")));
    assert!(
        err.to_string().starts_with(&format!(
            "value for key `{}` cannot be serialized to JSON",
            b.full("name")
        )),
        "{err}"
    );
    assert_eq!(
        kv.get("name").await.unwrap().as_deref(),
        Some(&json!("Alice"))
    );
}

async fn rule_13_a_handle_shows_its_prefix_and_whether_its_store_runs(b: &impl Backend) {
    let kv = b.kv().await;
    assert_eq!(kv.prefix(), b.prefix());
    assert_eq!(
        kv.with_prefix("run:").prefix(),
        format!("{}run:", b.prefix())
    );
    assert!(!kv.is_closed());
    assert_eq!(
        format!("{kv:?}"),
        format!("KvHandle {{ prefix: {:?}, closed: false }}", b.prefix())
    );
    kv.shutdown().await;
    assert!(kv.is_closed());
    assert_eq!(
        format!("{kv:?}"),
        format!("KvHandle {{ prefix: {:?}, closed: true }}", b.prefix())
    );
}

/// Every message of an error and its sources, as `anyhow`'s `{:#}` prints a chain.
fn chain(err: &KvError) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

async fn rule_13_serde_messages_come_only_through_source_so_a_chain_prints_them_once(
    b: &impl Backend,
) {
    let kv = b.kv().await.with_prefix("app:");
    kv.set("name", "Alice").await.unwrap();

    let unserializable: HashMap<(u8, u8), u8> = HashMap::from([((1, 2), 3)]);
    let err = kv.set("k", unserializable).await.unwrap_err();
    assert!(matches!(&err, KvError::Serialize { .. }), "{err:?}");
    let source = std::error::Error::source(&err)
        .expect("Serialize keeps serde's error")
        .to_string();
    assert!(!source.is_empty());
    assert_eq!(
        err.to_string(),
        format!(
            "value for key `{}` cannot be serialized to JSON",
            b.full("app:k")
        )
    );
    assert!(!err.to_string().contains(&source), "{err}");
    assert_eq!(chain(&err).matches(&source).count(), 1, "{}", chain(&err));

    let err = kv.get_as::<u64>("name").await.unwrap_err();
    assert!(matches!(&err, KvError::Deserialize { .. }), "{err:?}");
    let source = std::error::Error::source(&err)
        .expect("Deserialize keeps serde's error")
        .to_string();
    assert!(source.contains("Alice"), "{source}"); // serde names what it found
    assert_eq!(
        err.to_string(),
        format!(
            "value at key `{}` does not fit the requested type",
            b.full("app:name")
        )
    );
    assert!(!err.to_string().contains(&source), "{err}");
    assert_eq!(chain(&err).matches(&source).count(), 1, "{}", chain(&err));
    // Errors of our own have no source: their message says it all.
    let err = kv.set("k", 1).ttl(Duration::ZERO).await.unwrap_err();
    assert!(std::error::Error::source(&err).is_none());
}

async fn rule_13_an_item_without_its_id_field_points_at_id_key(b: &impl Backend) {
    let kv = b.kv().await;
    let err = kv
        .list_append_unique("tasks", [json!({"id": 1})])
        .id_key("task_id")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, KvError::InvalidItem { key, index: 0, .. } if *key == b.full("tasks")),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "item 0 for key `{}` is invalid: it has no `task_id` field (to use another field as \
             the id, call `.id_key(\"field\")`)",
            b.full("tasks")
        )
    );
    assert!(!kv.exists("tasks").await.unwrap());
}

/// Call values are futures: `join_all` and friends take them as they are.
async fn call_values_are_futures_that_combinators_accept(b: &impl Backend) {
    let kv = b.kv().await;
    let writes = (0..20).map(|i| kv.set(format!("k{i}"), i));
    let written = futures::future::join_all(writes).await;
    assert_eq!(written.len(), 20);
    assert!(written.into_iter().all(|result| result.is_ok()));
    let reads = (0..20).map(|i| kv.get(format!("k{i}")));
    let values: Vec<_> = futures::future::join_all(reads)
        .await
        .into_iter()
        .map(|value| value.unwrap().map(|value| (*value).clone()))
        .collect();
    let expected: Vec<_> = (0..20).map(|i| Some(json!(i))).collect();
    assert_eq!(values, expected);
    // Calls with options, too.
    let counters = (0..5).map(|_| kv.incr("n", 2).ttl(b.units(50)));
    let mut counts: Vec<i64> = futures::future::try_join_all(counters).await.unwrap();
    counts.sort_unstable();
    assert_eq!(counts, vec![2, 4, 6, 8, 10]);
}

/// Rule 13's promise about types, which no backend can change.
#[test]
fn rule_13_error_and_handle_have_the_promised_traits() {
    fn assert_error<E: std::error::Error + Send + Sync + 'static>() {}
    fn assert_handle<H: Clone + Send + Sync + std::fmt::Debug + 'static>() {}
    assert_error::<KvError>();
    assert_handle::<ephemeral_kv::KvHandle>();
}

async fn values_of_every_json_type_come_back_exactly(b: &impl Backend) {
    let kv = b.kv().await;
    let values = [
        Value::Null,
        json!(true),
        json!(0),
        json!(-17),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(1.5),
        json!(1e300),
        json!(""),
        json!("ünïcødé \"quoted\" \n newline"),
        json!([]),
        json!({}),
        json!({"b": [1, {"c": null}], "a": "x"}),
    ];
    for (i, value) in values.iter().enumerate() {
        kv.set(format!("v{i}"), value.clone()).await.unwrap();
    }
    let keys: Vec<String> = (0..values.len()).map(|i| format!("v{i}")).collect();
    let got = kv.mget(&keys).await.unwrap();
    let expected: Vec<Option<Arc<Value>>> =
        values.iter().cloned().map(Arc::new).map(Some).collect();
    assert_eq!(got, expected);
    assert!(kv.exists("v0").await.unwrap()); // a stored null is there
}

async fn prefixes_namespace_and_stack(b: &impl Backend) {
    let kv = b.kv().await;
    let run = kv.with_prefix("run:42:");
    let step = run.with_prefix("step:");
    step.set("a", 1).await.unwrap();
    assert_eq!(
        kv.get("run:42:step:a").await.unwrap().as_deref(),
        Some(&json!(1))
    );
    assert_eq!(run.get("step:a").await.unwrap().as_deref(), Some(&json!(1)));
    assert_eq!(run.scan_prefix("").await.unwrap(), vec!["step:a"]);
    assert_eq!(step.prefix(), format!("{}run:42:step:", b.prefix()));
    let other = b.kv().await;
    assert_eq!(other.get("run:42:step:a").await.unwrap(), None);
}
