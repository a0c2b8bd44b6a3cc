//! Rules 23 (`watch`) and 24 (`wait_for`) of `docs/rules.md` on the in-process store (what holds
//! on both backends is in `tests/conformance/feeds.rs`): change events in apply order, only under the prefix, expirations included, a lagging subscriber
//! told what it missed without slowing the store, unsubscribe on drop. What `wait_for` does on both
//! backends is in the conformance suite; here, what the owner task adds: the write itself wakes
//! every waiter (no polling), and an abandoned wait is forgotten.
//!
//! Also: rule 30, one change event per key per command, the key's state after it (an `mset`
//! naming a key twice, a transaction that sets then deletes, a write over an expired key); typed
//! events (`WatchEvent::value_as`); `watch` calls as futures for `join_all`; and the room of
//! dropped streams and abandoned waits given back (rule 25's `watchers` count; the bytes are in
//! `tests/churn.rs`).

use std::time::Duration;

use ephemeral_kv::{KvError, KvHandle, WatchEvent, WatchStream};
use futures::{FutureExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::time::timeout;

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

/// The next `n` items, which must all be events. Fails rather than hangs if fewer come: events
/// are sent before the call that caused them returns, so a few seconds (on the paused clock, no
/// real time at all) is far more than one needs.
async fn next_events(stream: &mut WatchStream, n: usize) -> Vec<WatchEvent> {
    let mut events = Vec::new();
    for _ in 0..n {
        match timeout(10 * SEC, stream.next()).await {
            Ok(item) => events.push(item.unwrap().unwrap()),
            Err(_) => panic!("expected {n} events, got only {events:?}"),
        }
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
            "watcher of prefix `n:` fell behind and missed 96 events"
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

/// Rule 30: each command shows each key it changed once, as the command left it.
mod rule_30_one_event_per_key_per_command {
    use super::*;

    #[tokio::test]
    async fn an_mset_naming_a_key_twice_gives_one_set_event_with_the_last_value() {
        let kv = KvHandle::spawn();
        let mut events = kv.watch("").await.unwrap();
        kv.mset([("k", 1), ("k", 2)]).await.unwrap();
        assert_eq!(next_events(&mut events, 1).await, vec![set("k", json!(2))]);
        assert!(nothing_ready(&mut events));
        // In the order the keys first changed.
        kv.mset([("k", 3), ("j", 0), ("k", 4)]).await.unwrap();
        assert_eq!(
            next_events(&mut events, 2).await,
            vec![set("k", json!(4)), set("j", json!(0))]
        );
        assert!(nothing_ready(&mut events));
    }

    #[tokio::test]
    async fn a_transaction_setting_then_deleting_a_missing_key_gives_no_event() {
        let kv = KvHandle::spawn();
        kv.set("existing", 1).await.unwrap();
        let mut events = kv.watch("").await.unwrap();
        kv.transaction(|txn| {
            txn.set("missing", "passing");
            txn.delete("missing");
        })
        .await
        .unwrap();
        // The key did not exist before and does not after: the command changed nothing a call
        // could see, so it sends nothing (rule 23).
        assert!(nothing_ready(&mut events));
        assert!(!kv.exists("missing").await.unwrap());
        // Beside a real change in the same command, only the real change is reported.
        kv.transaction(|txn| {
            txn.set("missing", "passing");
            txn.set("existing", 5);
            txn.delete("missing");
        })
        .await
        .unwrap();
        assert_eq!(
            next_events(&mut events, 1).await,
            vec![set("existing", json!(5))]
        );
        assert!(nothing_ready(&mut events));

        kv.transaction(|txn| {
            txn.set("existing", 2);
            txn.delete("existing");
            txn.set("twice", 1);
            txn.set("twice", 2);
            txn.delete("back");
            txn.set("back", "again");
        })
        .await
        .unwrap();
        assert_eq!(
            next_events(&mut events, 3).await,
            vec![
                deleted("existing"),
                set("twice", json!(2)),
                set("back", json!("again"))
            ]
        );
        assert!(nothing_ready(&mut events));
    }

    #[tokio::test(start_paused = true)]
    async fn a_pending_wait_is_not_woken_by_a_transaction_that_sets_then_deletes_its_key() {
        let kv = KvHandle::spawn();
        let waiter = kv.clone();
        let mut waiting = tokio::spawn(async move { waiter.wait_for("k").await });
        tokio::task::yield_now().await;
        assert_eq!(kv.stats().await.unwrap().watchers, 1);
        kv.transaction(|txn| {
            txn.set("k", "passing");
            txn.delete("k");
        })
        .await
        .unwrap();
        assert!(timeout(10 * SEC, &mut waiting).await.is_err());
        assert_eq!(kv.stats().await.unwrap().watchers, 1); // still waiting
        kv.mset([("k", "first"), ("k", "last")]).await.unwrap();
        let value = timeout(SEC, waiting).await.unwrap().unwrap().unwrap();
        assert_eq!(*value, json!("last"));
    }

    /// With active expiry off, an expired entry is still held when a write lands on its key: the
    /// write is the one event (the expiry it settles on the way is not reported separately).
    #[tokio::test(start_paused = true)]
    async fn a_write_over_an_expired_key_gives_one_set_event() {
        let kv = KvHandle::builder().active_expiry(false).spawn();
        let keys = ["set", "push", "incr", "absent", "cas", "update", "txn"];
        for key in keys {
            kv.set(key, json!([0])).ttl(SEC).await.unwrap();
        }
        tokio::time::advance(2 * SEC).await;
        assert_eq!(kv.stats().await.unwrap().entries, keys.len()); // all still held
        let mut events = kv.watch("").await.unwrap();
        kv.set("set", 1).await.unwrap();
        kv.list_push("push", [1]).await.unwrap();
        kv.incr("incr", 1).await.unwrap();
        assert!(kv.set_if_absent("absent", 1).await.unwrap());
        assert!(kv.compare_and_set("cas", None, 1).await.unwrap());
        kv.update("update", |cur| Some(json!(cur.is_none())))
            .await
            .unwrap();
        kv.transaction(|txn| txn.set("txn", 1)).await.unwrap();
        assert_eq!(
            next_events(&mut events, keys.len()).await,
            vec![
                set("set", json!(1)),
                set("push", json!([1])),
                set("incr", json!(1)),
                set("absent", json!(1)),
                set("cas", json!(1)),
                set("update", json!(true)),
                set("txn", json!(1)),
            ]
        );
        assert!(nothing_ready(&mut events));
    }

    /// A transaction that writes an expired key and then deletes it reports an expiry, as
    /// `delete` would (rule 23); deleting an expired or missing key alone changes nothing a call
    /// can see, and sends nothing (the expired entry is reported when the store lets it go).
    #[tokio::test(start_paused = true)]
    async fn a_transaction_rewriting_then_deleting_an_expired_key_gives_one_expired_event() {
        let kv = KvHandle::builder().active_expiry(false).spawn();
        for key in ["untouched", "rewritten"] {
            kv.set(key, 0).ttl(SEC).await.unwrap();
        }
        tokio::time::advance(2 * SEC).await;
        let mut events = kv.watch("").await.unwrap();
        kv.transaction(|txn| {
            assert!(!txn.delete("untouched"));
            txn.set("rewritten", 1);
            assert!(txn.delete("rewritten"));
            assert!(!txn.delete("never"));
        })
        .await
        .unwrap();
        assert_eq!(
            next_events(&mut events, 1).await,
            vec![expired("rewritten")]
        );
        assert!(nothing_ready(&mut events));
        assert_eq!(kv.stats().await.unwrap().entries, 1); // "untouched", not yet let go
        assert_eq!(kv.purge_expired().await.unwrap(), 1);
        assert_eq!(
            next_events(&mut events, 1).await,
            vec![expired("untouched")]
        );
    }
}

/// A stream's `Debug` names its full prefix.
#[tokio::test]
async fn a_watch_stream_debug_names_its_prefix() {
    let kv = KvHandle::spawn().with_prefix("app:");
    let events = kv.watch("inbox:").await.unwrap();
    assert_eq!(
        format!("{events:?}"),
        r#"WatchStream { prefix: "app:inbox:", .. }"#
    );
}

/// Typed events, and `watch` calls as futures.
mod typed_and_joined {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Progress {
        job: String,
        percent: u8,
    }

    #[tokio::test]
    async fn value_as_reads_a_set_event_as_a_struct_and_a_removal_as_none() {
        let kv = KvHandle::spawn();
        let mut events = kv.watch("progress:").await.unwrap();
        let progress = Progress {
            job: "j7".into(),
            percent: 40,
        };
        kv.set("progress:j7", &progress).await.unwrap();
        kv.set("progress:j8", "not progress").await.unwrap();
        kv.delete("progress:j7").await.unwrap();
        let got = next_events(&mut events, 3).await;
        assert_eq!(got[0].value_as::<Progress>().unwrap(), Some(progress));
        assert_eq!(
            got[0].value().map(|value| &**value),
            Some(&json!({"job": "j7", "percent": 40}))
        );
        match got[1].value_as::<Progress>() {
            Err(KvError::Deserialize { key, .. }) => assert_eq!(key, "progress:j8"),
            other => panic!("expected Deserialize, got {other:?}"),
        }
        assert_eq!(got[2].value_as::<Progress>().unwrap(), None);
        assert_eq!(got[2].value(), None);
    }

    /// Rule 13: errors of calls name the full key, prefix included; an event is not a call, and
    /// `value_as` names the key as the event has it, relative to the watching handle.
    #[tokio::test]
    async fn rule_13_value_as_names_the_events_own_key_when_a_value_does_not_fit() {
        let kv = KvHandle::builder().prefix("app:").spawn();
        let mut events = kv.watch("progress:").await.unwrap();
        kv.set("progress:j8", "not progress").await.unwrap();
        let got = next_events(&mut events, 1).await;
        assert_eq!(got[0].key(), "progress:j8");
        match got[0].value_as::<Progress>() {
            Err(KvError::Deserialize { key, .. }) => assert_eq!(key, "progress:j8"),
            other => panic!("expected Deserialize, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn join_all_opens_many_watch_streams_at_once() {
        let kv = KvHandle::spawn();
        let opened = futures::future::join_all((0..3).map(|_| kv.watch(""))).await;
        let mut streams: Vec<WatchStream> = opened.into_iter().map(Result::unwrap).collect();
        assert_eq!(kv.stats().await.unwrap().watchers, 3);
        kv.set("k", 1).await.unwrap();
        for stream in &mut streams {
            assert_eq!(next_events(stream, 1).await, vec![set("k", json!(1))]);
        }
    }
}

/// What dropped streams and abandoned waits held is given back (rules 23 to 25).
mod room_given_back {
    use super::*;

    #[tokio::test]
    async fn streams_dropped_on_a_store_nobody_writes_to_are_forgotten() {
        let kv = KvHandle::spawn();
        for _ in 0..2_000 {
            let stream = kv.watch("").capacity(16).await.unwrap();
            drop(stream);
        }
        let _open = kv.watch("").await.unwrap();
        assert_eq!(kv.stats().await.unwrap().watchers, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn ten_thousand_abandoned_waits_are_forgotten() {
        let kv = KvHandle::spawn();
        for i in 0..10_000 {
            // Half on keys of their own, half on one key.
            let key = if i % 2 == 0 {
                format!("k{i}")
            } else {
                "shared".to_owned()
            };
            let gave_up = timeout(Duration::from_millis(1), kv.wait_for(key)).await;
            assert!(gave_up.is_err());
        }
        assert_eq!(kv.stats().await.unwrap().watchers, 0);
        // Waiting still works.
        let waiter = kv.clone();
        let waiting = tokio::spawn(async move { waiter.wait_for("shared").await });
        tokio::task::yield_now().await;
        assert_eq!(kv.stats().await.unwrap().watchers, 1);
        kv.set("shared", 1).await.unwrap();
        assert_eq!(*waiting.await.unwrap().unwrap(), json!(1));
        assert_eq!(kv.stats().await.unwrap().watchers, 0);
    }
}

/// A stream that is read late, in bits, by a reader that keeps some events and drops others, or
/// never read until the end, yields exactly the events an eagerly read stream of the same store
/// yields, less those it was told it lost. Lists changed in place travel to a stream as deltas
/// once it holds an event of their key (`src/command/feeds/queue.rs`); this checks that every version is
/// rebuilt exactly however the reader and a full queue interleave.
mod slow_readers {
    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Step {
        Append(usize, u8),
        Push(usize, u8, Option<usize>),
        Pop(usize, usize),
        Set(usize),
        Delete(usize),
        /// Let the slow stream read up to this many items.
        Read(usize),
        /// The slow reader lets go of the events it kept.
        Forget,
    }

    const KEYS: [&str; 2] = ["a", "b"];

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0..2usize, 0..6u8).prop_map(|(k, id)| Step::Append(k, id)),
            4 => (0..2usize, 1..3u8, proptest::option::of(1..5usize))
                .prop_map(|(k, n, max)| Step::Push(k, n, max)),
            2 => (0..2usize, 1..3usize).prop_map(|(k, n)| Step::Pop(k, n)),
            1 => (0..2usize).prop_map(Step::Set),
            1 => (0..2usize).prop_map(Step::Delete),
            3 => (0..6usize).prop_map(Step::Read),
            1 => Just(Step::Forget),
        ]
    }

    /// Checks what the slow stream yields against what the eager one did, from `at`.
    fn check(got: Result<WatchEvent, KvError>, eager: &[WatchEvent], at: &mut usize) {
        match got {
            Ok(event) => {
                assert_eq!(Some(&event), eager.get(*at), "event {at}");
                *at += 1;
            }
            Err(KvError::Lagged { missed, .. }) => *at += missed as usize,
            Err(other) => panic!("{other}"),
        }
    }

    async fn run(capacity: usize, keep: u8, steps: Vec<Step>) {
        let kv = KvHandle::spawn();
        let mut eager = kv.watch("").capacity(100_000).await.unwrap();
        let mut slow = kv.watch("").capacity(capacity).await.unwrap();
        let mut unread = kv.watch("").capacity(100_000).await.unwrap();
        let mut seen = Vec::new();
        let mut at = 0;
        let mut held = Vec::new();
        for (n, step) in steps.into_iter().enumerate() {
            let key = |k: usize| KEYS[k];
            // Errors (a list call on a value that is not a list) change nothing and send nothing.
            let _ = match step {
                Step::Append(k, id) => kv
                    .list_append_unique(key(k), [json!({ "id": id })])
                    .await
                    .map(drop),
                Step::Push(k, count, max) => {
                    let items: Vec<Value> = (0..count).map(|i| json!([n, i])).collect();
                    match max {
                        Some(max) => kv.list_push(key(k), items).max_len(max).await,
                        None => kv.list_push(key(k), items).await,
                    }
                    .map(drop)
                }
                Step::Pop(k, count) => kv.list_pop_front(key(k), count).await.map(drop),
                Step::Set(k) => kv.set(key(k), json!([{ "id": 9 }, n])).await,
                Step::Delete(k) => kv.delete(key(k)).await,
                Step::Read(count) => {
                    for _ in 0..count {
                        let Some(Some(got)) = slow.next().now_or_never() else {
                            break;
                        };
                        if let Ok(event) = &got {
                            if (n as u8 ^ keep) % 2 == 0 {
                                held.push((at, event.clone()));
                            }
                        }
                        check(got, &seen, &mut at);
                    }
                    Ok(())
                }
                Step::Forget => {
                    held.clear();
                    Ok(())
                }
            };
            while let Some(Some(event)) = eager.next().now_or_never() {
                seen.push(event.unwrap());
            }
        }
        kv.shutdown().await;
        while let Some(got) = slow.next().await {
            check(got, &seen, &mut at);
        }
        assert_eq!(at, seen.len(), "the slow stream's events and losses add up");
        let mut all = Vec::new();
        while let Some(event) = unread.next().await {
            all.push(event.unwrap());
        }
        assert_eq!(all, seen, "the unread stream");
        // What the reader kept is still the version it was sent: rebuilding the next one did not
        // change it in place.
        for (at, event) in held {
            assert_eq!(event, seen[at], "event {at} changed after it was read");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn a_late_reader_rebuilds_every_version_it_keeps_exactly(
            capacity in 1..8usize,
            keep in 0..2u8,
            steps in proptest::collection::vec(step(), 1..80),
        ) {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .start_paused(true)
                .build()
                .unwrap()
                .block_on(run(capacity, keep, steps));
        }
    }
}
