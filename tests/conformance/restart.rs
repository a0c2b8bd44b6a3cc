//! What a store keeps across a restart (`docs/durability.md`), on the backends that have one
//! ([`Backend::restart`]: the durable store, its last handle dropped and its file opened again at
//! once). Each test writes, restarts, and checks exact values, lists, TTLs and counters, then that
//! the rules still hold on what was loaded. On a backend without a restart (in-process, Redis)
//! each test checks its writes and returns: the `local::` and `redis::` halves pass trivially.

use serde_json::json;

use ephemeral_kv::Ttl;

use crate::backend::Backend;

conformance!(
    restart_keeps_every_value_and_no_deleted_key,
    restart_keeps_lists_in_order_and_their_ids,
    restart_keeps_ttls_and_they_run_out_after_it,
    restart_keeps_counters_and_conditional_writes_see_them,
    restart_twice_in_a_row_keeps_the_last_state,
);

async fn restart_keeps_every_value_and_no_deleted_key(b: &impl Backend) {
    let kv = b.kv().await;
    let object =
        json!({"s": "text é \u{1F600}", "n": -1.5e300, "i": u64::MAX, "a": [null, true, {}]});
    kv.set("object", object.clone()).await.unwrap();
    kv.set("null", json!(null)).await.unwrap();
    kv.set("gone", 1).await.unwrap();
    kv.delete("gone").await.unwrap();
    kv.set("taken", 2).await.unwrap();
    assert_eq!(kv.get_del("taken").await.unwrap(), Some(json!(2)));
    kv.mset([("m1", 10), ("m2", 20)]).await.unwrap();
    kv.transaction(|txn| {
        txn.set("t", "in a transaction");
        txn.delete("m1");
    })
    .await
    .unwrap();
    let Some(kv) = b.restart(kv).await else {
        return;
    };
    assert_eq!(kv.get("object").await.unwrap().as_deref(), Some(&object));
    assert_eq!(kv.get("null").await.unwrap().as_deref(), Some(&json!(null)));
    assert_eq!(kv.get("gone").await.unwrap(), None);
    assert_eq!(kv.get("taken").await.unwrap(), None);
    assert_eq!(kv.get("m1").await.unwrap(), None);
    assert_eq!(kv.get("m2").await.unwrap().as_deref(), Some(&json!(20)));
    assert_eq!(
        kv.get("t").await.unwrap().as_deref(),
        Some(&json!("in a transaction"))
    );
    assert_eq!(
        kv.scan_prefix("").await.unwrap(),
        ["m2", "null", "object", "t"]
    );
    assert_eq!(kv.stats().await.unwrap().entries, 4);
    kv.shutdown().await;
}

async fn restart_keeps_lists_in_order_and_their_ids(b: &impl Backend) {
    let kv = b.kv().await;
    kv.list_push("log", (0..5).map(|i| json!(i)))
        .max_len(4)
        .await
        .unwrap();
    assert_eq!(kv.list_pop_front("log", 1).await.unwrap(), [json!(1)]);
    let items = [json!({"id": "a", "n": 1}), json!({"id": "b", "n": 2})];
    kv.list_append_unique("inbox", items).await.unwrap();
    let Some(kv) = b.restart(kv).await else {
        return;
    };
    assert_eq!(
        kv.get("log").await.unwrap().as_deref(),
        Some(&json!([2, 3, 4]))
    );
    // The ids of a loaded list are its items' ids: a repeated id is still not appended.
    let appended = kv
        .list_append_unique(
            "inbox",
            [json!({"id": "a", "n": 9}), json!({"id": "c", "n": 3})],
        )
        .await
        .unwrap();
    assert_eq!(
        appended.into_vec(),
        [
            json!({"id": "a", "n": 1}),
            json!({"id": "b", "n": 2}),
            json!({"id": "c", "n": 3})
        ]
    );
    assert_eq!(kv.list_push("log", [json!(5)]).await.unwrap(), 4);
    assert_eq!(
        kv.list_pop_front("log", 10).await.unwrap(),
        [json!(2), json!(3), json!(4), json!(5)]
    );
    assert_eq!(kv.get("log").await.unwrap(), None);
    kv.shutdown().await;
}

