//! Faults (`docs/rules.md` rules 11 and 12, and every rule the reference model encodes): callers
//! that give up half-way never leave a call half-applied (rule 12), a shutdown in the middle of
//! thousands of calls answers or closes each one (rule 11), and inputs nobody would choose (empty,
//! huge and non-ASCII keys) are answered as the model says.

mod support;

use std::fmt;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use ephemeral_kv::{KvBuilder, KvError, KvHandle};
use proptest::prelude::*;
use serde_json::{json, Value};
use support::drive::{answer, check, keys_of, paused_runtime, run, spawn};
use support::ops::{op, pool_key, script, setup, wild_key, Op, Reply, Setup, HANDLES, POOL};
use support::reference::Model;
use tokio::task::JoinSet;

/// How a caller gives up on a call.
#[derive(Clone, Copy, Debug)]
enum Cancel {
    /// Polls the call's future this many times (yielding to the owner task in between), then
    /// drops it. Zero polls: the command is never sent.
    Drop { polls: usize },
    /// Spawns the call as a task and aborts it after yielding this many times.
    Abort { yields: usize },
    /// `tokio::time::timeout(Duration::ZERO, call)`: polled once, then dropped.
    ZeroTimeout,
}

/// A call, perhaps given up on.
#[derive(Clone)]
struct Step {
    op: Op,
    cancel: Option<Cancel>,
}

impl fmt::Debug for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.cancel {
            Some(cancel) => write!(f, "{cancel:?} of {:?}", self.op),
            None => write!(f, "{:?}", self.op),
        }
    }
}

fn step() -> impl Strategy<Value = Step> {
    let cancel = prop_oneof![
        (0usize..4).prop_map(|polls| Cancel::Drop { polls }),
        (0usize..3).prop_map(|yields| Cancel::Abort { yields }),
        Just(Cancel::ZeroTimeout),
    ];
    (op(pool_key()), proptest::option::weighted(0.4, cancel))
        .prop_map(|(op, cancel)| Step { op, cancel })
}

/// Runs `op` and gives up on it as `how` says. `Some(reply)` if it completed before that.
async fn give_up(op: &Op, kvs: &[KvHandle], how: Cancel) -> Option<Reply> {
    match how {
        Cancel::Drop { polls } => {
            let mut call = pin!(run(op, kvs));
            for _ in 0..polls {
                if let Poll::Ready(reply) = futures::poll!(call.as_mut()) {
                    return Some(reply);
                }
                tokio::task::yield_now().await;
            }
            None
        }
        Cancel::Abort { yields } => {
            let (op, kvs) = (op.clone(), kvs.to_vec());
            let task = tokio::spawn(async move { run(&op, &kvs).await });
            for _ in 0..yields {
                tokio::task::yield_now().await;
            }
            task.abort();
            task.await.ok()
        }
        Cancel::ZeroTimeout => tokio::time::timeout(Duration::ZERO, run(op, kvs))
            .await
            .ok(),
    }
}

/// Every state the store may be in: a cancelled call may or may not have reached the owner task,
/// so each one doubles the candidates; the reads that follow it rule out the wrong ones. A call
/// applied in part would match no candidate.
struct Candidates(Vec<Model>);

impl Candidates {
    /// Keeps the candidates that would have answered `got` to `op`; fails if none would.
    fn observe(&mut self, op: &Op, got: &Reply) -> Result<(), String> {
        let mut allowed = Vec::new();
        self.0.retain_mut(|model| {
            let replies = model.apply(op);
            let fits = replies.contains(got);
            allowed.extend(replies);
            fits
        });
        if self.0.is_empty() {
            return Err(format!(
                "`{op:?}`: the store answered {got:?}, models allow {allowed:?}"
            ));
        }
        Ok(())
    }

    /// Adds, for each candidate, the state in which `op` was applied.
    fn maybe_applied(&mut self, op: &Op) {
        let mut next = Vec::with_capacity(self.0.len() * 2);
        for model in self.0.drain(..) {
            let mut applied = model.clone();
            applied.apply(op);
            next.push(model);
            if !next.contains(&applied) {
                next.push(applied);
            }
        }
        self.0 = next;
    }
}

/// Every pool key through every handle, as seen from the first handle, then `stats`: one read that
/// tells the candidates apart.
fn probe() -> [Op; 2] {
    let keys = HANDLES
        .iter()
        .flat_map(|(_, prefix)| POOL.iter().map(move |key| format!("{prefix}{key}")))
        .collect();
    [Op::Mget { h: 0, keys }, Op::Stats { h: 0 }]
}

