//! The seed workloads: what `python/seed_workloads.py` runs on the Python reference
//! (`python/ephemeral_kv.py`), run on ephemeral-kv. The sizes, the keys and the values are the
//! script's, built the same way (every float with the same IEEE-754 arithmetic); see the script's
//! docstring for the description of each workload.
//!
//! Each workload builds a fresh store (the purge workload excepted, as in the script), fills it
//! without timing that, and returns the time of its timed part only. The ephemeral-kv side runs in
//! a task of its own ([`on_worker`]), where an application's code runs, unless the function says
//! otherwise. Times are taken with `std::time::Instant`, so a paused tokio clock would not stop
//! them.
//!
//! Where the script's calls do not exist as such, the crate's own way of doing the same thing is
//! timed: the capped log is one `list_push(..).max_len(..)` call per event where the script reads,
//! copies, trims and writes back the whole list, and the purge's keys expire through a 1 ms TTL
//! where the script sets an expiry in the past.

use std::hint::black_box;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ephemeral_kv::KvHandle;
use serde_json::{json, Value};

use crate::workloads::on_worker;

/// `list_append_unique` calls of the inbox workload, one item each.
pub const INBOX_ITEMS: usize = 2_000;
/// Events pushed onto the capped log.
pub const LOG_APPENDS: usize = 3_000;
/// Events the capped log keeps.
pub const LOG_CAP: usize = 1_000;
/// The capped log's TTL, renewed on every push: 7 days.
pub const LOG_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Keys of the small-values workload.
pub const SMALL_KEYS: usize = 100_000;
/// Operations of the small-values workload, 90% `get` and 10% `set`.
pub const SMALL_OPS: usize = 400_000;
/// Seed of the SplitMix64 sequence that draws the small-values workload's operations.
pub const SMALL_SEED: u64 = 7;
/// Live keys of the purge workload (no TTL).
pub const PURGE_LIVE: usize = 1_000_000;
/// Expired keys of the purge workload, added after the live ones.
pub const PURGE_EXPIRED: usize = 1_000;
/// The purge's `limit`.
pub const PURGE_LIMIT: usize = 1_000;
/// Keys of one `mget` call.
pub const MGET_KEYS: usize = 100;
/// `mget` calls.
pub const MGET_CALLS: usize = 10_000;
/// Length of an event's `text`.
pub const EVENT_TEXT_LEN: usize = 200;
/// Length of an event's `embedding`.
pub const EMBEDDING_LEN: usize = 64;

/// The TTL that makes the purge workload's keys expire: they are set with it, then the workload
/// waits [`EXPIRY_WAIT`] before the (timed) purge.
const EXPIRING_TTL: Duration = Duration::from_millis(1);
/// See [`EXPIRING_TTL`].
const EXPIRY_WAIT: Duration = Duration::from_millis(2);
/// Pairs per `mset` call when filling a store (not timed).
const FILL_CHUNK: usize = 10_000;

/// SplitMix64 (Steele et al.), the script's `splitmix64`: the same seed gives the same sequence.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// The sequence that starts from `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    /// The next number of the sequence.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// The inbox's item `i`: a reference to a shared file, 9 fields.
pub fn inbox_item(i: usize) -> Value {
    json!({
        "id": format!("file-{i}"),
        "name": format!("report-{i}.pdf"),
        "mime_type": "application/pdf",
        "size": 1024 + 37 * i,
        "url": format!("https://files.example.com/f/file-{i}"),
        "thumbnail_url": format!("https://files.example.com/t/file-{i}.png"),
        "platform": "slack",
        "channel": "C0123456789",
        "timestamp": 1_700_000_000.0 + i as f64 * 0.5,
    })
}

/// The log's event `i`: a step of an LLM run, with a 200-character text, 4 metrics and a
/// 64-float embedding.
pub fn event(i: usize) -> Value {
    let embedding = (0..EMBEDDING_LEN)
        .map(|j| Value::from(((i + j) % 97) as f64 / 97.0))
        .collect();
    json!({
        "id": format!("evt-{i}"),
        "run_id": "run-0001",
        "kind": "llm.step",
        "text": format!("{:.<EVENT_TEXT_LEN$}", format!("step {i}: ")),
        "metrics": {
            "tokens_in": i % 1000,
            "tokens_out": (7 * i) % 500,
            "latency_ms": 10.0 + (i % 50) as f64 * 0.25,
            "cost_usd": (i % 100) as f64 * 1e-05,
        },
        "embedding": Value::Array(embedding),
        "ts": 1_700_000_000.0 + i as f64,
    })
}

/// The small-values workload's initial value at key `i`: the number `i` if even, else `"v{i}"`.
pub fn small_value(i: usize) -> Value {
    if i.is_multiple_of(2) {
        json!(i)
    } else {
        json!(format!("v{i}"))
    }
}

