//! A race many workers run on shared handles, and what must hold after it (`docs/rules.md` rules 4
//! and 5, and the "never lost" of rules 15, 18 and 19): every inbox item popped exactly once, no
//! counter increment lost (by `incr`, `update` or `transaction`).

use ephemeral_kv::KvHandle;
use serde_json::{json, Value};
use std::sync::Arc;

/// `workers` tasks, spread over `handles` in turn, each do `per` rounds of: `incr`, append one
/// item with its own id to an inbox, `update` a sum, `transaction` on another sum, and now and
/// then pop the whole inbox. Then checks the outcome.
pub async fn inbox_and_counters(handles: &[KvHandle], workers: i64, per: i64) {
    let mut tasks = Vec::new();
    for worker in 0..workers {
        let kv = handles[worker as usize % handles.len()].clone();
        tasks.push(tokio::spawn(async move {
            let mut popped = Vec::new();
            for i in 0..per {
                kv.incr("count", 1).await.unwrap();
                kv.list_append_unique("inbox", [json!({"id": worker * 1000 + i})])
                    .await
                    .unwrap();
                kv.update("sum", |cur| {
                    Some(json!(cur.and_then(Value::as_i64).unwrap_or(0) + 1))
                })
                .await
                .unwrap();
                kv.transaction(|txn| {
                    let n = txn.get("txn").and_then(Value::as_i64).unwrap_or(0);
                    txn.set("txn", n + 1);
                })
                .await
                .unwrap();
                if i % 4 == 0 {
                    popped.extend(kv.list_pop_all("inbox").await.unwrap());
                }
            }
            popped
        }));
    }
    let mut items = Vec::new();
    for task in tasks {
        items.extend(task.await.unwrap());
    }
    items.extend(handles[0].list_pop_all("inbox").await.unwrap());
    let mut ids: Vec<i64> = items
        .iter()
        .map(|item| item["id"].as_i64().unwrap())
        .collect();
    ids.sort_unstable();
    let expected: Vec<i64> = (0..workers)
        .flat_map(|w| (0..per).map(move |i| w * 1000 + i))
        .collect();
    assert_eq!(ids, expected, "every item popped exactly once");
    let total = json!(workers * per);
    assert_eq!(
        handles[0].mget(["count", "sum", "txn"]).await.unwrap(),
        vec![
            Some(Arc::new(total.clone())),
            Some(Arc::new(total.clone())),
            Some(Arc::new(total))
        ]
    );
}