async fn check_with_cancels(setup: Setup, steps: &[Step]) -> Result<(), String> {
    let kvs = spawn(setup);
    let mut candidates = Candidates(vec![Model::new(setup, tokio::time::Instant::now())]);
    for (index, step) in steps.iter().enumerate() {
        let at = |error: String| format!("step {index} `{step:?}`: {error}");
        let cancel = step.cancel.filter(|_| !matches!(step.op, Op::Advance(_)));
        let Some(how) = cancel else {
            let got = answer(&step.op, &kvs).await.map_err(at)?;
            candidates.observe(&step.op, &got).map_err(at)?;
            continue;
        };
        match give_up(&step.op, &kvs, how).await {
            Some(got) => candidates.observe(&step.op, &got).map_err(at)?,
            None => candidates.maybe_applied(&step.op),
        }
        for op in probe() {
            let got = answer(&op, &kvs).await.map_err(at)?;
            candidates.observe(&op, &got).map_err(at)?;
        }
    }
    for op in (0..HANDLES.len()).map(|h| Op::Mget {
        h,
        keys: POOL.iter().map(|key| key.to_string()).collect(),
    }) {
        let final_check = |error: String| format!("final check: {error}");
        let got = answer(&op, &kvs).await.map_err(final_check)?;
        candidates.observe(&op, &got).map_err(final_check)?;
    }
    Ok(())
}

proptest! {
    #[test]
    fn cancelled_callers_never_corrupt_or_stop_the_store(
        setup in setup(),
        steps in proptest::collection::vec(step(), 0..30),
    ) {
        let outcome = paused_runtime().block_on(check_with_cancels(setup, &steps));
        prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(64)
    ))]

    /// Empty keys, keys of 20,000 characters, any Unicode: answered as the model says, and the
    /// owner task never panics (a panic would close the store and every later call would differ).
    #[test]
    fn any_key_at_all_is_answered_as_the_model_says(script in script(wild_key(), 20)) {
        let keys = keys_of(&script);
        let outcome = paused_runtime().block_on(check(&script, &keys));
        prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
    }
}

/// What one in-flight call got when the store shut down under it.
enum Outcome {
    Appended(u64, Vec<Value>),
    Read(Option<Value>),
    Written,
    Closed,
}

/// Spawns call number `id`: an append of a distinct id, a read of `fixed` (which holds 7), or a
/// write, by turns.
fn spawn_call(calls: &mut JoinSet<(u64, Outcome)>, kv: &KvHandle, id: u64) {
    let kv = kv.clone();
    calls.spawn(async move {
        let outcome = match id % 3 {
            0 => kv
                .list_append_unique("log", [json!({ "id": id })])
                .await
                .map(|list| Outcome::Appended(id, list.into_vec())),
            1 => kv
                .get("fixed")
                .await
                .map(|value| Outcome::Read(value.as_deref().cloned())),
            _ => kv
                .set(format!("k{id}"), id)
                .await
                .map(|()| Outcome::Written),
        };
        match outcome {
            Ok(outcome) => (id, outcome),
            Err(KvError::Closed) => (id, Outcome::Closed),
            Err(other) => panic!("call {id} failed with {other}"),
        }
    });
}

/// Checks that every call either did what it should or got `Closed`, and that the appends that
/// answered are exactly those in the last list answered: none lost, none applied unanswered.
/// Returns the ids of the calls that got `Closed`.
fn judge(outcomes: Vec<(u64, Outcome)>) -> Vec<u64> {
    let mut appended = Vec::new();
    let mut longest: Vec<Value> = Vec::new();
    let mut closed = Vec::new();
    for (id, outcome) in outcomes {
        match outcome {
            Outcome::Appended(id, list) => {
                assert!(list.contains(&json!({ "id": id })));
                appended.push(id);
                if list.len() > longest.len() {
                    longest = list;
                }
            }
            Outcome::Read(value) => assert_eq!(value, Some(json!(7))),
            Outcome::Written => {}
            Outcome::Closed => closed.push(id),
        }
    }
    let mut in_list: Vec<u64> = longest
        .iter()
        .map(|item| item["id"].as_u64().unwrap())
        .collect();
    in_list.sort_unstable();
    appended.sort_unstable();
    assert_eq!(in_list, appended);
    closed.sort_unstable();
    closed
}

