//! Runs [`Op`]s on a real store and checks them against the [`Model`].

use std::time::Duration;

use ephemeral_kv::{KvError, KvHandle, Txn};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::ops::{
    Answer, AsType, Failure, Item, Op, Script, Setup, TxnView, HANDLES, PLANNED_PANIC,
};
use super::reference::Model;

/// Long enough never to fire while the store answers; short enough that a hang fails the test.
/// It is on the paused clock, which jumps to it only if nothing else can run.
const CALL_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

/// Starts a store with `setup` and returns one handle per entry of [`HANDLES`].
pub fn spawn(setup: Setup) -> Vec<KvHandle> {
    handles(&builder(setup).spawn())
}

/// The builder of a store with `setup`.
pub fn builder(setup: Setup) -> ephemeral_kv::KvBuilder {
    KvHandle::builder()
        .prefix(setup.prefix)
        .active_expiry(setup.active_expiry)
}

/// One handle on `kv` per entry of [`HANDLES`].
pub fn handles(kv: &KvHandle) -> Vec<KvHandle> {
    HANDLES
        .iter()
        .map(|(_, prefix)| kv.with_prefix(prefix))
        .collect()
}

/// Performs `op` on the store and returns its answer, with errors reduced to what the model
/// predicts.
pub async fn run(op: &Op, kvs: &[KvHandle]) -> Answer {
    run_with(op, kvs, Failure::from).await
}

/// Performs `op` on the store and returns its answer, with errors as `fail` writes them
/// ([`Failure::from`] for the model, [`Failure::whole`] to compare two stores exactly). An error
/// of `Txn::expire` inside a transaction is always reduced.
pub async fn run_with(op: &Op, kvs: &[KvHandle], fail: fn(KvError) -> Failure) -> Answer {
    match op {
        Op::Set { h, key, value, ttl } => {
            let call = kvs[*h].set(key, value);
            let call = match ttl {
                Some(ttl) => call.ttl(*ttl),
                None => call,
            };
            reply(fail, call.await, |()| Answer::Done)
        }
        Op::Get { h, key } => reply(fail, kvs[*h].get(key).await, |v| Answer::Value(owned(v))),
        Op::GetAs { h, key, ty } => {
            let kv = &kvs[*h];
            match ty {
                AsType::U64 => typed(fail, kv.get_as::<u64>(key).await),
                AsType::Text => typed(fail, kv.get_as::<String>(key).await),
                AsType::List => typed(fail, kv.get_as::<Vec<serde_json::Value>>(key).await),
                AsType::Item => typed(fail, kv.get_as::<Item>(key).await),
            }
        }
        Op::Delete { h, key } => reply(fail, kvs[*h].delete(key).await, |()| Answer::Done),
        Op::ListAppendUnique {
            h,
            key,
            items,
            id_key,
            ttl,
        } => {
            let mut call = kvs[*h].list_append_unique(key, items);
            if let Some(id_key) = id_key {
                call = call.id_key(*id_key);
            }
            if let Some(ttl) = ttl {
                call = call.ttl(*ttl);
            }
            reply(fail, call.await, |list| Answer::List(list.to_vec()))
        }
        Op::ListPopAll { h, key } => reply(fail, kvs[*h].list_pop_all(key).await, Answer::List),
        Op::ListPush {
            h,
            key,
            items,
            max_len,
            ttl,
        } => {
            let mut call = kvs[*h].list_push(key, items);
            if let Some(max_len) = max_len {
                call = call.max_len(*max_len);
            }
            if let Some(ttl) = ttl {
                call = call.ttl(*ttl);
            }
            reply(fail, call.await, Answer::Len)
        }
        Op::ListPopFront { h, key, n } => {
            reply(fail, kvs[*h].list_pop_front(key, *n).await, Answer::List)
        }
        Op::Mset { h, entries, ttl } => {
            let call = kvs[*h].mset(entries.iter().map(|(key, value)| (key, value)));
            let call = match ttl {
                Some(ttl) => call.ttl(*ttl),
                None => call,
            };
            reply(fail, call.await, |()| Answer::Done)
        }
        Op::Mget { h, keys } => reply(fail, kvs[*h].mget(keys).await, |values| {
            Answer::Values(values.into_iter().map(owned).collect())
        }),
        Op::Expire { h, key, ttl } => reply(fail, kvs[*h].expire(key, *ttl).await, Answer::Flag),
        Op::PurgeExpired { h, limit } => {
            let call = kvs[*h].purge_expired();
            let call = match limit {
                Some(limit) => call.limit(*limit),
                None => call,
            };
            reply(fail, call.await, Answer::Count)
        }
        Op::Stats { h } => reply(fail, kvs[*h].stats().await, |s| {
            Answer::Stats(s.entries, s.expiring)
        }),
        Op::Incr { h, key, by, ttl } => {
            let call = kvs[*h].incr(key, *by);
            let call = match ttl {
                Some(ttl) => call.ttl(*ttl),
                None => call,
            };
            reply(fail, call.await, Answer::Int)
        }
        Op::SetIfAbsent { h, key, value, ttl } => {
            let call = kvs[*h].set_if_absent(key, value);
            let call = match ttl {
                Some(ttl) => call.ttl(*ttl),
                None => call,
            };
            reply(fail, call.await, Answer::Flag)
        }
        Op::CompareAndSet {
            h,
            key,
            expected,
            new,
            ttl,
        } => {
            let call = kvs[*h].compare_and_set(key, expected.clone(), new);
            let call = match ttl {
                Some(ttl) => call.ttl(*ttl),
                None => call,
            };
            reply(fail, call.await, Answer::Flag)
        }
        Op::GetDel { h, key } => reply(fail, kvs[*h].get_del(key).await, Answer::Value),
        Op::Exists { h, key } => reply(fail, kvs[*h].exists(key).await, Answer::Flag),
        Op::TtlOf { h, key } => reply(fail, kvs[*h].ttl(key).await, Answer::Ttl),
        Op::Persist { h, key } => reply(fail, kvs[*h].persist(key).await, Answer::Flag),
        Op::ScanPrefix { h, prefix, limit } => {
            let call = kvs[*h].scan_prefix(prefix);
            let call = match limit {
                Some(limit) => call.limit(*limit),
                None => call,
            };
            reply(fail, call.await, Answer::Keys)
        }
        Op::Update { h, key, f } => {
            quiet_planned_panics();
            let f = *f;
            reply(
                fail,
                kvs[*h].update(key, move |current| f.call(current)).await,
                |v| Answer::Value(owned(v)),
            )
        }
        Op::Transaction { h, f } => {
            quiet_planned_panics();
            let f = f.clone();
            match kvs[*h].transaction(move |txn| f.run(txn)).await {
                Ok(answer) => answer,
                Err(error) => Answer::Err(fail(error)),
            }
        }
        Op::Advance(by) => {
            tokio::time::advance(*by).await;
            Answer::Done
        }
    }
}

