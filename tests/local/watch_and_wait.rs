//! Rules 23 (`watch`) and 24 (`wait_for`) of `docs/rules.md` on the in-process store. `watch` is
//! in-process only (on Redis it gives `Unsupported`, see `tests/conformance/coordination.rs`):
//! change events in apply order, only under the prefix, expirations included, a lagging subscriber
//! told what it missed without slowing the store, unsubscribe on drop. What `wait_for` does on both
//! backends is in the conformance suite; here, what the owner task adds: the write itself wakes
//! every waiter (no polling), and an abandoned wait is forgotten.

use std::time::Duration;

use ephemeral_kv::{KvError, KvHandle, WatchEvent, WatchStream};
use futures::{FutureExt, StreamExt};
use serde_json::{json, Value};

const SEC: Duration = Duration::from_secs(1);

fn set(key: &str, value: Value) -> WatchEvent {
    WatchEvent::Set {
        key: key.into(),
        value: value.into(),
    }
}

fn deleted(key: &str) -> WatchEvent {
    WatchEvent::Deleted { key: key.into() }
}

fn expired(key: &str) -> WatchEvent {
    WatchEvent::Expired { key: key.into() }
}

/// The next `n` items, which must all be events.
async fn next_events(stream: &mut WatchStream, n: usize) -> Vec<WatchEvent> {
    let mut events = Vec::new();
    for _ in 0..n {
        events.push(stream.next().await.unwrap().unwrap());
    }
    events
}

/// Whether the stream has nothing ready right now.
fn nothing_ready(stream: &mut WatchStream) -> bool {
    stream.next().now_or_never().is_none()
}

mod watch {
    use super::*;

    #[tokio::test]
    async fn every_kind_of_write_is_seen_in_apply_order_under_the_prefix_only() {
        let kv = KvHandle::spawn();
        let mut events = kv.watch("job:").await.unwrap();
        kv.set("job:1", "queued").await.unwrap();
        kv.set("other", 1).await.unwrap();
        kv.mset([("job:2", 2), ("jo", 0)]).await.unwrap();
        kv.incr("job:n", 5).await.unwrap();
        kv.list_append_unique("job:l", [json!({"id": 1})])
            .await
            .unwrap();
        kv.list_append_unique("job:l", [json!({"id": 2})])
            .await
            .unwrap();
        kv.list_pop_all("job:l").await.unwrap();
        kv.update("job:1", |_| Some(json!("running")))
            .await
            .unwrap();
        kv.set_if_absent("job:3", true).await.unwrap();
        kv.compare_and_set("job:3", Some(json!(true)), false)
            .await
            .unwrap();
        kv.transaction(|txn| {
            txn.set("job:4", 4);
            txn.delete("job:2");
        })
        .await
        .unwrap();
        kv.get_del("job:4").await.unwrap();
        kv.delete("job:3").await.unwrap();
        kv.delete("job:never").await.unwrap(); // nothing to delete: no event

        assert_eq!(
            next_events(&mut events, 13).await,
            vec![
                set("job:1", json!("queued")),
                set("job:2", json!(2)),
                set("job:n", json!(5)),
                set("job:l", json!([{"id": 1}])),
                set("job:l", json!([{"id": 1}, {"id": 2}])),
                deleted("job:l"),
                set("job:1", json!("running")),
                set("job:3", json!(true)),
                set("job:3", json!(false)),
                set("job:4", json!(4)),
                deleted("job:2"),
                deleted("job:4"),
                deleted("job:3"),
            ]
        );
        assert!(nothing_ready(&mut events));
    }

    #[tokio::test]
    async fn calls_that_fail_or_change_nothing_send_no_event() {
        let kv = KvHandle::spawn();
        kv.set("k", "text").await.unwrap();
        let mut events = kv.watch("").await.unwrap();
        assert!(kv.incr("k", 1).await.is_err());
        assert!(!kv.set_if_absent("k", 1).await.unwrap());
        assert!(!kv.compare_and_set("k", None, 1).await.unwrap());
        assert!(kv.update("k", |_| panic!("no")).await.is_err());
        assert!(kv
            .transaction(|txn| {
                txn.set("k", 1);
                panic!("no")
            })
            .await
            .is_err());
        kv.transaction(|txn| {
            txn.set("k", 1);
            txn.abort()
        })
        .await
        .unwrap();
        kv.get("k").await.unwrap();
        assert!(nothing_ready(&mut events));
    }

    #[tokio::test]
    async fn keys_are_relative_to_the_watching_handle() {
        let root = KvHandle::spawn();
        let app = root.with_prefix("app:");
        let mut events = app.watch("inbox:").await.unwrap();
        assert_eq!(events.prefix(), "app:inbox:");
        root.set("app:inbox:1", "hi").await.unwrap();
        root.set("inbox:2", "not under app:").await.unwrap();
        app.delete("inbox:1").await.unwrap();
        assert_eq!(
            next_events(&mut events, 2).await,
            vec![set("inbox:1", json!("hi")), deleted("inbox:1")]
        );
        assert!(nothing_ready(&mut events));
    }