/// A store that has shut down refuses every call, and a second shutdown returns at once.
async fn assert_stopped(kv: &KvHandle) {
    assert!(kv.is_closed());
    assert!(matches!(kv.get("fixed").await, Err(KvError::Closed)));
    assert!(matches!(kv.set("x", 1).await, Err(KvError::Closed)));
    kv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_with_thousands_of_calls_in_flight_answers_each_or_closes_it() {
    const HALF: u64 = 2000;
    let mut answered = 0;
    let mut closed = 0;
    for _round in 0..5 {
        // A small mailbox, so that most callers are still waiting for room when shutdown comes.
        let kv = KvBuilder::new().mailbox_capacity(64).spawn();
        kv.set("fixed", 7).await.unwrap();
        let mut calls = JoinSet::new();
        for id in 0..HALF {
            spawn_call(&mut calls, &kv, id);
        }
        let stopping = tokio::spawn({
            let kv = kv.clone();
            async move { kv.shutdown().await }
        });
        for id in HALF..2 * HALF {
            spawn_call(&mut calls, &kv, id);
        }
        tokio::time::timeout(Duration::from_secs(10), stopping)
            .await
            .expect("shutdown hung")
            .unwrap();
        let outcomes = tokio::time::timeout(Duration::from_secs(10), calls.join_all())
            .await
            .expect("a call hung after shutdown");
        let refused = judge(outcomes).len();
        closed += refused;
        answered += 2 * HALF as usize - refused;
        assert_stopped(&kv).await;
    }
    assert!(
        answered > 0 && closed > 0,
        "{answered} answered, {closed} closed"
    );
}

/// The same, in an order the current-thread runtime makes exact: the calls queued before the
/// shutdown are all answered, the ones queued after it all get `Closed`.
#[tokio::test]
async fn shutdown_answers_the_calls_queued_before_it_and_closes_the_ones_after() {
    const HALF: u64 = 2000;
    let kv = KvBuilder::new().mailbox_capacity(64).spawn();
    kv.set("fixed", 7).await.unwrap();
    let mut calls = JoinSet::new();
    for id in 0..HALF {
        spawn_call(&mut calls, &kv, id);
    }
    // One turn of the scheduler: each call is polled once, so it is in the mailbox or waiting, in
    // order, for room in it.
    tokio::task::yield_now().await;
    let stopping = tokio::spawn({
        let kv = kv.clone();
        async move { kv.shutdown().await }
    });
    tokio::task::yield_now().await;
    for id in HALF..2 * HALF {
        spawn_call(&mut calls, &kv, id);
    }
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("shutdown hung")
        .unwrap();
    let outcomes = tokio::time::timeout(Duration::from_secs(10), calls.join_all())
        .await
        .expect("a call hung after shutdown");
    assert_eq!(judge(outcomes), (HALF..2 * HALF).collect::<Vec<_>>());
    assert_stopped(&kv).await;
}

#[tokio::test(start_paused = true)]
async fn calls_in_flight_when_the_first_handle_is_dropped_all_complete() {
    let kv = KvHandle::builder().mailbox_capacity(4).spawn();
    let mut calls = JoinSet::new();
    for id in 0..100u64 {
        let kv = kv.clone();
        calls.spawn(async move {
            kv.set(format!("k{id}"), id).await.unwrap();
            (id, kv.get_as::<u64>(format!("k{id}")).await.unwrap())
        });
    }
    drop(kv);
    let results = tokio::time::timeout(Duration::from_secs(10), calls.join_all())
        .await
        .expect("a call hung");
    // Each caller holds a handle until its calls are answered, so the store serves them all.
    assert_eq!(results.len(), 100);
    for (id, read) in results {
        assert_eq!(read, Some(id));
    }
}

#[tokio::test(start_paused = true)]
async fn aborting_a_flood_of_tasks_leaves_the_store_answering() {
    let kv = KvHandle::spawn();
    let mut tasks = JoinSet::new();
    for id in 0..2000u64 {
        let kv = kv.clone();
        tasks.spawn(async move {
            kv.list_append_unique("l", [json!({ "id": id })])
                .await
                .unwrap();
        });
    }
    tokio::task::yield_now().await;
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    // Whatever reached the owner was applied whole: each id at most once, in a list.
    let list = kv.list_pop_all("l").await.unwrap();
    let mut ids: Vec<u64> = list
        .iter()
        .map(|item| item["id"].as_u64().unwrap())
        .collect();
    let count = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), count);
    kv.set("after", 1).await.unwrap();
    assert_eq!(kv.get("after").await.unwrap().as_deref(), Some(&json!(1)));
}
