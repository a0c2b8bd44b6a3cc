//! The data and the timed workloads of issue 4, generic over [`Kv`] so that the store and every
//! baseline run the very same code. Each workload returns the time its timed part took, so that
//! criterion (`iter_custom`) and the report can both drive it.

use std::collections::HashMap;
use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use ephemeral_kv::KvHandle;
use serde_json::{json, Value};
use tokio::runtime::Runtime;
use tokio::time::Instant;

use crate::alloc;
use crate::baselines::{Kv, MutexKv};

/// Keys of the get/set workload.
pub const KEYS: usize = 100_000;
/// Keys per `mget`/`mset` call, and single calls they are compared with.
pub const BATCH: usize = 100;
/// Items in the list that `list_append_unique` appends to and `list_pop_all` pops.
pub const LIST_LEN: usize = 100;
/// The `limit` of `purge_expired`, and how many keys are expired when it runs.
pub const PURGE: usize = 1_000;
/// Entries of the memory workload.
pub const MEMORY_ENTRIES: usize = 1_000_000;
/// Concurrent tasks of the get/set workload.
pub const TASKS: [usize; 3] = [1, 16, 256];

/// The runtime every workload runs on: tokio's multi-thread scheduler with 2 workers.
pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// The runtime of the purge workloads: one thread, shared by the caller and the owner task.
///
/// Each purge follows a wait for TTLs to run out, during which a multi-thread runtime parks its
/// workers; the purge would then be timed together with waking the owner's worker thread, which on
/// this kind of VM takes 50-200 us and would swamp the 1,000 removals being measured. On one
/// thread, the caller's thread is already awake and the owner task runs right on it.
pub fn purge_runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// The key of entry `i`.
pub fn key(i: usize) -> String {
    format!("key:{i}")
}

/// `n` keys, shared by all tasks.
pub fn keys(n: usize) -> Arc<[String]> {
    (0..n).map(key).collect()
}

/// The small JSON object stored at entry `i`: an id, a short string, a two-element array.
pub fn small_value(i: usize) -> Value {
    json!({"id": i, "name": format!("user-{i}"), "tags": ["a", "b"]})
}

/// A list of `n` small objects with ids `0..n`.
pub fn list_of(n: usize) -> Value {
    Value::Array((0..n).map(small_value).collect())
}

/// Runs `work` as a task on the runtime's workers, where an application's callers run, and returns
/// its output. Awaited directly from `Runtime::block_on`, a caller would sit on a thread outside
/// the runtime, and every call to the store would pay for waking that thread from outside.
pub async fn on_worker<T: Send + 'static>(work: impl Future<Output = T> + Send + 'static) -> T {
    tokio::spawn(work).await.expect("a workload task")
}

/// Stores `small_value(i)` at each `keys[i]`, without TTL.
pub async fn populate<S: Kv>(store: &S, keys: &[String]) {
    for (i, key) in keys.iter().enumerate() {
        store.set(key, small_value(i), None).await;
    }
}

