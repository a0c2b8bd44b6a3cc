//! Model-based comparison of the two backends on the rules of `docs/rules.md` they share without
//! a clock (4–7, 13's error kinds, 15–22, 26 and 27): random sequences of calls run on the Redis-backed handle
//! and on the in-process handle (the reference here), with the same prefix; every answer, errors
//! included, must agree. No TTLs: the two backends run on different clocks, and the conformance
//! suite covers expiry. Few cases, since each call is a round trip.

#![cfg(feature = "redis")]

mod support;

use ephemeral_kv::{KvError, KvHandle};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};

const KEYS: [&str; 4] = ["a", "b", "ab", "c"];

#[derive(Debug, Clone)]
enum Op {
    Set(usize, Value),
    Get(usize),
    Delete(usize),
    Append(usize, Vec<Value>),
    Pop(usize),
    Mset(Vec<(usize, Value)>),
    Mget(Vec<usize>),
    Incr(usize, i64),
    SetIfAbsent(usize, Value),
    Cas(usize, Option<Value>, Value),
    GetDel(usize),
    Exists(usize),
    Scan(String),
    UpdateAdd(usize, i64),
    Transfer(usize, usize),
    Push(usize, Vec<Value>, Option<usize>),
    PopFront(usize, usize),
}

fn key() -> impl Strategy<Value = usize> {
    0..KEYS.len()
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (-3i64..4).prop_map(Value::from),
        1 => Just(json!(i64::MAX)),
        1 => Just(json!("text")),
        1 => Just(json!([{"id": 1}, 7])),
        1 => Just(json!({"b": 1, "a": [null, 1.5]})),
    ]
}

/// An id for `list_append_unique`: numbers compare by value (`2.0` is the id `2`), `"1"` is not
/// `1`, and a list is refused.
fn id() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => (0i64..4).prop_map(Value::from),
        1 => Just(json!(2.0)),
        1 => Just(json!("1")),
        1 => Just(Value::Null),
        1 => Just(json!([1])),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (key(), value()).prop_map(|(k, v)| Op::Set(k, v)),
        key().prop_map(Op::Get),
        key().prop_map(Op::Delete),
        (key(), proptest::collection::vec(id(), 0..4)).prop_map(|(k, ids)| Op::Append(k, ids)),
        key().prop_map(Op::Pop),
        proptest::collection::vec((key(), value()), 0..4).prop_map(Op::Mset),
        proptest::collection::vec(key(), 0..4).prop_map(Op::Mget),
        (key(), prop_oneof![-3i64..4, Just(i64::MAX), Just(i64::MIN)])
            .prop_map(|(k, by)| Op::Incr(k, by)),
        (key(), value()).prop_map(|(k, v)| Op::SetIfAbsent(k, v)),
        (key(), proptest::option::of(value()), value()).prop_map(|(k, e, n)| Op::Cas(k, e, n)),
        key().prop_map(Op::GetDel),
        key().prop_map(Op::Exists),
        prop_oneof![Just(""), Just("a"), Just("b")].prop_map(|p| Op::Scan(p.to_owned())),
        (key(), -3i64..4).prop_map(|(k, by)| Op::UpdateAdd(k, by)),
        (key(), key()).prop_map(|(from, to)| Op::Transfer(from, to)),
        (
            key(),
            proptest::collection::vec(value(), 0..4),
            proptest::option::of(0usize..4)
        )
            .prop_map(|(k, items, max_len)| Op::Push(k, items, max_len)),
        (key(), 0usize..4).prop_map(|(k, n)| Op::PopFront(k, n)),
    ]
}

/// One call's answer, as text: `Debug` of the value, or of the error (whose keys carry the same
/// prefix on both handles).
async fn run(kv: &KvHandle, op: &Op) -> String {
    fn show<T: std::fmt::Debug>(result: Result<T, KvError>) -> String {
        format!("{result:?}")
    }
    match op.clone() {
        Op::Set(k, v) => show(kv.set(KEYS[k], v).await),
        Op::Get(k) => show(kv.get(KEYS[k]).await),
        Op::Delete(k) => show(kv.delete(KEYS[k]).await),
        Op::Append(k, ids) => {
            let items: Vec<Value> = ids.iter().map(|id| json!({"id": id, "n": k})).collect();
            show(kv.list_append_unique(KEYS[k], items).await)
        }
        Op::Pop(k) => show(kv.list_pop_all(KEYS[k]).await),
        Op::Push(k, items, max_len) => {
            let call = kv.list_push(KEYS[k], items);
            match max_len {
                Some(max_len) => show(call.max_len(max_len).await),
                None => show(call.await),
            }
        }
        Op::PopFront(k, n) => show(kv.list_pop_front(KEYS[k], n).await),
        Op::Mset(pairs) => show(kv.mset(pairs.into_iter().map(|(k, v)| (KEYS[k], v))).await),
        Op::Mget(keys) => show(kv.mget(keys.into_iter().map(|k| KEYS[k])).await),
        Op::Incr(k, by) => show(kv.incr(KEYS[k], by).await),
        Op::SetIfAbsent(k, v) => show(kv.set_if_absent(KEYS[k], v).await),
        Op::Cas(k, expected, new) => show(kv.compare_and_set(KEYS[k], expected, new).await),
        Op::GetDel(k) => show(kv.get_del(KEYS[k]).await),
        Op::Exists(k) => show(kv.exists(KEYS[k]).await),
        Op::Scan(prefix) => show(kv.scan_prefix(prefix).await),
        Op::UpdateAdd(k, by) => show(
            kv.update(KEYS[k], move |cur| match cur {
                None => Some(json!(by)),
                Some(value) => value.as_i64().map(|n| json!(n.wrapping_add(by))),
            })
            .await,
        ),
        Op::Transfer(from, to) => show(
            kv.transaction(move |txn| {
                let amount = txn.get(KEYS[from]).and_then(Value::as_i64).unwrap_or(0);
                let have = txn.get(KEYS[to]).and_then(Value::as_i64).unwrap_or(0);
                if from != to {
                    txn.delete(KEYS[from]);
                    txn.set(KEYS[to], have.wrapping_add(amount));
                }
                amount
            })
            .await,
        ),
    }
}

#[test]
fn the_redis_handle_answers_like_the_in_process_handle() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some(server) = runtime.block_on(support::redis_server::RedisServer::start(
        "the_redis_handle_answers_like_the_in_process_handle",
    )) else {
        return;
    };
    let mut runner = TestRunner::new(Config {
        cases: 24,
        ..Config::default()
    });
    let case = std::sync::atomic::AtomicUsize::new(0);
    let result = runner.run(&proptest::collection::vec(op(), 1..40), |ops| {
        // A fresh namespace per case (and per shrinking step) on the one server.
        let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let prefix = format!("case{n}:");
        runtime.block_on(async {
            let local = KvHandle::builder().prefix(&prefix).spawn();
            let redis = KvHandle::builder()
                .prefix(&prefix)
                .redis(server.url())
                .await
                .unwrap();
            for (step, op) in ops.iter().enumerate() {
                let expected = run(&local, op).await;
                let actual = run(&redis, op).await;
                prop_assert_eq!(&actual, &expected, "step {} {:?}", step, op);
            }
            let everything = run(&local, &Op::Scan(String::new())).await;
            prop_assert_eq!(run(&redis, &Op::Scan(String::new())).await, everything);
            Ok(())
        })
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
