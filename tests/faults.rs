//! Faults (`docs/rules.md` rules 11 and 12, and every rule the reference model encodes): callers
//! that give up half-way never leave a call half-applied (rule 12), a shutdown in the middle of
//! thousands of calls answers or closes each one (rule 11), and inputs nobody would choose (empty,
//! huge and non-ASCII keys) are answered as the model says.
//!
//! Hostile values, in-process (rule 28): a value nested 100,000 levels deep (far past `MAX_DEPTH`,
//! deep enough that dropping it recursively would overflow a thread's stack and abort the process)
//! is refused with `TooDeep` by every call that takes a value, from the caller or from a closure,
//! and the store keeps serving; and (rules 18 and 19) closures whose captures panic on drop, queued
//! behind a shutdown and dropped unrun, do not abort the process. Calls that could abort the
//! process run in a child process of this test binary (`in_child`). What holds on both backends at
//! `MAX_DEPTH` itself is in `tests/conformance/hostile.rs`.

mod support;

use std::fmt;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use ephemeral_kv::{KvBuilder, KvError, KvHandle};
use proptest::prelude::*;
use serde_json::{json, Value};
use support::drive::{answer, check, keys_of, paused_runtime, run, spawn};
use support::ops::{op, pool_key, script, setup, wild_key, Answer, Op, Setup, HANDLES, POOL};
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
async fn give_up(op: &Op, kvs: &[KvHandle], how: Cancel) -> Option<Answer> {
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
    fn observe(&mut self, op: &Op, got: &Answer) -> Result<(), String> {
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

/// A call that takes a place in the mailbox just as the owner task closes it (tokio's channel lets
/// a sender that got room before the close put its command in afterwards) is still refused: the
/// owner takes what is left until the channel is empty, instead of leaving it to wait for an
/// answer as long as any handle lives. The window is narrow, so this races many small stores.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_call_that_gets_room_as_the_mailbox_closes_is_refused_not_left_waiting() {
    const CALLERS: u64 = 48;
    for round in 0..3000 {
        let kv = KvBuilder::new().mailbox_capacity(2).spawn();
        kv.set("fixed", 7).await.unwrap();
        let mut calls = JoinSet::new();
        for id in 0..CALLERS / 2 {
            spawn_call(&mut calls, &kv, id);
        }
        let stopping = tokio::spawn({
            let kv = kv.clone();
            async move { kv.shutdown().await }
        });
        for id in CALLERS / 2..CALLERS {
            spawn_call(&mut calls, &kv, id);
        }
        stopping.await.unwrap();
        let outcomes = tokio::time::timeout(Duration::from_secs(10), calls.join_all())
            .await
            .unwrap_or_else(|_| panic!("round {round}: a call was left waiting after shutdown"));
        assert_eq!(outcomes.len(), CALLERS as usize);
        judge(outcomes);
        assert_stopped(&kv).await;
    }
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

/// `levels` nested arrays around `1`, built without recursion. Never drop one deeper than a few
/// thousand levels here: `Value`'s own drop recurses. Hand it to a call by value.
fn nested(levels: usize) -> Value {
    let mut value = json!(1);
    for _ in 0..levels {
        value = Value::Array(vec![value]);
    }
    value
}

/// Deep enough that a recursive drop, clone or serialization overflows a test thread's stack.
const ABYSS: usize = 100_000;

/// Whether `result` is the refusal of a too-deep value for `key`.
fn is_too_deep<T: fmt::Debug>(result: &Result<T, KvError>, key: &str) -> bool {
    matches!(result, Err(KvError::TooDeep { key: k, limit: 128 }) if k == key)
}

#[tokio::test(start_paused = true)]
async fn rule_28_a_value_nested_a_hundred_thousand_levels_is_refused_by_every_call_without_an_abort(
) {
    let kv = KvHandle::builder().prefix("app:").spawn();
    kv.set("k", "before").await.unwrap();
    assert!(is_too_deep(&kv.set("k", nested(ABYSS)).await, "app:k"));
    assert!(is_too_deep(
        &kv.mset([("fresh", json!(1)), ("k", nested(ABYSS))]).await,
        "app:k"
    ));
    assert!(is_too_deep(
        &kv.list_push("l", [nested(ABYSS)]).await,
        "app:l"
    ));
    let mut item = json!({"id": 1});
    item["deep"] = nested(ABYSS);
    assert!(is_too_deep(
        &kv.list_append_unique("l", [item]).await,
        "app:l"
    ));
    assert!(is_too_deep(
        &kv.set_if_absent("absent", nested(ABYSS)).await,
        "app:absent"
    ));
    assert!(is_too_deep(
        &kv.compare_and_set("k", Some(json!("before")), nested(ABYSS))
            .await,
        "app:k"
    ));
    assert!(is_too_deep(
        &kv.compare_and_set("k", Some(nested(ABYSS)), "after").await,
        "app:k"
    ));
    // Made by a closure on the owner task: taken apart there, without recursion.
    assert!(is_too_deep(
        &kv.update("k", |_| Some(nested(ABYSS))).await,
        "app:k"
    ));
    let staged = kv
        .transaction(|txn| {
            txn.set("fresh", 1);
            txn.set("deep", nested(ABYSS));
        })
        .await;
    assert!(is_too_deep(&staged, "app:deep"), "{staged:?}");
    // Nothing changed, and the store keeps serving.
    assert_eq!(
        kv.mget(["k", "fresh", "l", "absent", "deep"])
            .await
            .unwrap(),
        vec![
            Some(std::sync::Arc::new(json!("before"))),
            None,
            None,
            None,
            None
        ]
    );
    kv.set("after", 1).await.unwrap();
    assert_eq!(kv.get("after").await.unwrap().as_deref(), Some(&json!(1)));
    assert!(!kv.is_closed());
}

/// Set in the environment of a child process started by [`in_child`].
const CHILD: &str = "EPHEMERAL_KV_FAULTS_CHILD";

/// Runs `body` in a child process of this test binary, where the test named `test` (the caller)
/// runs alone; in that child, runs `body` itself. Returns whether the child exited successfully,
/// and what it printed: an abort (a stack overflow, a panic while panicking) ends only the child.
fn in_child(test: &str, body: impl FnOnce()) -> (bool, String) {
    if std::env::var_os(CHILD).is_some() {
        body();
        return (true, String::new());
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--include-ignored", "--nocapture"])
        .args(["--test-threads", "1"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (
        output.status.success() && printed.contains("1 passed"),
        printed,
    )
}

/// A deep value handed over by reference is serialized (a `&Value` is not moved in as a `Value`
/// is), recursively: it must still be refused, not overflow the caller's stack.
#[test]
fn rule_28_a_deep_value_given_by_reference_is_refused_without_overflowing_the_stack() {
    let (ok, printed) = in_child(
        "rule_28_a_deep_value_given_by_reference_is_refused_without_overflowing_the_stack",
        || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let kv = KvHandle::spawn();
                let deep = nested(ABYSS);
                let refused = kv.set("k", &deep).await;
                assert!(is_too_deep(&refused, "k"), "{refused:?}");
                std::mem::forget(deep); // dropping it here would overflow the stack
                assert_eq!(kv.get("k").await.unwrap(), None);
            });
        },
    );
    assert!(ok, "the child process failed:\n{printed}");
}

/// A captured value whose `Drop` panics (see `tests/conformance/hostile.rs`).
struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("PanicsOnDrop dropped");
    }
}

