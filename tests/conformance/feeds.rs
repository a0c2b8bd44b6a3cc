//! Rules 23 (`watch`), 24 (`wait_for`), 25 (`stats().watchers`), 27 (the blocking
//! `list_pop_front(..).wait(..)`) and 30 (one event per key per command) of `docs/rules.md`, on
//! both backends: in-process, and on Redis, where the change stream pushes them
//! (`docs/redis-feed.md`). Handles built separately (as separate processes would build them) share
//! one store through [`Backend::second`]: on Redis, each has its own owner task, connection and
//! feed.
//!
//! `on_redis` (with `--features redis`): what only a Redis server can show: another client's
//! entries in the documented format, a stream trimmed past its feed (`Lagged` with the exact
//! count), a stream that vanished, a feed whose connection is killed, and that no stream exists
//! until someone waits.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use ephemeral_kv::{KvError, WatchEvent, WatchStream};
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::time::timeout;

use crate::backend::Backend;

fn set(key: &str, value: Value) -> WatchEvent {
    WatchEvent::Set {
        key: key.into(),
        value: Arc::new(value),
    }
}

fn deleted(key: &str) -> WatchEvent {
    WatchEvent::Deleted { key: key.into() }
}

/// The next `n` items, which must all be events; fails rather than hangs if fewer come.
async fn next_events(b: &impl Backend, stream: &mut WatchStream, n: usize) -> Vec<WatchEvent> {
    let mut events = Vec::new();
    for _ in 0..n {
        match timeout(b.units(50), stream.next()).await {
            Ok(item) => events.push(item.unwrap().unwrap()),
            Err(_) => panic!("expected {n} events, got only {events:?}"),
        }
    }
    events
}

/// Whether nothing more comes within a unit of time.
async fn quiet(b: &impl Backend, stream: &mut WatchStream) -> bool {
    match timeout(b.unit(), stream.next()).await {
        Err(_) => true,
        Ok(item) => {
            eprintln!("unexpected item {item:?}");
            false
        }
    }
}

conformance!(
    rule_23_every_kind_of_write_is_seen_in_apply_order_under_the_prefix_only,
    rule_23_calls_that_fail_or_change_nothing_send_no_event,
    rule_23_watchers_of_two_handles_see_a_third_handles_writes_in_one_order,
    rule_23_a_reader_that_falls_behind_is_told_exactly_how_many_it_missed,
    rule_23_25_dropping_the_stream_unsubscribes_and_watchers_are_counted,
    rule_23_the_stream_ends_after_the_events_before_a_shutdown,
    rule_23_expirations,
    rule_24_wait_for_wakes_on_a_write_by_another_handle,
    rule_24_25_waits_are_counted_and_forgotten_when_dropped,
    rule_30_an_mset_naming_a_key_twice_gives_one_event_with_the_last_value,
    rule_27_four_workers_on_one_inbox_each_push_wakes_one_and_every_job_is_taken_once,
    rule_27_a_blocking_pop_times_out_empty_and_a_dropped_one_takes_nothing,
);