    #[tokio::test(start_paused = true)]
    async fn lazy_purged_and_active_expirations_are_events() {
        let lazy = KvHandle::builder().active_expiry(false).spawn();
        let mut events = lazy.watch("").await.unwrap();
        lazy.set("touched", 1).ttl(SEC).await.unwrap();
        lazy.set("purged", 2).ttl(SEC).await.unwrap();
        tokio::time::advance(SEC).await;
        assert_eq!(lazy.get("touched").await.unwrap(), None);
        assert_eq!(lazy.purge_expired().await.unwrap(), 1);
        assert_eq!(
            next_events(&mut events, 4).await,
            vec![
                set("touched", json!(1)),
                set("purged", json!(2)),
                expired("touched"),
                expired("purged"),
            ]
        );

        // Deleting a key whose TTL ran out (but that is still held) reports the expiry.
        lazy.set("deleted", 3).ttl(SEC).await.unwrap();
        tokio::time::advance(SEC).await;
        lazy.delete("deleted").await.unwrap();
        assert_eq!(
            next_events(&mut events, 2).await,
            vec![set("deleted", json!(3)), expired("deleted")]
        );
        assert!(nothing_ready(&mut events));

        let active = KvHandle::spawn();
        let mut events = active.watch("").await.unwrap();
        active.set("lease", "w1").ttl(SEC).await.unwrap();
        // Nobody touches the key: the owner task's own expiry reports it.
        assert_eq!(
            next_events(&mut events, 2).await,
            vec![set("lease", json!("w1")), expired("lease")]
        );
    }

    #[tokio::test]
    async fn a_lagging_subscriber_is_told_how_many_it_missed_and_never_slows_the_store() {
        let kv = KvHandle::spawn();
        let mut slow = kv.watch("n:").capacity(4).await.unwrap();
        let mut fast = kv.watch("n:").await.unwrap();
        // The slow subscriber reads nothing while 100 writes go through: none of them waits.
        for i in 0..100 {
            kv.set(format!("n:{i}"), i).await.unwrap();
        }
        match slow.next().await {
            Some(Err(KvError::Lagged { prefix, missed })) => {
                assert_eq!((prefix.as_str(), missed), ("n:", 96));
            }
            other => panic!("expected a lag report, got {other:?}"),
        }
        // Then the newest events it still holds, and it goes on as normal.
        let kept = next_events(&mut slow, 4).await;
        let keys: Vec<_> = kept.iter().map(WatchEvent::key).collect();
        assert_eq!(keys, vec!["n:96", "n:97", "n:98", "n:99"]);
        kv.set("n:new", 0).await.unwrap();
        assert_eq!(
            next_events(&mut slow, 1).await,
            vec![set("n:new", json!(0))]
        );
        // The other subscriber lost nothing.
        let all = next_events(&mut fast, 101).await;
        assert_eq!(all[0], set("n:0", json!(0)));
        assert_eq!(all[100], set("n:new", json!(0)));
        let err = KvError::Lagged {
            prefix: "n:".into(),
            missed: 96,
        };
        assert_eq!(
            err.to_string(),
            "watcher of prefix `n:` fell behind and missed 96 events; read it sooner or open it \
             with a larger `.capacity(..)`"
        );
    }

    #[tokio::test]
    async fn dropping_the_stream_unsubscribes() {
        let kv = KvHandle::spawn();
        let a = kv.watch("a:").await.unwrap();
        let b = kv.watch("b:").await.unwrap();
        assert_eq!(kv.stats().await.unwrap().watchers, 2);
        drop(a);
        assert_eq!(kv.stats().await.unwrap().watchers, 1);
        drop(b);
        kv.set("b:1", 1).await.unwrap(); // noticed while delivering, too
        assert_eq!(kv.stats().await.unwrap().watchers, 0);
    }

    #[tokio::test]
    async fn the_stream_ends_when_the_store_stops_after_the_events_before() {
        let kv = KvHandle::spawn();
        let mut events = kv.watch("").await.unwrap();
        kv.set("k", 1).await.unwrap();
        kv.shutdown().await;
        assert_eq!(next_events(&mut events, 1).await, vec![set("k", json!(1))]);
        assert!(events.next().await.is_none());
        assert!(matches!(kv.watch("").await, Err(KvError::Closed)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_subscriber_sees_concurrent_writes_in_the_same_order() {
        let kv = KvHandle::spawn();
        let mut first = kv.watch("").await.unwrap();
        let mut second = kv.watch("").await.unwrap();
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let kv = kv.clone();
                tokio::spawn(async move {
                    for i in 0..25 {
                        kv.set(format!("w{w}"), i).await.unwrap();
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.await.unwrap();
        }
        let a = next_events(&mut first, 100).await;
        let b = next_events(&mut second, 100).await;
        assert_eq!(a, b);
        // Per writer, its own writes arrive in the order it made them.
        for w in 0..4 {
            let key = format!("w{w}");
            let values: Vec<_> = a
                .iter()
                .filter_map(|event| match event {
                    WatchEvent::Set { key: k, value } if *k == key => value.as_i64(),
                    _ => None,
                })
                .collect();
            assert_eq!(values, (0..25).collect::<Vec<_>>());
        }
    }
}

mod wait_for {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_write_itself_wakes_every_waiter_at_once() {
        let kv = KvHandle::builder().prefix("app:").spawn();
        let started = tokio::time::Instant::now();
        let worker = kv.clone();
        tokio::spawn(async move {
            tokio::time::sleep(5 * SEC).await;
            worker.incr("job:7:done", 3).await.unwrap();
        });
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let kv = kv.clone();
                tokio::spawn(async move { kv.wait_for("job:7:done").await })
            })
            .collect();
        for waiter in waiters {
            assert_eq!(*waiter.await.unwrap().unwrap(), json!(3));
        }
        assert_eq!(started.elapsed(), 5 * SEC);
    }

    #[tokio::test]
    async fn abandoned_waits_are_forgotten() {
        let kv = KvHandle::spawn();
        for i in 0..500 {
            let wait = kv.wait_for(format!("k{i}"));
            let mut wait = Box::pin(wait);
            assert!(futures::poll!(wait.as_mut()).is_pending());
            tokio::task::yield_now().await; // let the owner register it, then abandon it
        }
        assert_eq!(kv.stats().await.unwrap().watchers, 0);
    }
}