/// Closures are dropped quietly when the owner task runs them; the ones it drops unrun, queued
/// behind a shutdown, must not take the process down either.
#[test]
fn rule_18_19_closures_that_panic_on_drop_queued_behind_a_shutdown_do_not_abort_the_process() {
    let (ok, printed) = in_child(
        "rule_18_19_closures_that_panic_on_drop_queued_behind_a_shutdown_do_not_abort_the_process",
        || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let kv = KvHandle::spawn();
                kv.set("k", 1).await.unwrap();
                // Each polled once, in order, before the owner task runs: the shutdown, then two
                // updates behind it in the mailbox.
                let mut stopping = Box::pin(kv.shutdown());
                assert!(futures::poll!(stopping.as_mut()).is_pending());
                let mut updates = Vec::new();
                for _ in 0..2 {
                    let guard = PanicsOnDrop;
                    let mut update = Box::pin(kv.update("k", move |cur| {
                        let _held = &guard;
                        cur.cloned()
                    }));
                    assert!(futures::poll!(update.as_mut()).is_pending());
                    updates.push(update);
                }
                tokio::time::timeout(Duration::from_secs(10), stopping)
                    .await
                    .expect("shutdown hung");
                for update in updates {
                    let result = tokio::time::timeout(Duration::from_secs(10), update)
                        .await
                        .expect("an update hung");
                    assert!(matches!(result, Err(KvError::Closed)), "{result:?}");
                }
            });
        },
    );
    assert!(ok, "the child process failed:\n{printed}");
}
