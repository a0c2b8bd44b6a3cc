//! Rules 26 (`list_push`: any values appended, the newest `max_len` kept, the TTL set like `set`'s)
//! and 27 (`list_pop_front`: the oldest first, the key removed once empty, the TTL kept) of
//! `docs/rules.md`, on both backends.

use std::time::Duration;

use ephemeral_kv::{KvError, Ttl};
use serde_json::{json, Value};

use crate::backend::Backend;

conformance!(
    rule_26_list_push_appends_any_values_and_returns_the_length,
    rule_26_list_push_keeps_the_newest_max_len_items,
    rule_26_list_push_sets_the_ttl_like_set,
    rule_26_list_push_refuses_a_non_list_and_bad_arguments_changing_nothing,
    rule_27_list_pop_front_takes_the_oldest_and_removes_an_emptied_key,
    rule_27_list_pop_front_shares_one_inbox_among_workers,
    rule_27_list_pop_front_refuses_a_non_list_and_keeps_the_ttl,
    rule_27_a_waiting_pop_takes_what_is_pushed_or_nothing_after_its_timeout,
    rule_27_one_push_wakes_one_waiting_worker,
    rule_27_a_dropped_waiting_pop_takes_nothing,
);

async fn rule_26_list_push_appends_any_values_and_returns_the_length(b: &impl Backend) {
    let kv = b.kv().await;
    assert_eq!(kv.list_push("log", [json!("a")]).await.unwrap(), 1);
    let len = kv
        .list_push(
            "log",
            [json!({"id": 1}), json!({"id": 1}), json!(null), json!([])],
        )
        .await
        .unwrap();
    assert_eq!(len, 5);
    assert_eq!(
        kv.get("log").await.unwrap().as_deref(),
        Some(&json!(["a", {"id": 1}, {"id": 1}, null, []]))
    );
    // Nothing pushed onto a missing key creates nothing.
    assert_eq!(kv.list_push("none", Vec::<Value>::new()).await.unwrap(), 0);
    assert!(!kv.exists("none").await.unwrap());
    // A list written with `set` is a list.
    kv.set("set_list", json!([1])).await.unwrap();
    assert_eq!(kv.list_push("set_list", [2]).await.unwrap(), 2);
    assert_eq!(
        kv.list_pop_all("set_list").await.unwrap(),
        vec![json!(1), json!(2)]
    );
}

async fn rule_26_list_push_keeps_the_newest_max_len_items(b: &impl Backend) {
    let kv = b.kv().await;
    for n in 0..10 {
        let len = kv.list_push("log", [n]).max_len(4).await.unwrap();
        assert_eq!(len, (n + 1).min(4) as usize);
    }
    assert_eq!(
        kv.get("log").await.unwrap().as_deref(),
        Some(&json!([6, 7, 8, 9]))
    );
    // More items than the cap in one call: only the newest stay.
    assert_eq!(
        kv.list_push("log", [10, 11, 12, 13, 14, 15])
            .max_len(3)
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        kv.list_pop_all("log").await.unwrap(),
        vec![json!(13), json!(14), json!(15)]
    );
}

async fn rule_26_list_push_sets_the_ttl_like_set(b: &impl Backend) {
    let kv = b.kv().await;
    kv.list_push("log", [1]).ttl(b.units(2)).await.unwrap();
    b.assert_ttl(kv.ttl("log").await.unwrap(), 2, 0);
    // Without `.ttl` the list never expires, like `set`.
    kv.list_push("log", [2]).await.unwrap();
    assert_eq!(kv.ttl("log").await.unwrap(), Ttl::NoExpiry);
    kv.list_push("log", [3]).ttl(b.units(1)).await.unwrap();
    b.pass(2).await;
    // Expired: the next push starts a new list.
    assert_eq!(kv.list_push("log", [4]).await.unwrap(), 1);
    assert_eq!(kv.get("log").await.unwrap().as_deref(), Some(&json!([4])));
}

