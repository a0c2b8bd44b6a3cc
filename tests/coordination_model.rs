//! Model-based property test of the coordination commands: random sequences of calls (with clock
//! advances) run against the store and against a plain `BTreeMap` model; every answer and the final
//! contents must agree. Closures that panic and transactions that panic are part of the mix.

use std::collections::BTreeMap;
use std::time::Duration;

use ephemeral_kv::{KvError, KvHandle, Ttl};
use proptest::prelude::*;
use serde_json::{json, Value};

const KEYS: [&str; 4] = ["a", "b", "ab", "c"];

#[derive(Debug, Clone)]
enum Op {
    Set(usize, Value, Option<u64>),
    Incr(usize, i64, Option<u64>),
    SetIfAbsent(usize, i64, Option<u64>),
    Cas(usize, Option<Value>, i64, Option<u64>),
    UpdateAdd(usize, i64),
    UpdateDelete(usize),
    UpdatePanic(usize),
    Txn(Vec<(usize, Option<i64>)>, bool),
    GetDel(usize),
    Exists(usize),
    Ttl(usize),
    Persist(usize),
    Scan(String, usize),
    Advance(u64),
}

fn key() -> impl Strategy<Value = usize> {
    0..KEYS.len()
}

fn ttl() -> impl Strategy<Value = Option<u64>> {
    prop_oneof![Just(None), (1u64..40).prop_map(Some)]
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (-3i64..4).prop_map(Value::from),
        1 => Just(json!(i64::MAX)),
        1 => Just(json!("text")),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (key(), value(), ttl()).prop_map(|(k, v, t)| Op::Set(k, v, t)),
        (key(), prop_oneof![-3i64..4, Just(i64::MAX)], ttl())
            .prop_map(|(k, b, t)| Op::Incr(k, b, t)),
        (key(), -3i64..4, ttl()).prop_map(|(k, v, t)| Op::SetIfAbsent(k, v, t)),
        (key(), proptest::option::of(value()), -3i64..4, ttl())
            .prop_map(|(k, e, n, t)| Op::Cas(k, e, n, t)),
        (key(), -3i64..4).prop_map(|(k, b)| Op::UpdateAdd(k, b)),
        key().prop_map(Op::UpdateDelete),
        key().prop_map(Op::UpdatePanic),
        (
            proptest::collection::vec((key(), proptest::option::of(-3i64..4)), 0..4),
            proptest::bool::weighted(0.2)
        )
            .prop_map(|(w, p)| Op::Txn(w, p)),
        key().prop_map(Op::GetDel),
        key().prop_map(Op::Exists),
        key().prop_map(Op::Ttl),
        key().prop_map(Op::Persist),
        (
            prop_oneof![Just(""), Just("a"), Just("ab"), Just("z")],
            0usize..4
        )
            .prop_map(|(p, l)| Op::Scan(p.to_owned(), l)),
        (1u64..30).prop_map(Op::Advance),
    ]
}

/// The reference: key -> (value, deadline in ms on the test's clock).
#[derive(Default)]
struct Model {
    now: u64,
    map: BTreeMap<String, (Value, Option<u64>)>,
}

impl Model {
    fn live(&mut self, key: &str) -> Option<&mut (Value, Option<u64>)> {
        let now = self.now;
        if self
            .map
            .get(key)
            .is_some_and(|(_, d)| d.is_some_and(|d| d <= now))
        {
            self.map.remove(key);
        }
        self.map.get_mut(key)
    }

    fn deadline(&self, ttl: Option<u64>) -> Option<u64> {
        ttl.map(|t| self.now + t)
    }
}