/// A fresh store holding `pairs`, filled `FILL_CHUNK` pairs per `mset` call.
async fn filled(kv: KvHandle, pairs: impl Iterator<Item = (String, Value)>) -> KvHandle {
    let mut pairs = pairs.peekable();
    while pairs.peek().is_some() {
        let chunk: Vec<_> = pairs.by_ref().take(FILL_CHUNK).collect();
        kv.mset(chunk).await.expect("store is running");
    }
    kv
}

/// Inbox: [`INBOX_ITEMS`] calls of `list_append_unique("inbox", [inbox_item(i)])`, then one
/// `list_pop_all("inbox")`. Timed: building each item, the calls and the pop.
pub async fn inbox() -> Duration {
    on_worker(async {
        let kv = KvHandle::spawn();
        let start = Instant::now();
        for i in 0..INBOX_ITEMS {
            let list = kv.list_append_unique("inbox", [inbox_item(i)]).await;
            black_box(list.expect("store is running"));
        }
        let items = kv.list_pop_all("inbox").await.expect("store is running");
        let elapsed = start.elapsed();
        assert_eq!(items.len(), INBOX_ITEMS);
        assert_eq!(
            items[INBOX_ITEMS - 1]["id"],
            format!("file-{}", INBOX_ITEMS - 1)
        );
        kv.shutdown().await;
        elapsed
    })
    .await
}

/// Capped log: [`LOG_APPENDS`] calls of `list_push("events", [event(i)])` with
/// `max_len(LOG_CAP)` and a 7-day TTL. Timed: building each event and the calls.
pub async fn capped_log() -> Duration {
    on_worker(async {
        let kv = KvHandle::spawn();
        let start = Instant::now();
        for i in 0..LOG_APPENDS {
            let call = kv.list_push("events", [event(i)]).max_len(LOG_CAP);
            black_box(call.ttl(LOG_TTL).await.expect("store is running"));
        }
        let elapsed = start.elapsed();
        let log = kv.get("events").await.expect("store is running");
        let log = log.as_deref().and_then(Value::as_array).expect("a list");
        assert_eq!(log.len(), LOG_CAP.min(LOG_APPENDS));
        assert_eq!(log[log.len() - 1]["id"], format!("evt-{}", LOG_APPENDS - 1));
        kv.shutdown().await;
        elapsed
    })
    .await
}

/// The capped log without a store, to tell building the events from storing them:
/// [`LOG_APPENDS`] events built and pushed onto a plain `Vec`, whose oldest event is removed once
/// it holds more than [`LOG_CAP`]. Timed: the whole loop.
pub async fn capped_log_events() -> Duration {
    on_worker(async {
        let start = Instant::now();
        let mut log = Vec::with_capacity(LOG_CAP + 1);
        for i in 0..LOG_APPENDS {
            log.push(event(i));
            if log.len() > LOG_CAP {
                log.remove(0);
            }
        }
        let elapsed = start.elapsed();
        assert_eq!(log.len(), LOG_CAP.min(LOG_APPENDS));
        assert_eq!(log[log.len() - 1]["id"], format!("evt-{}", LOG_APPENDS - 1));
        black_box(log);
        elapsed
    })
    .await
}

/// One operation of the small-values workload.
#[derive(Debug, Clone, Copy)]
struct SmallOp {
    /// `set(key, j)` (`j`: the operation's index) if true, else `get(key)`.
    set: bool,
    /// Index of the key in [`SmallOps::keys`].
    key: u32,
}

/// The keys and the operations of the small-values workload, drawn before any timing (as in the
/// script, the PRNG and the key formatting are not timed).
#[derive(Debug, Clone)]
pub struct SmallOps {
    keys: Arc<[String]>,
    ops: Arc<[SmallOp]>,
}

impl SmallOps {
    /// Keys `k{i}`; op `j` draws `r` from SplitMix64 (seed [`SMALL_SEED`]), goes to key
    /// `r % SMALL_KEYS`, and is a `set` if `(r >> 32) % 10 == 0`, else a `get`.
    pub fn new() -> SmallOps {
        let keys: Arc<[String]> = (0..SMALL_KEYS).map(|i| format!("k{i}")).collect();
        let mut rng = SplitMix64::new(SMALL_SEED);
        let ops = (0..SMALL_OPS)
            .map(|_| {
                let r = rng.next_u64();
                SmallOp {
                    set: (r >> 32).is_multiple_of(10),
                    key: (r % SMALL_KEYS as u64) as u32,
                }
            })
            .collect();
        SmallOps { keys, ops }
    }

    /// A fresh store holding `small_value(i)` at each key `k{i}` (not timed).
    async fn store(&self) -> KvHandle {
        let pairs = (0..SMALL_KEYS).map(|i| (self.keys[i].clone(), small_value(i)));
        filled(KvHandle::spawn(), pairs).await
    }