async fn rule_23_every_kind_of_write_is_seen_in_apply_order_under_the_prefix_only(
    b: &impl Backend,
) {
    let kv = b.kv().await;
    let mut events = kv.watch("job:").await.unwrap();
    kv.set("job:1", "queued").await.unwrap();
    kv.set("other", 1).await.unwrap();
    kv.mset([("job:2", 2), ("jo", 0)]).await.unwrap();
    kv.incr("job:n", 5).await.unwrap();
    kv.list_push("job:l", [json!({"id": 1}), json!(2)])
        .await
        .unwrap();
    kv.list_append_unique("job:l", [json!({"id": 3})])
        .await
        .unwrap();
    kv.list_pop_front("job:l", 1).await.unwrap();
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
        next_events(b, &mut events, 14).await,
        vec![
            set("job:1", json!("queued")),
            set("job:2", json!(2)),
            set("job:n", json!(5)),
            set("job:l", json!([{"id": 1}, 2])),
            set("job:l", json!([{"id": 1}, 2, {"id": 3}])),
            set("job:l", json!([2, {"id": 3}])),
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
    assert!(quiet(b, &mut events).await);
}

async fn rule_23_calls_that_fail_or_change_nothing_send_no_event(b: &impl Backend) {
    let kv = b.kv().await;
    kv.set("k", "text").await.unwrap();
    kv.set("ttl", 1).await.unwrap();
    let mut events = kv.watch("").await.unwrap();
    assert!(kv.incr("k", 1).await.is_err());
    assert!(!kv.set_if_absent("k", 1).await.unwrap());
    assert!(!kv.compare_and_set("k", None, 1).await.unwrap());
    assert!(kv.update("k", |_| panic!("no")).await.is_err());
    assert!(kv.list_push("k", [1]).await.is_err());
    assert!(kv.list_pop_front("missing", 3).await.unwrap().is_empty());
    kv.transaction(|txn| {
        txn.set("k", 1);
        txn.abort()
    })
    .await
    .unwrap();
    kv.delete("missing").await.unwrap();
    assert!(kv.expire("ttl", b.units(100)).await.unwrap()); // a TTL is not a value
    assert!(kv.persist("ttl").await.unwrap());
    kv.set("last", 0).await.unwrap();
    assert_eq!(
        next_events(b, &mut events, 1).await,
        vec![set("last", json!(0))]
    );
}

/// Two watchers in handles built separately see every write of a third, made by concurrent
/// tasks, exactly once, in one same order, each key's writes in the order they were made.
async fn rule_23_watchers_of_two_handles_see_a_third_handles_writes_in_one_order(b: &impl Backend) {
    let first = b.kv().await;
    let second = b.second(&first).await;
    let writer = b.second(&first).await;
    let mut a = first.watch("w:").await.unwrap();
    let mut c = second.watch("w:").await.unwrap();
    const TASKS: usize = 4;
    const WRITES: usize = 50;
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let kv = writer.clone();
            tokio::spawn(async move {
                for i in 0..WRITES {
                    kv.set(format!("w:{task}"), i).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let seen_a = next_events(b, &mut a, TASKS * WRITES).await;
    let seen_c = next_events(b, &mut c, TASKS * WRITES).await;
    assert_eq!(seen_a, seen_c);
    let mut per_key: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for event in &seen_a {
        let n = event.value().unwrap().as_u64().unwrap();
        per_key.entry(event.key().to_owned()).or_default().push(n);
    }
    let expected: Vec<u64> = (0..WRITES as u64).collect();
    assert_eq!(per_key.len(), TASKS);
    for values in per_key.values() {
        assert_eq!(values, &expected);
    }
    assert!(quiet(b, &mut a).await && quiet(b, &mut c).await);
}

async fn rule_23_a_reader_that_falls_behind_is_told_exactly_how_many_it_missed(b: &impl Backend) {
    let kv = b.kv().await;
    let mut slow = kv.watch("n:").capacity(4).await.unwrap();
    let mut fast = kv.watch("n:").await.unwrap();
    for i in 0..100 {
        kv.set(format!("n:{i}"), i).await.unwrap();
    }
    // Once the fast reader has the last change, the slow one's ring has had it too.
    let all = next_events(b, &mut fast, 100).await;
    assert_eq!(all[99], set("n:99", json!(99)));
    match timeout(b.units(10), slow.next()).await.unwrap() {
        Some(Err(KvError::Lagged { prefix, missed })) => {
            assert_eq!(prefix, b.full("n:"));
            assert_eq!(missed, 96);
        }
        other => panic!("expected Lagged, got {other:?}"),
    }
    assert_eq!(
        next_events(b, &mut slow, 4).await,
        (96..100)
            .map(|i| set(&format!("n:{i}"), json!(i)))
            .collect::<Vec<_>>()
    );
    // It goes on.
    kv.set("n:next", 0).await.unwrap();
    assert_eq!(
        next_events(b, &mut slow, 1).await,
        vec![set("n:next", json!(0))]
    );
}

async fn rule_23_25_dropping_the_stream_unsubscribes_and_watchers_are_counted(b: &impl Backend) {
    let kv = b.kv().await;
    let a = kv.watch("a:").await.unwrap();
    let c = kv.watch("c:").await.unwrap();
    assert_eq!(kv.stats().await.unwrap().watchers, 2);
    drop(a);
    assert_eq!(kv.stats().await.unwrap().watchers, 1);
    drop(c);
    assert_eq!(kv.stats().await.unwrap().watchers, 0);
    // Writes go on, and a new watcher sees only what comes after it.
    kv.set("a:1", 1).await.unwrap();
    let mut again = kv.watch("a:").await.unwrap();
    kv.set("a:2", 2).await.unwrap();
    assert_eq!(
        next_events(b, &mut again, 1).await,
        vec![set("a:2", json!(2))]
    );
}

async fn rule_23_the_stream_ends_after_the_events_before_a_shutdown(b: &impl Backend) {
    let kv = b.kv().await;
    let mut events = kv.watch("").await.unwrap();
    kv.set("k", 1).await.unwrap();
    kv.shutdown().await;
    assert_eq!(
        next_events(b, &mut events, 1).await,
        vec![set("k", json!(1))]
    );
    assert!(timeout(b.units(50), events.next()).await.unwrap().is_none());
    assert!(matches!(kv.watch("").await, Err(KvError::Closed)));
}

/// In-process, an expiry is an event; Redis expires keys itself, out of the scripts' sight, and
/// the change stream does not report it (`docs/redis-feed.md`).
async fn rule_23_expirations(b: &impl Backend) {
    let kv = b.kv().await;
    let mut events = kv.watch("").await.unwrap();
    kv.set("lease", 1).ttl(b.unit()).await.unwrap();
    assert_eq!(
        next_events(b, &mut events, 1).await,
        vec![set("lease", json!(1))]
    );
    b.pass(3).await;
    assert!(!kv.exists("lease").await.unwrap());
    kv.set("after", 2).await.unwrap();
    let mut expected = Vec::new();
    if b.reports_expirations() {
        expected.push(WatchEvent::Expired {
            key: "lease".into(),
        });
    }
    expected.push(set("after", json!(2)));
    assert_eq!(next_events(b, &mut events, expected.len()).await, expected);
}

async fn rule_24_wait_for_wakes_on_a_write_by_another_handle(b: &impl Backend) {
    let kv = b.kv().await;
    let other = b.second(&kv).await;
    let waiter = kv.clone();
    let waiting = tokio::spawn(async move { waiter.wait_for("job:7:result").await });
    b.pass(1).await;
    assert!(!waiting.is_finished());
    other.set("job:7:unrelated", 0).await.unwrap();
    other.delete("job:7:result").await.unwrap(); // a delete does not wake it
    b.pass(1).await;
    assert!(!waiting.is_finished());
    other.set("job:7:result", json!({"rows": 3})).await.unwrap();
    let value = timeout(b.units(10), waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(*value, json!({"rows": 3}));
    // A wait on the other handle, woken by this one's list push.
    let waiter = other.clone();
    let waiting = tokio::spawn(async move { waiter.wait_for("inbox").await });
    b.pass(1).await;
    kv.list_push("inbox", [1, 2]).await.unwrap();
    let value = timeout(b.units(10), waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(*value, json!([1, 2]));
}

async fn rule_24_25_waits_are_counted_and_forgotten_when_dropped(b: &impl Backend) {
    let kv = b.kv().await;
    let waiters: Vec<_> = (0..3)
        .map(|i| {
            let kv = kv.clone();
            tokio::spawn(async move { kv.wait_for(format!("k{i}")).await })
        })
        .collect();
    let popper = kv.clone();
    let pop = tokio::spawn(async move {
        popper
            .list_pop_front("q", 1)
            .wait(Duration::from_secs(60))
            .await
    });
    let watch = kv.watch("").await.unwrap();
    b.pass(1).await;
    assert_eq!(kv.stats().await.unwrap().watchers, 5);
    for waiter in &waiters {
        waiter.abort();
    }
    pop.abort();
    b.pass(1).await;
    assert_eq!(kv.stats().await.unwrap().watchers, 1);
    drop(watch);
    assert_eq!(kv.stats().await.unwrap().watchers, 0);
    // Dropped waits took nothing: the items are there.
    kv.list_push("q", [1]).await.unwrap();
    b.pass(1).await;
    assert_eq!(kv.list_pop_front("q", 5).await.unwrap(), vec![json!(1)]);
}

async fn rule_30_an_mset_naming_a_key_twice_gives_one_event_with_the_last_value(b: &impl Backend) {
    let kv = b.kv().await;
    let mut events = kv.watch("").await.unwrap();
    kv.mset([("k", json!(1)), ("j", json!(0)), ("k", json!(2))])
        .await
        .unwrap();
    kv.transaction(|txn| {
        txn.set("t", 1);
        txn.delete("t");
    })
    .await
    .unwrap();
    kv.set("end", 0).await.unwrap();
    assert_eq!(
        next_events(b, &mut events, 3).await,
        vec![set("k", json!(2)), set("j", json!(0)), set("end", json!(0))]
    );
}

/// Four workers, on two handles built separately, wait on one inbox: each push of one job wakes
/// one of them, and every job is taken exactly once.
async fn rule_27_four_workers_on_one_inbox_each_push_wakes_one_and_every_job_is_taken_once(
    b: &impl Backend,
) {
    let kv = b.kv().await;
    let other = b.second(&kv).await;
    let (done, mut taken) = tokio::sync::mpsc::unbounded_channel();
    let workers: Vec<_> = (0..4)
        .map(|worker| {
            let kv = if worker % 2 == 0 {
                kv.clone()
            } else {
                other.clone()
            };
            let done = done.clone();
            tokio::spawn(async move {
                loop {
                    let jobs = kv
                        .list_pop_front("inbox", 1)
                        .wait(Duration::from_secs(60))
                        .await
                        .unwrap();
                    for job in jobs {
                        if job == json!("stop") {
                            return;
                        }
                        done.send((worker, job)).unwrap();
                    }
                }
            })
        })
        .collect();
    b.pass(1).await;
    // One job: exactly one worker takes it, the others go on waiting.
    kv.list_push("inbox", [json!(0)]).await.unwrap();
    let (_, job) = timeout(b.units(10), taken.recv()).await.unwrap().unwrap();
    assert_eq!(job, json!(0));
    b.pass(1).await;
    assert!(taken.try_recv().is_err());
    // The four are waiting again: in-process all on one store, on Redis two per handle.
    let here = kv.stats().await.unwrap().watchers;
    let there = other.stats().await.unwrap().watchers;
    assert!(
        (here, there) == (4, 4) || (here, there) == (2, 2),
        "{here} {there}"
    );
    // Many jobs, pushed one at a time through both handles while the workers run.
    for n in 1..40 {
        let pusher = if n % 2 == 0 { &kv } else { &other };
        pusher.list_push("inbox", [json!(n)]).await.unwrap();
    }
    let mut jobs = vec![0];
    let mut by = HashSet::new();
    while jobs.len() < 40 {
        let (worker, job) = timeout(b.units(50), taken.recv()).await.unwrap().unwrap();
        by.insert(worker);
        jobs.push(job.as_u64().unwrap());
    }
    jobs.sort_unstable();
    assert_eq!(jobs, (0..40).collect::<Vec<u64>>());
    kv.list_push("inbox", ["stop", "stop", "stop", "stop"])
        .await
        .unwrap();
    for worker in workers {
        timeout(b.units(50), worker).await.unwrap().unwrap();
    }
    assert!(taken.try_recv().is_err());
    assert!(!kv.exists("inbox").await.unwrap());
}

async fn rule_27_a_blocking_pop_times_out_empty_and_a_dropped_one_takes_nothing(b: &impl Backend) {
    let kv = b.kv().await;
    let idle = kv
        .list_pop_front("inbox", 1)
        .wait(b.units(2))
        .await
        .unwrap();
    assert!(idle.is_empty());
    // A pop that gives up (its future dropped) takes nothing of what comes later.
    let gave_up = timeout(b.unit(), kv.list_pop_front("inbox", 1).wait(b.units(50))).await;
    assert!(gave_up.is_err());
    kv.list_push("inbox", [1, 2, 3]).await.unwrap();
    b.pass(1).await;
    // Items already there are taken at once, up to the count.
    assert_eq!(
        kv.list_pop_front("inbox", 2)
            .wait(b.units(50))
            .await
            .unwrap(),
        vec![json!(1), json!(2)]
    );
    assert_eq!(kv.list_pop_all("inbox").await.unwrap(), vec![json!(3)]);
}

#[cfg(feature = "redis")]
mod on_redis {
    use std::time::{Duration, Instant};

    use ephemeral_kv::{KvError, KvHandle, WatchEvent};
    use futures::StreamExt;
    use redis::AsyncCommands;
    use serde_json::json;
    use tokio::time::timeout;

    use super::set;
    use crate::support::redis_server::RedisServer;

    const NO_HANG: Duration = Duration::from_secs(10);

    async fn connect(server: &RedisServer, prefix: &str) -> KvHandle {
        KvHandle::builder()
            .prefix(prefix)
            .redis(server.url())
            .await
            .expect("connect to the test's redis-server")
    }

    async fn client(server: &RedisServer) -> redis::aio::MultiplexedConnection {
        redis::Client::open(server.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    async fn next(events: &mut ephemeral_kv::WatchStream) -> Result<WatchEvent, KvError> {
        timeout(NO_HANG, events.next())
            .await
            .expect("an item in time")
            .expect("an open stream")
    }

    /// Another client's entries, in the format of `docs/redis.md`, reach watchers, waits
    /// and blocking pops: a producer in another language can feed them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn another_clients_entries_in_the_documented_format_are_seen() {
        let Some(server) =
            RedisServer::start("another_clients_entries_in_the_documented_format_are_seen").await
        else {
            return;
        };
        let kv = connect(&server, "app:").await;
        let mut redis = client(&server).await;
        let mut events = kv.watch("").await.unwrap();
        let waiter = kv.clone();
        let waiting = tokio::spawn(async move { waiter.wait_for("k").await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let stream = "app:ekv:changes";
        assert_eq!(redis.key_type::<_, String>(stream).await.unwrap(), "stream");
        let _: () = redis::cmd("XADD")
            .arg(stream)
            .arg("*")
            .arg(&["k", "app:k", "e", "set", "v", r#"{"a":[1,2.5]}"#])
            .query_async(&mut redis)
            .await
            .unwrap();
        let _: () = redis::cmd("XADD")
            .arg(stream)
            .arg("*")
            .arg(&["ekv", "marker"]) // not a change: skipped
            .query_async(&mut redis)
            .await
            .unwrap();
        let _: () = redis::cmd("XADD")
            .arg(stream)
            .arg("*")
            .arg(&["k", "app:k", "e", "set", "v", "{not json"]) // skipped, logged
            .query_async(&mut redis)
            .await
            .unwrap();
        let _: () = redis::cmd("XADD")
            .arg(stream)
            .arg("*")
            .arg(&["k", "app:k", "e", "del"])
            .query_async(&mut redis)
            .await
            .unwrap();
        assert_eq!(
            next(&mut events).await.unwrap(),
            set("k", json!({"a": [1, 2.5]}))
        );
        assert_eq!(
            next(&mut events).await.unwrap(),
            WatchEvent::Deleted { key: "k".into() }
        );
        let value = timeout(NO_HANG, waiting).await.unwrap().unwrap().unwrap();
        assert_eq!(*value, json!({"a": [1, 2.5]}));
    }

    /// Entries trimmed from the stream (MAXLEN) before the feed read them: `Lagged` with their
    /// exact number, then the entries still there.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn entries_trimmed_before_the_feed_read_them_are_lagged_with_their_number() {
        let Some(server) = RedisServer::start(
            "entries_trimmed_before_the_feed_read_them_are_lagged_with_their_number",
        )
        .await
        else {
            return;
        };
        let kv = connect(&server, "app:").await;
        let mut redis = client(&server).await;
        let mut events = kv.watch("").await.unwrap();
        // 300 entries added and trimmed to the last 100 in one atomic step: the feed cannot have
        // read any of the first 200.
        let _: () = redis::cmd("EVAL")
            .arg(
                "for i = 1, 300 do redis.call('XADD', KEYS[1], 'MAXLEN', '100', '*', \
                 'k', 'app:n', 'e', 'set', 'v', tostring(i)) end",
            )
            .arg(1)
            .arg("app:ekv:changes")
            .query_async(&mut redis)
            .await
            .unwrap();
        match next(&mut events).await {
            Err(KvError::Lagged { prefix, missed }) => {
                assert_eq!(prefix, "app:");
                assert_eq!(missed, 200);
            }
            other => panic!("expected Lagged, got {other:?}"),
        }
        for i in 201..=300 {
            assert_eq!(next(&mut events).await.unwrap(), set("n", json!(i)));
        }
    }

    /// The stream vanished (here deleted; a restart or a flush does the same): the watchers that
    /// were reading it are told they lagged by an unknown number, and go on with the new one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stream_that_vanished_is_lagged_and_the_new_one_is_read() {
        let Some(server) =
            RedisServer::start("a_stream_that_vanished_is_lagged_and_the_new_one_is_read").await
        else {
            return;
        };
        let kv = connect(&server, "app:").await;
        let other = connect(&server, "app:").await;
        let mut redis = client(&server).await;
        let mut old = kv.watch("").await.unwrap();
        let waiter = kv.clone();
        let waiting = tokio::spawn(async move { waiter.wait_for("list").await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let _: () = redis.del("app:ekv:changes").await.unwrap();
        // Unrecorded (there is no stream): the wait is read again once the feed sees the new
        // stream, and finds the list.
        let _: () = redis.rpush("app:list", &["1", "2"]).await.unwrap();
        let mut new = other.watch("").await.unwrap(); // makes the stream again
        let _: () = redis::cmd("XADD")
            .arg("app:ekv:changes")
            .arg("*")
            .arg(&["k", "app:k", "e", "set", "v", "1"])
            .query_async(&mut redis)
            .await
            .unwrap();
        assert!(matches!(
            next(&mut old).await,
            Err(KvError::Lagged {
                missed: u64::MAX,
                ..
            })
        ));
        assert_eq!(next(&mut old).await.unwrap(), set("k", json!(1)));
        assert_eq!(next(&mut new).await.unwrap(), set("k", json!(1)));
        let value = timeout(NO_HANG, waiting).await.unwrap().unwrap().unwrap();
        assert_eq!(*value, json!([1, 2]));
    }

    /// The ids of the feed connections (`ekv:feed`) the server has now.
    async fn feed_connections(redis: &mut redis::aio::MultiplexedConnection) -> Vec<String> {
        let clients: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query_async(redis)
            .await
            .unwrap();
        clients
            .lines()
            .filter(|line| line.contains(" name=ekv:feed "))
            .filter_map(|line| line.split(' ').find_map(|f| f.strip_prefix("id=")))
            .map(str::to_owned)
            .collect()
    }

    /// The feed's connection is killed: it reconnects and goes on from where it was, nothing
    /// lost or repeated, and a parked wait is still woken.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_killed_feed_connection_resumes_where_it_was() {
        let Some(server) =
            RedisServer::start("a_killed_feed_connection_resumes_where_it_was").await
        else {
            return;
        };
        let kv = connect(&server, "app:").await;
        let mut redis = client(&server).await;
        let mut events = kv.watch("").await.unwrap();
        let waiter = kv.clone();
        let waiting = tokio::spawn(async move { waiter.wait_for("late").await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let add = |n: u32| {
            let mut command = redis::cmd("XADD");
            command
                .arg("app:ekv:changes")
                .arg("*")
                .arg(&["k", "app:n", "e", "set", "v"])
                .arg(n.to_string());
            command
        };
        let _: () = add(1).query_async(&mut redis).await.unwrap();
        assert_eq!(next(&mut events).await.unwrap(), set("n", json!(1)));
        // The feed's connection is named.
        let feed = feed_connections(&mut redis).await;
        assert_eq!(feed.len(), 1, "{feed:?}");
        let _: () = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(&feed[0])
            .query_async(&mut redis)
            .await
            .unwrap();
        for n in 2..=4 {
            let _: () = add(n).query_async(&mut redis).await.unwrap();
        }
        for n in 2..=4 {
            assert_eq!(next(&mut events).await.unwrap(), set("n", json!(n)));
        }
        // The wait parked before the kill is woken by a write after it (another client's: its
        // value, then its entry).
        let _: () = redis.set("app:late", r#""yes""#).await.unwrap();
        let _: () = redis::cmd("XADD")
            .arg("app:ekv:changes")
            .arg("*")
            .arg(&["k", "app:late", "e", "set", "v", r#""yes""#])
            .query_async(&mut redis)
            .await
            .unwrap();
        let value = timeout(NO_HANG, waiting).await.unwrap().unwrap().unwrap();
        assert_eq!(*value, json!("yes"));
        assert_eq!(next(&mut events).await.unwrap(), set("late", json!("yes")));
        assert!(timeout(Duration::from_millis(300), events.next())
            .await
            .is_err());
    }

    /// The server restarts, empty: the feed reconnects, its watchers are told they lagged by an
    /// unknown number (writes in between were never recorded) and go on with the new stream, and
    /// a parked wait is read again and woken.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_server_restart_is_lagged_and_waits_go_on() {
        let Some(mut server) =
            RedisServer::start("a_server_restart_is_lagged_and_waits_go_on").await
        else {
            return;
        };
        let kv = connect(&server, "app:").await;
        let mut events = kv.watch("").await.unwrap();
        let waiter = kv.clone();
        let waiting = tokio::spawn(async move { waiter.wait_for("k").await });
        let popper = kv.clone();
        let popping = tokio::spawn(async move {
            popper
                .list_pop_front("q", 1)
                .wait(Duration::from_secs(30))
                .await
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        server.restart().await;
        assert!(matches!(
            next(&mut events).await,
            Err(KvError::Lagged {
                missed: u64::MAX,
                ..
            })
        ));
        // The stream is there again: writes are seen, and wake the wait and the pop.
        let start = Instant::now();
        loop {
            match kv.set("k", 1).await {
                Ok(()) => break,
                Err(_) if start.elapsed() < NO_HANG => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => panic!("{error}"),
            }
        }
        assert_eq!(next(&mut events).await.unwrap(), set("k", json!(1)));
        let value = timeout(NO_HANG, waiting).await.unwrap().unwrap().unwrap();
        assert_eq!(*value, json!(1));
        kv.list_push("q", ["job"]).await.unwrap();
        let jobs = timeout(NO_HANG, popping).await.unwrap().unwrap().unwrap();
        assert_eq!(jobs, vec![json!("job")]);
    }

    /// No stream exists until someone waits: writes, a `wait_for` that finds its value and a
    /// blocking pop that finds items create none. A watcher's stream has a TTL it refreshes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_stream_exists_until_someone_waits() {
        let Some(server) = RedisServer::start("no_stream_exists_until_someone_waits").await else {
            return;
        };
        let kv = connect(&server, "app:").await;
        let mut redis = client(&server).await;
        kv.set("k", 1).await.unwrap();
        kv.list_push("q", [1]).await.unwrap();
        assert_eq!(*kv.wait_for("k").await.unwrap(), json!(1));
        assert_eq!(
            kv.list_pop_front("q", 1)
                .wait(Duration::from_secs(1))
                .await
                .unwrap(),
            vec![json!(1)]
        );
        let exists: bool = redis.exists("app:ekv:changes").await.unwrap();
        assert!(!exists);
        let events = kv.watch("").await.unwrap();
        let ttl: i64 = redis.pttl("app:ekv:changes").await.unwrap();
        assert!(ttl > 50_000 && ttl <= 60_000, "{ttl}");
        drop(events);
    }

    /// Wake-up latency of `wait_for` and of a blocking pop, beside one `GET` and one `set`, all
    /// measured the same way (after 2 ms of spinning, so that no thread is parked): run with
    /// `cargo test --release --features redis --test conformance measure_wake_up_latency --
    /// --ignored --nocapture`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "a measurement, not a test"]
    async fn measure_wake_up_latency() {
        let Some(server) = RedisServer::start("measure_wake_up_latency").await else {
            return;
        };
        let kv = connect(&server, "app:").await;
        let writer = connect(&server, "app:").await;
        async fn spin() {
            let until = Instant::now() + Duration::from_millis(2);
            while Instant::now() < until {
                tokio::task::yield_now().await;
            }
        }
        let runs = 500u32;
        let (mut get, mut plain_set) = (Duration::ZERO, Duration::ZERO);
        for i in 0..runs {
            spin().await;
            let start = Instant::now();
            writer.get("k").await.unwrap();
            get += start.elapsed();
            spin().await;
            let start = Instant::now();
            writer.set("plain", i).await.unwrap();
            plain_set += start.elapsed();
        }
        let _watching = kv.watch("nothing:").await.unwrap(); // the stream exists throughout
        let (mut set_call, mut wake) = (Duration::ZERO, Duration::ZERO);
        for i in 0..runs {
            let key = format!("w{i}");
            let waiter = kv.clone();
            let k = key.clone();
            let (tx, rx) = tokio::sync::oneshot::channel();
            tokio::spawn(async move {
                let _ = waiter.wait_for(&k).await;
                let _ = tx.send(Instant::now());
            });
            spin().await;
            let start = Instant::now();
            writer.set(&key, i).await.unwrap();
            set_call += start.elapsed();
            wake += rx.await.unwrap() - start;
        }
        let (mut push_call, mut pop) = (Duration::ZERO, Duration::ZERO);
        for i in 0..runs {
            let waiter = kv.clone();
            let (tx, rx) = tokio::sync::oneshot::channel();
            tokio::spawn(async move {
                let _ = waiter
                    .list_pop_front("jobs", 1)
                    .wait(Duration::from_secs(5))
                    .await;
                let _ = tx.send(Instant::now());
            });
            spin().await;
            let start = Instant::now();
            writer.list_push("jobs", [i]).await.unwrap();
            push_call += start.elapsed();
            pop += rx.await.unwrap() - start;
        }
        println!(
            "mean over {runs}: GET {:?}; set (no stream) {:?}; set (stream) {:?}, its wait_for \
             woken {:?} after the set was sent; list_push {:?}, its blocking pop answered {:?} \
             after the push was sent",
            get / runs,
            plain_set / runs,
            set_call / runs,
            wake / runs,
            push_call / runs,
            pop / runs
        );
    }
}