/// Runs one op on both sides and returns the two answers, rendered comparable.
async fn step(kv: &KvHandle, model: &mut Model, op: &Op) -> (String, String) {
    let ms = Duration::from_millis;
    match op.clone() {
        Op::Set(k, v, t) => {
            let call = kv.set(KEYS[k], v.clone());
            let real = match t {
                Some(t) => call.ttl(ms(t)).await,
                None => call.await,
            };
            let d = model.deadline(t);
            model.map.insert(KEYS[k].into(), (v, d));
            (format!("{real:?}"), "Ok(())".into())
        }
        Op::Incr(k, by, t) => {
            let call = kv.incr(KEYS[k], by);
            let real = match t {
                Some(t) => call.ttl(ms(t)).await,
                None => call.await,
            };
            let d = model.deadline(t);
            let expected = match model.live(KEYS[k]) {
                None => {
                    model.map.insert(KEYS[k].into(), (json!(by), d));
                    Ok(by)
                }
                Some((v, _)) => match v.as_i64() {
                    None => Err("wrong type"),
                    Some(cur) => match cur.checked_add(by) {
                        None => Err("overflow"),
                        Some(n) => {
                            *v = json!(n);
                            Ok(n)
                        }
                    },
                },
            };
            let real = real.map_err(|e| match e {
                KvError::WrongType { .. } => "wrong type",
                KvError::Overflow { .. } => "overflow",
                _ => "other",
            });
            (format!("{real:?}"), format!("{expected:?}"))
        }
        Op::SetIfAbsent(k, v, t) => {
            let call = kv.set_if_absent(KEYS[k], v);
            let real = match t {
                Some(t) => call.ttl(ms(t)).await,
                None => call.await,
            };
            let d = model.deadline(t);
            let stored = model.live(KEYS[k]).is_none();
            if stored {
                model.map.insert(KEYS[k].into(), (json!(v), d));
            }
            (
                format!("{real:?}"),
                format!("{:?}", Ok::<_, KvError>(stored)),
            )
        }
        Op::Cas(k, expected, new, t) => {
            let call = kv.compare_and_set(KEYS[k], expected.clone(), new);
            let real = match t {
                Some(t) => call.ttl(ms(t)).await,
                None => call.await,
            };
            let fresh = model.deadline(t);
            let swapped = match (model.live(KEYS[k]), &expected) {
                (Some((v, d)), Some(e)) if v == e => {
                    *v = json!(new);
                    if t.is_some() {
                        *d = fresh;
                    }
                    true
                }
                (None, None) => {
                    model.map.insert(KEYS[k].into(), (json!(new), fresh));
                    true
                }
                _ => false,
            };
            (
                format!("{real:?}"),
                format!("{:?}", Ok::<_, KvError>(swapped)),
            )
        }
        Op::UpdateAdd(k, by) => {
            let real = kv
                .update(KEYS[k], move |cur| {
                    Some(json!(cur
                        .and_then(Value::as_i64)
                        .unwrap_or(0)
                        .wrapping_add(by)))
                })
                .await;
            let new = match model.live(KEYS[k]) {
                Some((v, _)) => {
                    *v = json!(v.as_i64().unwrap_or(0).wrapping_add(by));
                    v.clone()
                }
                None => {
                    model.map.insert(KEYS[k].into(), (json!(by), None));
                    json!(by)
                }
            };
            (
                format!("{real:?}"),
                format!("{:?}", Ok::<_, KvError>(Some(new))),
            )
        }
        Op::UpdateDelete(k) => {
            let real = kv.update(KEYS[k], |_| None).await;
            model.live(KEYS[k]);
            model.map.remove(KEYS[k]);
            (format!("{real:?}"), "Ok(None)".into())
        }
        Op::UpdatePanic(k) => {
            let real = kv.update(KEYS[k], |_| panic!("model panic")).await;
            model.live(KEYS[k]);
            let ok = matches!(real, Err(KvError::UpdatePanicked { .. }));
            (format!("{ok}"), "true".into())
        }
        Op::Txn(writes, panics) => {
            let staged = writes.clone();
            let real = kv
                .transaction(move |txn| {
                    for &(k, v) in &staged {
                        match v {
                            Some(v) => txn.set(KEYS[k], v),
                            None => {
                                txn.delete(KEYS[k]);
                            }
                        }
                    }
                    assert!(!panics, "model transaction panic");
                })
                .await;
            if panics {
                let ok = matches!(real, Err(KvError::TransactionPanicked { .. }));
                return (format!("{ok}"), "true".into());
            }
            for (k, v) in writes {
                match v {
                    Some(v) => {
                        model.map.insert(KEYS[k].into(), (json!(v), None));
                    }
                    None => {
                        model.live(KEYS[k]);
                        model.map.remove(KEYS[k]);
                    }
                }
            }
            (format!("{real:?}"), "Ok(())".into())
        }
        Op::GetDel(k) => {
            let real = kv.get_del(KEYS[k]).await;
            let expected = model.live(KEYS[k]).map(|(v, _)| v.clone());
            model.map.remove(KEYS[k]);
            (
                format!("{real:?}"),
                format!("{:?}", Ok::<_, KvError>(expected)),
            )
        }
        Op::Exists(k) => {
            let real = kv.exists(KEYS[k]).await;
            let expected = model.live(KEYS[k]).is_some();
            (
                format!("{real:?}"),
                format!("{:?}", Ok::<_, KvError>(expected)),
            )
        }
        Op::Ttl(k) => {
            let real = kv.ttl(KEYS[k]).await;
            let now = model.now;
            let expected = match model.live(KEYS[k]) {
                None => Ttl::Missing,
                Some((_, None)) => Ttl::NoExpiry,
                Some((_, Some(d))) => Ttl::Expires(ms(*d - now)),
            };
            (
                format!("{real:?}"),
                format!("{:?}", Ok::<_, KvError>(expected)),
            )
        }
        Op::Persist(k) => {
            let real = kv.persist(KEYS[k]).await;
            let had = match model.live(KEYS[k]) {
                Some((_, d)) => d.take().is_some(),
                None => false,
            };
            (format!("{real:?}"), format!("{:?}", Ok::<_, KvError>(had)))
        }
        Op::Scan(prefix, limit) => {
            let real = kv.scan_prefix(&prefix).limit(limit).await;
            let now = model.now;
            let expected: Vec<String> = model
                .map
                .iter()
                .filter(|(k, (_, d))| k.starts_with(&prefix) && !d.is_some_and(|d| d <= now))
                .map(|(k, _)| k.clone())
                .take(limit)
                .collect();
            (
                format!("{real:?}"),
                format!("{:?}", Ok::<_, KvError>(expected)),
            )
        }
        Op::Advance(t) => {
            tokio::time::advance(ms(t)).await;
            model.now += t;
            (String::new(), String::new())
        }
    }
}