async fn rule_26_list_push_refuses_a_non_list_and_bad_arguments_changing_nothing(b: &impl Backend) {
    let kv = b.kv().await;
    kv.set("s", "text").await.unwrap();
    match kv.list_push("s", [1]).await {
        Err(KvError::WrongType {
            key,
            expected,
            found,
        }) => {
            assert_eq!(key, b.full("s"));
            assert_eq!(expected, "a list");
            assert_eq!(found, "a string");
        }
        other => panic!("expected WrongType, got {other:?}"),
    }
    assert_eq!(kv.get("s").await.unwrap().as_deref(), Some(&json!("text")));

    kv.list_push("l", [1]).await.unwrap();
    assert!(matches!(
        kv.list_push("l", [2]).max_len(0).await,
        Err(KvError::InvalidArgument { .. })
    ));
    assert!(matches!(
        kv.list_push("l", [2]).ttl(Duration::ZERO).await,
        Err(KvError::InvalidTtl { .. })
    ));
    let unserializable = std::collections::HashMap::from([((1, 2), 3)]);
    assert!(matches!(
        kv.list_push("l", [unserializable]).await,
        Err(KvError::Serialize { .. })
    ));
    assert_eq!(kv.get("l").await.unwrap().as_deref(), Some(&json!([1])));
}

async fn rule_27_list_pop_front_takes_the_oldest_and_removes_an_emptied_key(b: &impl Backend) {
    let kv = b.kv().await;
    kv.list_push("jobs", ["a", "b", "c", "d"]).await.unwrap();
    assert_eq!(
        kv.list_pop_front("jobs", 0).await.unwrap(),
        Vec::<Value>::new()
    );
    assert_eq!(
        kv.list_pop_front("jobs", 3).await.unwrap(),
        vec![json!("a"), json!("b"), json!("c")]
    );
    assert_eq!(
        kv.get("jobs").await.unwrap().as_deref(),
        Some(&json!(["d"]))
    );
    assert_eq!(
        kv.list_pop_front("jobs", 3).await.unwrap(),
        vec![json!("d")]
    );
    assert!(!kv.exists("jobs").await.unwrap());
    assert_eq!(
        kv.list_pop_front("jobs", 3).await.unwrap(),
        Vec::<Value>::new()
    );
    assert_eq!(
        kv.list_pop_front("missing", 1).await.unwrap(),
        Vec::<Value>::new()
    );
    // An empty list is left as it is: nothing was taken.
    kv.set("empty", json!([])).await.unwrap();
    assert_eq!(
        kv.list_pop_front("empty", 1).await.unwrap(),
        Vec::<Value>::new()
    );
    assert_eq!(kv.get("empty").await.unwrap().as_deref(), Some(&json!([])));
}

async fn rule_27_list_pop_front_shares_one_inbox_among_workers(b: &impl Backend) {
    let kv = b.kv().await;
    let jobs: Vec<Value> = (0..60).map(|n| json!({"job": n})).collect();
    kv.list_push("inbox", jobs.clone()).await.unwrap();
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let kv = kv.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let taken = kv.list_pop_front("inbox", 7).await.unwrap();
                    if taken.is_empty() {
                        return mine;
                    }
                    mine.extend(taken);
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.unwrap());
    }
    all.sort_by_key(|job| job["job"].as_u64());
    assert_eq!(all, jobs, "every job taken exactly once");
    assert!(!kv.exists("inbox").await.unwrap());
}

async fn rule_27_list_pop_front_refuses_a_non_list_and_keeps_the_ttl(b: &impl Backend) {
    let kv = b.kv().await;
    kv.set("n", 5).await.unwrap();
    assert!(matches!(
        kv.list_pop_front("n", 1).await,
        Err(KvError::WrongType {
            found: "a number",
            ..
        })
    ));
    assert_eq!(kv.get("n").await.unwrap().as_deref(), Some(&json!(5)));

    kv.list_push("jobs", [1, 2, 3])
        .ttl(b.units(3))
        .await
        .unwrap();
    kv.list_pop_front("jobs", 1).await.unwrap();
    b.assert_ttl(kv.ttl("jobs").await.unwrap(), 3, 0);
}