async fn restart_keeps_ttls_and_they_run_out_after_it(b: &impl Backend) {
    let kv = b.kv().await;
    kv.set("brief", 1).ttl(b.units(10)).await.unwrap();
    kv.set("renewed", 2).ttl(b.units(2)).await.unwrap();
    assert!(kv.expire("renewed", b.units(20)).await.unwrap());
    kv.set("persisted", 3).ttl(b.units(2)).await.unwrap();
    assert!(kv.persist("persisted").await.unwrap());
    kv.list_push("list", [json!(1)])
        .ttl(b.units(10))
        .await
        .unwrap();
    let Some(kv) = b.restart(kv).await else {
        return;
    };
    // Deadlines are kept on the wall clock: what is left is the TTL less the real time the
    // restart took, under one unit here. (Tokio's paused clock does not move the wall clock, so
    // time a test passes before a restart does not count: `docs/durability.md`;
    // `tests/durable.rs` has a key expire while its store is down, on the wall clock.)
    for (key, units) in [("brief", 10), ("renewed", 20), ("list", 10)] {
        match kv.ttl(key).await.unwrap() {
            Ttl::Expires(left) => assert!(
                left <= b.units(units) && left > b.units(units - 1),
                "{key}: {left:?} left, expected just under {units} units"
            ),
            other => panic!("{key}: {other:?}"),
        }
    }
    assert_eq!(kv.ttl("persisted").await.unwrap(), Ttl::NoExpiry);
    b.pass(9).await;
    assert_eq!(kv.get("brief").await.unwrap().as_deref(), Some(&json!(1)));
    b.pass(1).await;
    assert_eq!(kv.get("brief").await.unwrap(), None);
    assert_eq!(kv.get("list").await.unwrap(), None);
    assert_eq!(kv.get("renewed").await.unwrap().as_deref(), Some(&json!(2)));
    assert_eq!(
        kv.get("persisted").await.unwrap().as_deref(),
        Some(&json!(3))
    );
    kv.shutdown().await;
}

async fn restart_keeps_counters_and_conditional_writes_see_them(b: &impl Backend) {
    let kv = b.kv().await;
    assert_eq!(kv.incr("hits", 5).await.unwrap(), 5);
    assert_eq!(kv.incr("hits", -2).await.unwrap(), 3);
    assert!(kv.set_if_absent("lease", "worker-1").await.unwrap());
    kv.update("doc", |old| old.is_none().then(|| json!({"v": 1})))
        .await
        .unwrap();
    let Some(kv) = b.restart(kv).await else {
        return;
    };
    assert_eq!(kv.incr("hits", 1).await.unwrap(), 4);
    assert!(!kv.set_if_absent("lease", "worker-2").await.unwrap());
    assert!(kv
        .compare_and_set("lease", Some(json!("worker-1")), json!("worker-2"))
        .await
        .unwrap());
    assert_eq!(
        kv.get("doc").await.unwrap().as_deref(),
        Some(&json!({"v": 1}))
    );
    let Some(kv) = b.restart(kv).await else {
        return;
    };
    assert_eq!(kv.incr("hits", 0).await.unwrap(), 4);
    assert_eq!(
        kv.get("lease").await.unwrap().as_deref(),
        Some(&json!("worker-2"))
    );
    kv.shutdown().await;
}

async fn restart_twice_in_a_row_keeps_the_last_state(b: &impl Backend) {
    let kv = b.kv().await;
    kv.set("k", 1).await.unwrap();
    let Some(kv) = b.restart(kv).await else {
        return;
    };
    kv.set("k", 2).await.unwrap();
    kv.set("other", 3).await.unwrap();
    // Restarted before the journal's interval is up: the close commits what is left.
    let kv = b.restart(kv).await.unwrap();
    let kv = b.restart(kv).await.unwrap();
    assert_eq!(kv.get("k").await.unwrap().as_deref(), Some(&json!(2)));
    assert_eq!(kv.get("other").await.unwrap().as_deref(), Some(&json!(3)));
    assert_eq!(kv.stats().await.unwrap().entries, 2);
    kv.shutdown().await;
}
