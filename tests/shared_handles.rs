//! Many tasks sharing one store through cloned handles on the multi-thread runtime: nothing lost,
//! nothing duplicated, nothing half-seen.

use std::collections::HashSet;
use std::sync::Arc;

use ephemeral_kv::KvHandle;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_appended_item_is_popped_exactly_once() {
    const PRODUCERS: u64 = 8;
    const PER_PRODUCER: u64 = 200;
    let kv = KvHandle::spawn();

    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let kv = kv.clone();
            tokio::spawn(async move {
                for i in 0..PER_PRODUCER {
                    let id = p * PER_PRODUCER + i;
                    kv.list_append_unique("inbox", [json!({"id": id})])
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..4)
        .map(|_| {
            let kv = kv.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                for _ in 0..300 {
                    got.extend(kv.list_pop_all("inbox").await.unwrap());
                    tokio::task::yield_now().await;
                }
                got
            })
        })
        .collect();

    for producer in producers {
        producer.await.unwrap();
    }
    let mut popped: Vec<Value> = Vec::new();
    for consumer in consumers {
        popped.extend(consumer.await.unwrap());
    }
    popped.extend(kv.list_pop_all("inbox").await.unwrap());

    let ids: Vec<u64> = popped
        .iter()
        .map(|item| item["id"].as_u64().unwrap())
        .collect();
    let unique: HashSet<u64> = ids.iter().copied().collect();
    assert_eq!(
        ids.len() as u64,
        PRODUCERS * PER_PRODUCER,
        "lost or duplicated items"
    );
    assert_eq!(unique, (0..PRODUCERS * PER_PRODUCER).collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_reader_sees_half_of_an_mset() {
    let kv = KvHandle::spawn();
    kv.mset([("a", 0), ("b", 0), ("c", 0)]).await.unwrap();

    let writer = {
        let kv = kv.clone();
        tokio::spawn(async move {
            for n in 1..=500 {
                kv.mset([("a", n), ("b", n), ("c", n)]).await.unwrap();
            }
        })
    };
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let kv = kv.clone();
            tokio::spawn(async move {
                let mut last = 0;
                for _ in 0..500 {
                    let values = kv.mget(["a", "b", "c"]).await.unwrap();
                    let n = values[0].clone().unwrap();
                    assert!(values.iter().all(|v| v.as_ref() == Some(&n)), "{values:?}");
                    // Linearizable: a reader never goes back in time.
                    let n = n.as_u64().unwrap();
                    assert!(n >= last, "saw {n} after {last}");
                    last = n;
                }
            })
        })
        .collect();

    writer.await.unwrap();
    for reader in readers {
        reader.await.unwrap();
    }
    assert_eq!(
        kv.mget(["a", "b", "c"]).await.unwrap(),
        vec![Some(Arc::new(json!(500))); 3]
    );
}