/// Waits until `n` calls wait on the store (`stats().watchers`), so that what a test pushes next
/// finds them parked.
async fn until_waiting(b: &impl Backend, kv: &ephemeral_kv::KvHandle, n: usize) {
    for _ in 0..200 {
        if kv.stats().await.unwrap().watchers == n {
            return;
        }
        tokio::time::sleep(b.unit() / 20).await;
    }
    panic!("expected {n} waiting calls");
}

async fn rule_27_a_waiting_pop_takes_what_is_pushed_or_nothing_after_its_timeout(b: &impl Backend) {
    let kv = b.kv().await;
    // Items already there: taken at once, as without `.wait`.
    kv.list_push("inbox", [json!(1), json!(2)]).await.unwrap();
    let now = kv.list_pop_front("inbox", 5).wait(b.units(10)).await;
    assert_eq!(now.unwrap(), vec![json!(1), json!(2)]);
    // An empty inbox: the worker waits for the push.
    let worker = kv.clone();
    let units = b.units(10);
    let job = tokio::spawn(async move { worker.list_pop_front("inbox", 5).wait(units).await });
    until_waiting(b, &kv, 1).await;
    kv.list_push("inbox", [json!({"id": 7})]).await.unwrap();
    assert_eq!(job.await.unwrap().unwrap(), vec![json!({"id": 7})]);
    assert!(!kv.exists("inbox").await.unwrap()); // emptied by the pop, so removed
                                                 // Nothing arrives: no items once the timeout is up, and nothing left waiting.
    let idle = kv.list_pop_front("inbox", 1).wait(b.units(2)).await;
    assert_eq!(idle.unwrap(), Vec::<Value>::new());
    assert_eq!(kv.stats().await.unwrap().watchers, 0);
    // A zero timeout does not wait.
    let at_once = kv.list_pop_front("inbox", 1).wait(Duration::ZERO).await;
    assert_eq!(at_once.unwrap(), Vec::<Value>::new());
}

async fn rule_27_one_push_wakes_one_waiting_worker(b: &impl Backend) {
    let kv = b.kv().await;
    let (done, mut results) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..4 {
        let (worker, done, units) = (kv.clone(), done.clone(), b.units(50));
        tokio::spawn(async move {
            let taken = worker.list_pop_front("inbox", 1).wait(units).await;
            let _ = done.send(taken.unwrap());
        });
    }
    until_waiting(b, &kv, 4).await;
    kv.list_push("inbox", [json!({"job": 0})]).await.unwrap();
    let first = tokio::time::timeout(b.units(20), results.recv()).await;
    assert_eq!(first.unwrap().unwrap(), vec![json!({"job": 0})]);
    // The other three are still waiting: one job woke one worker.
    b.pass(1).await;
    assert!(results.try_recv().is_err());
    assert_eq!(kv.stats().await.unwrap().watchers, 3);
    kv.list_push("inbox", (1..4).map(|n| json!({"job": n})))
        .await
        .unwrap();
    let mut jobs = Vec::new();
    for _ in 0..3 {
        let taken = tokio::time::timeout(b.units(20), results.recv()).await;
        let taken = taken.unwrap().unwrap();
        assert_eq!(taken.len(), 1, "{taken:?}");
        jobs.extend(taken);
    }
    jobs.sort_by_key(|job| job["job"].as_i64());
    assert_eq!(jobs, (1..4).map(|n| json!({"job": n})).collect::<Vec<_>>());
    assert!(!kv.exists("inbox").await.unwrap());
}

async fn rule_27_a_dropped_waiting_pop_takes_nothing(b: &impl Backend) {
    let kv = b.kv().await;
    // A wait given up by its caller (here by a shorter timeout around it) takes nothing.
    let gave_up =
        tokio::time::timeout(b.units(1), kv.list_pop_front("inbox", 1).wait(b.units(50))).await;
    assert!(gave_up.is_err());
    kv.list_push("inbox", [json!("kept")]).await.unwrap();
    b.pass(1).await;
    assert_eq!(
        kv.get("inbox").await.unwrap().as_deref(),
        Some(&json!(["kept"]))
    );
    assert_eq!(kv.stats().await.unwrap().watchers, 0);
}