/// 90% `get` / 10% `set` of random keys, `ops` in all, shared out over `tasks` concurrent tasks.
pub async fn mixed<S: Kv>(store: &S, keys: &Arc<[String]>, tasks: usize, ops: u64) -> Duration {
    let per_task = (ops / tasks as u64).max(1);
    let start = Instant::now();
    let workers: Vec<_> = (0..tasks)
        .map(|task| {
            let store = store.clone();
            let keys = Arc::clone(keys);
            tokio::spawn(async move {
                let mut rng = fastrand::Rng::with_seed(task as u64);
                for _ in 0..per_task {
                    let i = rng.usize(..keys.len());
                    if rng.u8(..10) == 0 {
                        store.set(&keys[i], small_value(i), None).await;
                    } else {
                        black_box(store.get(&keys[i]).await);
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("a workload task");
    }
    start.elapsed()
}

/// `rounds` times, [`BATCH`] single `get` calls.
pub async fn single_gets<S: Kv>(store: &S, keys: &Arc<[String]>, rounds: u64) -> Duration {
    let (store, keys) = (store.clone(), Arc::clone(keys));
    on_worker(async move {
        let start = Instant::now();
        for round in 0..rounds as usize {
            for i in 0..BATCH {
                black_box(store.get(&keys[(round * BATCH + i) % keys.len()]).await);
            }
        }
        start.elapsed()
    })
    .await
}

/// `rounds` times, [`BATCH`] single `set` calls.
pub async fn single_sets<S: Kv>(store: &S, keys: &Arc<[String]>, rounds: u64) -> Duration {
    let (store, keys) = (store.clone(), Arc::clone(keys));
    on_worker(async move {
        let start = Instant::now();
        for round in 0..rounds as usize {
            for i in 0..BATCH {
                let i = (round * BATCH + i) % keys.len();
                store.set(&keys[i], small_value(i), None).await;
            }
        }
        start.elapsed()
    })
    .await
}

/// `rounds` times, one `mget` of [`BATCH`] keys.
pub async fn mgets(kv: &KvHandle, keys: &Arc<[String]>, rounds: u64) -> Duration {
    let (kv, keys) = (kv.clone(), Arc::clone(keys));
    on_worker(async move {
        let start = Instant::now();
        for round in 0..rounds as usize {
            let first = (round * BATCH) % (keys.len() - BATCH);
            let values = kv.mget(&keys[first..first + BATCH]).await;
            black_box(values.expect("store is running"));
        }
        start.elapsed()
    })
    .await
}

/// `rounds` times, one `mset` of [`BATCH`] pairs.
pub async fn msets(kv: &KvHandle, keys: &Arc<[String]>, rounds: u64) -> Duration {
    let (kv, keys) = (kv.clone(), Arc::clone(keys));
    on_worker(async move {
        let start = Instant::now();
        for round in 0..rounds as usize {
            let first = (round * BATCH) % (keys.len() - BATCH);
            let pairs = (first..first + BATCH).map(|i| (&keys[i], small_value(i)));
            kv.mset(pairs).await.expect("store is running");
        }
        start.elapsed()
    })
    .await
}

/// `rounds` times: store a [`LIST_LEN`]-item list (not timed), then append one new item to it.
pub async fn list_appends<S: Kv>(store: &S, rounds: u64) -> Duration {
    let store = store.clone();
    on_worker(async move {
        let list = list_of(LIST_LEN);
        let mut timed = Duration::ZERO;
        for round in 0..rounds as usize {
            store.set("list", list.clone(), None).await;
            let item = small_value(LIST_LEN + round);
            let start = Instant::now();
            black_box(store.list_append_unique("list", vec![item]).await);
            timed += start.elapsed();
        }
        timed
    })
    .await
}

/// `rounds` times: store a [`LIST_LEN`]-item list (not timed), then pop all of it.
pub async fn list_pops<S: Kv>(store: &S, rounds: u64) -> Duration {
    let store = store.clone();
    on_worker(async move {
        let list = list_of(LIST_LEN);
        let mut timed = Duration::ZERO;
        for _ in 0..rounds {
            store.set("list", list.clone(), None).await;
            let start = Instant::now();
            let popped = store.list_pop_all("list").await;
            timed += start.elapsed();
            assert_eq!(popped.len(), LIST_LEN);
        }
        timed
    })
    .await
}

/// A store without active expiry holding `live` keys, each with a TTL of an hour (so that the
/// expiry index holds them all), ready for [`purges`].
pub async fn purge_store(live: usize) -> KvHandle {
    let kv = KvHandle::builder().active_expiry(false).spawn();
    for chunk in (0..live).collect::<Vec<_>>().chunks(10_000) {
        let pairs = chunk.iter().map(|&i| (key(i), small_value(i)));
        let call = kv.mset(pairs).ttl(Duration::from_secs(3600));
        call.await.expect("store is running");
    }
    kv
}

/// `rounds` times: give [`PURGE`] more keys a 1 ms TTL and let it pass (not timed), then
/// `purge_expired(limit = PURGE)`. Meant for [`purge_runtime`].
pub async fn purges(kv: &KvHandle, rounds: u64) -> Duration {
    let kv = kv.clone();
    on_worker(async move {
        let mut timed = Duration::ZERO;
        for _ in 0..rounds {
            let pairs = (0..PURGE).map(|i| (format!("expiring:{i}"), json!(i)));
            let call = kv.mset(pairs).ttl(Duration::from_millis(1));
            call.await.expect("store is running");
            tokio::time::sleep(Duration::from_millis(2)).await;
            let start = Instant::now();
            let removed = kv.purge_expired().limit(PURGE).await;
            timed += start.elapsed();
            assert_eq!(removed.expect("store is running"), PURGE);
        }
        timed
    })
    .await
}

/// The mutex baseline holding `live` keys with a TTL of an hour, ready for [`scan_purges`].
pub async fn scan_store(live: usize) -> MutexKv {
    let store = MutexKv::default();
    for i in 0..live {
        store
            .set(&key(i), small_value(i), Some(Duration::from_secs(3600)))
            .await;
    }
    store
}

/// `rounds` times: add [`PURGE`] already-expired keys (not timed), then remove them with a scan of
/// the whole map, as the reference implementation does.
pub fn scan_purges(store: &MutexKv, rounds: u64) -> Duration {
    let mut timed = Duration::ZERO;
    for _ in 0..rounds {
        for i in 0..PURGE {
            store.set_expired(&format!("expiring:{i}"), json!(i));
        }
        let start = Instant::now();
        let removed = store.purge_expired_scan(PURGE);
        timed += start.elapsed();
        assert_eq!(removed, PURGE);
    }
    timed
}

/// Bytes per entry of a store holding `n` entries (`key(i)` → `small_value(i)`), each with a TTL
/// of an hour if `ttl`, and so an entry in the expiry index; and the store, still running. Keep it
/// until the last measurement is done, then shut it down: freeing it frees millions of
/// allocations on the store's freeing thread, which would count against a measurement running
/// meanwhile.
pub async fn store_bytes_per_entry(n: usize, ttl: bool) -> (f64, KvHandle) {
    let (kv, bytes) = alloc::measure(async {
        let kv = KvHandle::builder().active_expiry(false).spawn();
        for first in (0..n).step_by(10_000) {
            let pairs = (first..n.min(first + 10_000)).map(|i| (key(i), small_value(i)));
            let call = kv.mset(pairs);
            match ttl {
                true => call.ttl(Duration::from_secs(3600)).await,
                false => call.await,
            }
            .expect("store is running");
        }
        kv
    })
    .await;
    assert_eq!(kv.stats().await.expect("store is running").entries, n);
    (bytes as f64 / n as f64, kv)
}

/// Bytes per entry of a plain `HashMap<String, Value>` of the same data.
pub async fn plain_bytes_per_entry(n: usize) -> f64 {
    let (map, bytes) = alloc::measure(async {
        let mut map = HashMap::new();
        for i in 0..n {
            map.insert(key(i), small_value(i));
        }
        map
    })
    .await;
    assert_eq!(map.len(), n);
    bytes as f64 / n as f64
}
