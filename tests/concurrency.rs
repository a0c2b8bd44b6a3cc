//! What a linearizable store must show when many tasks on the multi-thread runtime share it through
//! cloned handles (`docs/rules.md`: rule 6's "no reader ever sees part of an `mset`", and the "never
//! lost" of rules 4, 5, 15, 18 and 19, here with real threads): no lost update, no item popped twice
//! or never, no half-seen `mset`, no read going back in time, and small random histories that some
//! sequential order of their calls explains (checked against the reference model).

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ephemeral_kv::KvHandle;
use proptest::prelude::*;
use serde_json::{json, Value};
use support::drive::{run, spawn};
use support::ops::{op, pool_key, setup, Answer, Op, Setup, HANDLES, POOL};
use support::reference::Model;
use tokio::sync::Barrier;
use tokio::task::JoinSet;

/// Bounds every test: a hang is a failure, not a stuck CI run.
const DEADLINE: Duration = Duration::from_secs(30);

/// The ids in a list of `{"id": n}` items.
fn ids(list: &[Value]) -> Vec<u64> {
    list.iter()
        .map(|item| item["id"].as_u64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_append_of_a_distinct_id_is_lost() {
    const TASKS: u64 = 16;
    const EACH: u64 = 50;
    let kv = KvHandle::spawn();
    let start = Arc::new(Barrier::new(TASKS as usize));
    let mut tasks = JoinSet::new();
    for task in 0..TASKS {
        // Half the tasks reach the same list through a prefixed handle.
        let (kv, key) = if task % 2 == 0 {
            (kv.clone(), "shared:list")
        } else {
            (kv.with_prefix("shared:"), "list")
        };
        let start = Arc::clone(&start);
        tasks.spawn(async move {
            start.wait().await;
            let mut mine = Vec::new();
            for n in 0..EACH {
                let id = task * EACH + n;
                let list = kv.list_append_unique(key, [json!({ "id": id })]).await?;
                mine.push(id);
                // Every reply holds all of this task's earlier appends, in order.
                let seen: Vec<u64> = ids(&list)
                    .into_iter()
                    .filter(|id| id / EACH == task)
                    .collect();
                assert_eq!(seen, mine);
            }
            Ok::<_, ephemeral_kv::KvError>(())
        });
    }
    let joined = tokio::time::timeout(DEADLINE, tasks.join_all())
        .await
        .unwrap();
    for result in joined {
        result.unwrap();
    }
    let mut all = ids(&kv.list_pop_all("shared:list").await.unwrap());
    all.sort_unstable();
    assert_eq!(all, (0..TASKS * EACH).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_item_is_popped_exactly_once_across_consumers() {
    const PRODUCERS: u64 = 4;
    const EACH: u64 = 500;
    const CONSUMERS: usize = 4;
    let kv = KvHandle::spawn();
    let producing = Arc::new(AtomicUsize::new(PRODUCERS as usize));
    let mut producers = JoinSet::new();
    for producer in 0..PRODUCERS {
        let kv = kv.clone();
        let producing = Arc::clone(&producing);
        producers.spawn(async move {
            for n in 0..EACH {
                let id = producer * EACH + n;
                kv.list_append_unique("inbox", [json!({ "id": id })])
                    .await
                    .unwrap();
            }
            producing.fetch_sub(1, Ordering::SeqCst);
        });
    }
    let mut consumers = JoinSet::new();
    for _ in 0..CONSUMERS {
        let kv = kv.clone();
        let producing = Arc::clone(&producing);
        consumers.spawn(async move {
            let mut popped = Vec::new();
            loop {
                // Read the flag first: a pop after the last producer finished sees everything.
                let done = producing.load(Ordering::SeqCst) == 0;
                popped.extend(ids(&kv.list_pop_all("inbox").await.unwrap()));
                if done {
                    return popped;
                }
                tokio::task::yield_now().await;
            }
        });
    }
    tokio::time::timeout(DEADLINE, producers.join_all())
        .await
        .unwrap();
    let popped = tokio::time::timeout(DEADLINE, consumers.join_all())
        .await
        .unwrap();
    let mut all: Vec<u64> = popped.into_iter().flatten().collect();
    all.sort_unstable();
    assert_eq!(all, (0..PRODUCERS * EACH).collect::<Vec<_>>());
    assert_eq!(kv.stats().await.unwrap().entries, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_reader_sees_half_of_an_mset() {
    const WRITERS: u64 = 3;
    const WRITES: u64 = 300;
    const READERS: usize = 3;
    let kv = KvHandle::spawn();
    let keys = ["a", "b", "c", "d"];
    let writing = Arc::new(AtomicBool::new(true));
    let mut readers = JoinSet::new();
    for _ in 0..READERS {
        let kv = kv.clone();
        let writing = Arc::clone(&writing);
        readers.spawn(async move {
            let mut reads = 0u64;
            while writing.load(Ordering::SeqCst) {
                let values = kv.mget(keys).await.unwrap();
                assert!(
                    values.iter().all(|value| *value == values[0]),
                    "saw half of an mset: {values:?}"
                );
                reads += 1;
                tokio::task::yield_now().await;
            }
            reads
        });
    }
    let mut writers = JoinSet::new();
    for writer in 0..WRITERS {
        let kv = kv.clone();
        writers.spawn(async move {
            for n in 0..WRITES {
                let value = json!({ "writer": writer, "n": n });
                kv.mset(keys.map(|key| (key, value.clone()))).await.unwrap();
            }
        });
    }
    tokio::time::timeout(DEADLINE, writers.join_all())
        .await
        .unwrap();
    writing.store(false, Ordering::SeqCst);
    let reads = tokio::time::timeout(DEADLINE, readers.join_all())
        .await
        .unwrap();
    assert!(
        reads.iter().all(|&n| n > 0),
        "a reader never ran: {reads:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reader_never_goes_back_in_time() {
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
                    let n = n.as_u64().unwrap();
                    assert!(n >= last, "saw {n} after {last}");
                    last = n;
                }
            })
        })
        .collect();
    tokio::time::timeout(DEADLINE, writer)
        .await
        .unwrap()
        .unwrap();
    for reader in readers {
        tokio::time::timeout(DEADLINE, reader)
            .await
            .unwrap()
            .unwrap();
    }
    assert_eq!(
        kv.mget(["a", "b", "c"]).await.unwrap(),
        vec![Some(Arc::new(json!(500))); 3]
    );
}

/// `incr`, `update` and `transaction` lose no increment, and inbox items are popped exactly once,
/// with the workers on real threads and on two handles (one prefixed onto the other's namespace).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_counter_update_is_lost_and_no_item_popped_twice() {
    let kv = KvHandle::spawn();
    let handles = [
        kv.with_prefix("race:"),
        kv.with_prefix("ra").with_prefix("ce:"),
    ];
    tokio::time::timeout(
        DEADLINE,
        support::races::inbox_and_counters(&handles, 16, 40),
    )
    .await
    .unwrap();
}

/// One completed call of a concurrent history, with its place in real time: `start` and `end` are
/// tickets from one shared counter, so `a.end < b.start` means `a` returned before `b` was called.
#[derive(Debug, Clone)]
struct Event {
    #[allow(dead_code)] // read only in failure messages
    task: usize,
    op: Op,
    reply: Answer,
    start: usize,
    end: usize,
}

/// Whether some order of `events` that keeps real-time order (and so each task's own order) makes
/// the model give every recorded reply, and then answer `finals` as the store did. Depth-first
/// over the orders; histories are small.
fn linearizable(
    model: &Model,
    events: &[Event],
    placed: &mut Vec<bool>,
    finals: &[(Op, Answer)],
) -> bool {
    if placed.iter().all(|&p| p) {
        let mut model = model.clone();
        return finals
            .iter()
            .all(|(op, reply)| model.apply(op).contains(reply));
    }
    for (i, event) in events.iter().enumerate() {
        let ready = !placed[i]
            && events
                .iter()
                .enumerate()
                .all(|(j, other)| placed[j] || j == i || other.end > event.start);
        if !ready {
            continue;
        }
        let mut next = model.clone();
        if !next.apply(&event.op).contains(&event.reply) {
            continue;
        }
        placed[i] = true;
        if linearizable(&next, events, placed, finals) {
            return true;
        }
        placed[i] = false;
    }
    false
}

/// The generated operations with time taken out: this runtime's clock is real, so a TTL here is
/// either zero (refused) or an hour, and clock advances become `stats` calls.
fn timeless(op: Op) -> Op {
    let hour = |ttl: Duration| {
        if ttl.is_zero() {
            ttl
        } else {
            Duration::from_secs(3600)
        }
    };
    match op {
        Op::Advance(_) => Op::Stats { h: 0 },
        Op::Set { h, key, value, ttl } => Op::Set {
            h,
            key,
            value,
            ttl: ttl.map(hour),
        },
        Op::ListAppendUnique {
            h,
            key,
            items,
            id_key,
            ttl,
        } => Op::ListAppendUnique {
            h,
            key,
            items,
            id_key,
            ttl: ttl.map(hour),
        },
        Op::ListPush {
            h,
            key,
            items,
            max_len,
            ttl,
        } => Op::ListPush {
            h,
            key,
            items,
            max_len,
            ttl: ttl.map(hour),
        },
        Op::Mset { h, entries, ttl } => Op::Mset {
            h,
            entries,
            ttl: ttl.map(hour),
        },
        Op::Expire { h, key, ttl } => Op::Expire {
            h,
            key,
            ttl: hour(ttl),
        },
        Op::Incr { h, key, by, ttl } => Op::Incr {
            h,
            key,
            by,
            ttl: ttl.map(hour),
        },
        Op::SetIfAbsent { h, key, value, ttl } => Op::SetIfAbsent {
            h,
            key,
            value,
            ttl: ttl.map(hour),
        },
        Op::CompareAndSet {
            h,
            key,
            expected,
            new,
            ttl,
        } => Op::CompareAndSet {
            h,
            key,
            expected,
            new,
            ttl: ttl.map(hour),
        },
        Op::Transaction { h, f } => Op::Transaction {
            h,
            f: f.map_ttl(hour),
        },
        // The time left on a real clock is not the model's to predict.
        Op::TtlOf { h, key } => Op::Exists { h, key },
        other => other,
    }
}

/// Runs each task's calls concurrently, all tasks released at once, and records the history.
async fn record(setup: Setup, tasks: Vec<Vec<Op>>) -> (Vec<Event>, Vec<(Op, Answer)>) {
    let kvs = spawn(setup);
    let clock = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(tasks.len()));
    let mut running = JoinSet::new();
    for (task, ops) in tasks.into_iter().enumerate() {
        let (kvs, clock, start) = (kvs.clone(), Arc::clone(&clock), Arc::clone(&start));
        running.spawn(async move {
            start.wait().await;
            let mut events = Vec::new();
            for op in ops {
                let begin = clock.fetch_add(1, Ordering::SeqCst);
                let reply = run(&op, &kvs).await;
                let end = clock.fetch_add(1, Ordering::SeqCst);
                events.push(Event {
                    task,
                    op,
                    reply,
                    start: begin,
                    end,
                });
            }
            events
        });
    }
    let events = tokio::time::timeout(DEADLINE, running.join_all())
        .await
        .unwrap()
        .into_iter()
        .flatten()
        .collect();
    let keys: Vec<String> = POOL.iter().map(|key| key.to_string()).collect();
    let mut finals = Vec::new();
    for op in (0..HANDLES.len())
        .map(|h| Op::Mget {
            h,
            keys: keys.clone(),
        })
        .chain([Op::Stats { h: 0 }])
    {
        let reply = run(&op, &kvs).await;
        finals.push((op, reply));
    }
    (events, finals)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(96)
    ))]

    #[test]
    fn small_histories_have_a_sequential_order_that_explains_them(
        setup in setup(),
        tasks in proptest::collection::vec(
            proptest::collection::vec(op(pool_key()).prop_map(timeless), 1..=3),
            2..=3,
        ),
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(3)
            .enable_all()
            .build()
            .unwrap();
        let (events, finals) = runtime.block_on(record(setup, tasks));
        let model = Model::new(setup, tokio::time::Instant::now());
        let mut placed = vec![false; events.len()];
        prop_assert!(
            linearizable(&model, &events, &mut placed, &finals),
            "no sequential order explains {events:#?}\nthen {finals:#?}"
        );
    }
}

#[test]
fn the_history_checker_rejects_an_impossible_history() {
    // Two calls in real-time order whose replies only fit the other order.
    let setup = Setup {
        prefix: "",
        active_expiry: false,
    };
    let set = Op::Set {
        h: 0,
        key: "x".into(),
        value: support::ops::Val::Json(json!(1)),
        ttl: None,
    };
    let get = Op::Get {
        h: 0,
        key: "x".into(),
    };
    let events = vec![
        Event {
            task: 0,
            op: get.clone(),
            reply: Answer::Value(None),
            start: 2,
            end: 3,
        },
        Event {
            task: 1,
            op: set,
            reply: Answer::Done,
            start: 0,
            end: 1,
        },
    ];
    let finals = vec![(get, Answer::Value(Some(json!(1))))];
    let model = Model::new(setup, tokio::time::Instant::now());
    assert!(!linearizable(&model, &events, &mut vec![false; 2], &finals));
    // The same history with overlapping calls is fine: the get may have come first.
    let mut overlapping = events.clone();
    overlapping[1].end = 2;
    overlapping[0].start = 1;
    assert!(linearizable(
        &model,
        &overlapping,
        &mut vec![false; 2],
        &finals
    ));
}