/// Keeps the panics the model provokes on purpose out of the test output; any other panic (a real
/// failure) is still reported by the default hook.
fn quiet_expected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let text = info.to_string();
            if !text.contains("model panic") && !text.contains("model transaction panic") {
                default(info);
            }
        }));
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn coordination_commands_agree_with_the_model(
        ops in proptest::collection::vec(op(), 1..40),
        active_expiry in any::<bool>(),
    ) {
        quiet_expected_panics();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async {
            let kv = KvHandle::builder().active_expiry(active_expiry).spawn();
            let mut model = Model::default();
            for (i, op) in ops.iter().enumerate() {
                let (real, expected) = step(&kv, &mut model, op).await;
                prop_assert_eq!(real, expected, "step {} {:?}", i, op);
            }
            // The final contents agree too.
            let keys = kv.scan_prefix("").await.unwrap();
            let values = kv.mget(&keys).await.unwrap();
            let now = model.now;
            let expected: Vec<(String, Value)> = model
                .map
                .iter()
                .filter(|(_, (_, d))| !d.is_some_and(|d| d <= now))
                .map(|(k, (v, _))| (k.clone(), v.clone()))
                .collect();
            let real: Vec<(String, Value)> =
                keys.into_iter().zip(values.into_iter().map(Option::unwrap)).collect();
            prop_assert_eq!(real, expected);
            Ok(())
        })?;
    }
}