impl TxnView for Txn<'_> {
    fn get(&self, key: &str) -> Option<Value> {
        Txn::get(self, key).cloned()
    }

    fn set(&mut self, key: &str, value: Value) {
        Txn::set(self, key, value);
    }

    fn delete(&mut self, key: &str) -> bool {
        Txn::delete(self, key)
    }

    fn expire(&mut self, key: &str, ttl: Duration) -> Result<bool, Failure> {
        Txn::expire(self, key, ttl).map_err(Failure::from)
    }

    fn abort(&mut self) {
        Txn::abort(self);
    }
}

/// Keeps the panics that `update` and `transaction` closures raise on purpose out of the test
/// output; any other panic (a real failure) still goes to the default hook.
fn quiet_planned_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info.to_string().contains(PLANNED_PANIC) {
                default(info);
            }
        }));
    });
}

/// [`run`], failing if the store never answers.
pub async fn answer(op: &Op, kvs: &[KvHandle]) -> Result<Answer, String> {
    tokio::time::timeout(CALL_TIMEOUT, run(op, kvs))
        .await
        .map_err(|_| format!("`{op:?}` never answered"))
}

/// A shared answer as the model's owned value (the model compares values, not sharing).
fn owned(value: Option<std::sync::Arc<serde_json::Value>>) -> Option<serde_json::Value> {
    value.map(|value| (*value).clone())
}

fn reply<T>(
    fail: fn(KvError) -> Failure,
    result: Result<T, KvError>,
    ok: impl FnOnce(T) -> Answer,
) -> Answer {
    match result {
        Ok(value) => ok(value),
        Err(error) => Answer::Err(fail(error)),
    }
}

fn typed<T: serde::Serialize>(
    fail: fn(KvError) -> Failure,
    result: Result<Option<T>, KvError>,
) -> Answer {
    reply(fail, result, |value| {
        Answer::Value(value.map(|typed| json!(typed)))
    })
}

/// Runs `script` on a fresh store and on the model, step by step, then compares everything the
/// handles can see (`mget` of `final_keys` through each handle, then `stats`). Returns the first
/// difference as a readable message.
///
/// Must run on a current-thread runtime with the clock paused.
pub async fn check(script: &Script, final_keys: &[String]) -> Result<(), String> {
    check_on(&spawn(script.setup), script, final_keys).await
}

/// [`check`], on the store behind `kvs` (one handle per entry of [`HANDLES`], freshly built with
/// `script.setup`).
pub async fn check_on(
    kvs: &[KvHandle],
    script: &Script,
    final_keys: &[String],
) -> Result<(), String> {
    let mut model = Model::new(script.setup, Instant::now());
    let final_check = (0..HANDLES.len())
        .map(|h| Op::Mget {
            h,
            keys: final_keys.to_vec(),
        })
        .chain([Op::Stats { h: 0 }]);
    let steps = script.ops.iter().cloned().chain(final_check);
    for (index, op) in steps.enumerate() {
        let got = answer(&op, kvs)
            .await
            .map_err(|error| format!("step {index}: {error}"))?;
        let allowed = model.apply(&op);
        if !allowed.contains(&got) {
            return Err(format!(
                "step {index} `{op:?}`: the store answered {got:?}, the model allows {allowed:?}"
            ));
        }
        if Instant::now() != model.now() {
            return Err(format!("step {index} `{op:?}`: the clock moved on its own"));
        }
    }
    Ok(())
}

/// The keys a script names, for its final check.
pub fn keys_of(script: &Script) -> Vec<String> {
    let mut keys: Vec<String> = script
        .ops
        .iter()
        .flat_map(|op| op.keys())
        .map(str::to_owned)
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// A current-thread runtime with tokio's clock paused, as `#[tokio::test(start_paused = true)]`
/// builds, for tests that drive it from a proptest body.
pub fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime always builds")
}