    /// Runs the operations `range`, in order, from the calling task.
    async fn run(&self, kv: &KvHandle, range: Range<usize>) {
        for j in range {
            let op = self.ops[j];
            let key = &self.keys[op.key as usize];
            if op.set {
                kv.set(key, Value::from(j)).await.expect("store is running");
            } else {
                black_box(kv.get(key).await.expect("store is running"));
            }
        }
    }
}

impl Default for SmallOps {
    fn default() -> Self {
        SmallOps::new()
    }
}

/// Small values from `tasks` tasks: the operations are cut into `tasks` runs of consecutive ones
/// (sizes differing by at most one), each run from a task of its own, all at once. Timed: from
/// spawning the first task until the last one is done.
pub async fn small_from_tasks(ops: &SmallOps, tasks: usize) -> Duration {
    let kv = ops.store().await;
    let ops = ops.clone();
    let elapsed = on_worker({
        let kv = kv.clone();
        async move {
            let start = Instant::now();
            let workers: Vec<_> = (0..tasks)
                .map(|t| {
                    let (kv, ops) = (kv.clone(), ops.clone());
                    let range = t * SMALL_OPS / tasks..(t + 1) * SMALL_OPS / tasks;
                    tokio::spawn(async move { ops.run(&kv, range).await })
                })
                .collect();
            for worker in workers {
                worker.await.expect("a workload task");
            }
            start.elapsed()
        }
    })
    .await;
    kv.shutdown().await;
    elapsed
}

/// Small values from the calling future itself: run it as the body of `Runtime::block_on`, as a
/// `#[tokio::main]` body is, to see what a caller outside the runtime's worker tasks gets.
pub async fn small_inline(ops: &SmallOps) -> Duration {
    let kv = ops.store().await;
    let start = Instant::now();
    ops.run(&kv, 0..SMALL_OPS).await;
    let elapsed = start.elapsed();
    kv.shutdown().await;
    elapsed
}

/// The purge workload's store: [`PURGE_LIVE`] keys `live:{i}` = `i`, without TTL, and without
/// active expiry (so that only the timed call removes the expired keys).
pub async fn purge_store() -> KvHandle {
    let kv = KvHandle::builder().active_expiry(false).spawn();
    filled(kv, (0..PURGE_LIVE).map(|i| (format!("live:{i}"), json!(i)))).await
}

/// Purge: [`PURGE_EXPIRED`] keys `exp:{i}` = `i` set with a 1 ms TTL, a 2 ms wait and a `stats`
/// call (none of it timed), then one `purge_expired().limit(PURGE_LIMIT)` on `kv` (from
/// [`purge_store`]), checked to remove them all. Timed: the purge call.
pub async fn purge(kv: &KvHandle) -> Duration {
    let kv = kv.clone();
    on_worker(async move {
        for i in 0..PURGE_EXPIRED {
            let call = kv.set(format!("exp:{i}"), i).ttl(EXPIRING_TTL);
            call.await.expect("store is running");
        }
        tokio::time::sleep(EXPIRY_WAIT).await;
        // After the wait the owner task (and maybe its worker thread) is asleep: wake it with a
        // call that touches no key, so that the purge is timed as the script times it, on a store
        // that is busy, rather than together with a wake-up.
        black_box(kv.stats().await.expect("store is running"));
        let start = Instant::now();
        let removed = kv.purge_expired().limit(PURGE_LIMIT).await;
        let elapsed = start.elapsed();
        assert_eq!(removed.expect("store is running"), PURGE_EXPIRED);
        elapsed
    })
    .await
}

/// Mget: [`MGET_KEYS`] keys `m{i}` = `i` (not timed), then [`MGET_CALLS`] calls of `mget` of
/// those keys (the same `Vec` each time). Timed: the calls.
pub async fn mget() -> Duration {
    on_worker(async {
        let keys: Vec<String> = (0..MGET_KEYS).map(|i| format!("m{i}")).collect();
        let pairs: Vec<(String, Value)> = (0..MGET_KEYS)
            .map(|i| (keys[i].clone(), json!(i)))
            .collect();
        let kv = filled(KvHandle::spawn(), pairs.into_iter()).await;
        let start = Instant::now();
        let mut values = Vec::new();
        for _ in 0..MGET_CALLS {
            values = black_box(kv.mget(&keys).await.expect("store is running"));
        }
        let elapsed = start.elapsed();
        let got: Vec<Option<&Value>> = values.iter().map(Option::as_deref).collect();
        let expected: Vec<Value> = (0..MGET_KEYS).map(|i| json!(i)).collect();
        assert_eq!(got, expected.iter().map(Some).collect::<Vec<_>>());
        kv.shutdown().await;
        elapsed
    })
    .await
}
