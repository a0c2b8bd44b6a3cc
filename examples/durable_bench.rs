//! The numbers in `docs/performance.md`'s durable section: the in-memory store and durable ones
//! under each durability on the same workloads, in the same run, interleaved round by round; this
//! machine's fsync rate; and the time to reopen a store of many keys against `mset`-ing them into a
//! fresh in-memory store.
//!
//! `cargo run --release --features durable --example durable_bench [rounds] [keys_to_reopen]`
//! (defaults 3 and 1,000,000); `EKV_BENCH_ONLY=inbox` (a workload's name) runs that one and the
//! reopen alone, for a profiler (`EKV_BENCH_ONLY=reopen`: the reopen alone). Each figure is the
//! median of the rounds, with the lowest and highest beside it; the reopen too, each round
//! `mset`-ing into a fresh store and then reopening the file. Files go in `$TMPDIR`.
//!
//! The workloads:
//! - **90/10**: 100,000 small values, then 400,000 calls from 256 tasks, 10% `set` and 90% `get`
//!   of keys drawn by SplitMix64 (the seed small-values workload's shape, from many tasks);
//! - **reads**: the same store and tasks, `get` only;
//! - **inbox**: 2,000 `list_append_unique` calls of one 9-field item each, then `list_pop_all`
//!   (the seed inbox workload), 25 times on keys of their own;
//! - **capped log**: 3,000 `list_push(..).max_len(1000).ttl(7 days)` of a 200-character event with
//!   a 64-float embedding (the seed capped-log workload), 25 times on keys of their own;
//! - **writes**: 256 tasks each `set`ting 50 keys of its own (group commit under `EveryBatch`).
//!
//! - **allocations per `get`**: one task's 10,000 `get`s of a filled store (given 1 s to commit), counted by a global
//!   allocator (every thread's allocations, so the journal's too): what a read costs beyond the
//!   in-memory store's, free of the machine's noise.
//!
//! Under `EveryBatch` the two one-caller list workloads are left out: one caller waits for one
//! commit per call, so they measure the disk's fsync rate, which is printed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ephemeral_kv::{Durability, KvHandle};
use serde_json::{json, Value};

const TASKS: usize = 256;
const KEYS: usize = 100_000;
const OPS: usize = 400_000;

/// The system allocator, counting allocations.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded to `System` unchanged; only a counter is added.
#[allow(unsafe_code)] // the only way to count allocations; nothing else is done
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's guarantees, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's guarantees, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's guarantees, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations per `get` of one task's 10,000 `get`s of existing keys.
async fn allocations_per_get(kv: &KvHandle, keys: &Arc<[String]>) -> f64 {
    let (kv, keys) = (kv.clone(), Arc::clone(keys));
    tokio::spawn(async move {
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        for i in 0..10_000 {
            std::hint::black_box(kv.get(&keys[i * 7 % keys.len()]).await.unwrap());
        }
        (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / 10_000.0
    })
    .await
    .unwrap()
}

/// SplitMix64: the same seed gives the same keys and operations on every store.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The stores compared.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Memory,
    Interval,
    EveryBatch,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Memory => "in-memory (`spawn`)",
            Kind::Interval => "`durable`, `Interval(100 ms)`",
            Kind::EveryBatch => "`durable`, `EveryBatch`",
        }
    }

    async fn open(self, dir: &std::path::Path, n: usize) -> KvHandle {
        let durability = match self {
            Kind::Memory => return KvHandle::spawn(),
            Kind::Interval => Durability::Interval(Duration::from_millis(100)),
            Kind::EveryBatch => Durability::EveryBatch,
        };
        let path = dir.join(format!("{n}.db"));
        let _ = std::fs::remove_file(&path);
        KvHandle::builder()
            .durability(durability)
            .durable(&path)
            .await
            .expect("open a durable store")
    }
}

/// A store holding `k{i}` = `i` for every key, its fill given a second to reach the disk.
async fn filled(kv: KvHandle, keys: &Arc<[String]>) -> KvHandle {
    for chunk in keys.chunks(10_000) {
        let pairs: Vec<_> = chunk
            .iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), i))
            .collect();
        kv.mset(pairs).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    kv
}

/// Calls per second of `OPS` calls from `TASKS` tasks, a `set` one time in `every` (never if 0).
async fn mix(kv: &KvHandle, keys: &Arc<[String]>, every: u64) -> f64 {
    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (kv, keys) = (kv.clone(), Arc::clone(keys));
            tokio::spawn(async move {
                let mut rng = t as u64;
                for j in 0..OPS / TASKS {
                    let r = splitmix(&mut rng);
                    let key = &keys[(r % keys.len() as u64) as usize];
                    if every > 0 && (r >> 32) % every == 0 {
                        kv.set(key, j).await.unwrap();
                    } else {
                        std::hint::black_box(kv.get(key).await.unwrap());
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    (OPS / TASKS * TASKS) as f64 / started.elapsed().as_secs_f64()
}

/// Writes per second from `TASKS` tasks each setting 50 keys of its own.
async fn writes(kv: &KvHandle) -> f64 {
    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|c| {
            let kv = kv.clone();
            tokio::spawn(async move {
                for i in 0..50 {
                    kv.set(format!("w{c}:{i}"), i).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    (TASKS * 50) as f64 / started.elapsed().as_secs_f64()
}

/// How many times the one-caller list workloads run, each on a key of its own, per figure: once
/// takes well under the journal's 100 ms interval.
const REPEATS: usize = 25;

/// Calls per second of the seed inbox, [`REPEATS`] times: 2,000 `list_append_unique`, then one
/// `list_pop_all`.
async fn inbox(kv: &KvHandle) -> f64 {
    let kv = kv.clone();
    tokio::spawn(async move {
        let started = Instant::now();
        for r in 0..REPEATS {
            let key = format!("inbox:{r}");
            for i in 0..2_000 {
                let item = json!({
                    "id": format!("file-{i}"),
                    "name": format!("report-{i}.pdf"),
                    "mime_type": "application/pdf",
                    "size": 1024 + 37 * i,
                    "url": format!("https://files.example.com/f/file-{i}"),
                    "thumbnail_url": format!("https://files.example.com/t/file-{i}.png"),
                    "platform": "slack",
                    "channel": "C0123456789",
                    "timestamp": 1_700_000_000.0 + i as f64 * 0.5,
                });
                kv.list_append_unique(&key, [item]).await.unwrap();
            }
            assert_eq!(kv.list_pop_all(&key).await.unwrap().len(), 2_000);
        }
        (REPEATS * 2_001) as f64 / started.elapsed().as_secs_f64()
    })
    .await
    .unwrap()
}

/// Calls per second of the seed capped log, [`REPEATS`] times: 3,000 pushes onto a list kept at
/// 1,000 events.
async fn capped_log(kv: &KvHandle) -> f64 {
    let kv = kv.clone();
    tokio::spawn(async move {
        let started = Instant::now();
        for r in 0..REPEATS {
            let key = format!("events:{r}");
            for i in 0..3_000usize {
                let embedding: Vec<Value> = (0..64)
                    .map(|j| Value::from(((i + j) % 97) as f64 / 97.0))
                    .collect();
                let event = json!({
                    "id": format!("evt-{i}"),
                    "run_id": "run-0001",
                    "kind": "llm.step",
                    "text": format!("{:.<200}", format!("step {i}: ")),
                    "metrics": {"tokens_in": i % 1000, "tokens_out": (7 * i) % 500},
                    "embedding": embedding,
                    "ts": 1_700_000_000.0 + i as f64,
                });
                let push = kv.list_push(&key, [event]).max_len(1_000);
                push.ttl(Duration::from_secs(7 * 24 * 3600)).await.unwrap();
            }
        }
        (REPEATS * 3_000) as f64 / started.elapsed().as_secs_f64()
    })
    .await
    .unwrap()
}

/// fsyncs per second of a 4 KB append, for one second.
fn fsync_rate(dir: &std::path::Path) -> f64 {
    let path = dir.join("fsync.bin");
    let mut file = std::fs::File::create(&path).unwrap();
    let block = [7u8; 4096];
    let started = Instant::now();
    let mut n = 0u32;
    while started.elapsed() < Duration::from_secs(1) {
        file.write_all(&block).unwrap();
        file.sync_data().unwrap();
        n += 1;
    }
    let _ = std::fs::remove_file(path);
    f64::from(n) / started.elapsed().as_secs_f64()
}

const WORKLOADS: [&str; 6] = [
    "90/10",
    "reads",
    "inbox",
    "capped log",
    "writes",
    "allocations per get",
];

/// The median, lowest and highest of `figures`.
fn spread(figures: &[f64]) -> (f64, f64, f64) {
    let mut sorted = figures.to_vec();
    sorted.sort_by(f64::total_cmp);
    (
        sorted[sorted.len() / 2],
        sorted[0],
        sorted[sorted.len() - 1],
    )
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(3);
    let reopen_keys: usize = args
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let dir = std::env::temp_dir().join(format!("ekv-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let keys: Arc<[String]> = (0..KEYS).map(|i| format!("k{i}")).collect();

    println!("fsync rate: {:.0}/s", fsync_rate(&dir));
    let kinds = [Kind::Memory, Kind::Interval, Kind::EveryBatch];
    // figures[kind][workload][round]
    let mut figures = vec![vec![Vec::new(); WORKLOADS.len()]; kinds.len()];
    let mut files = 0;
    let only = std::env::var("EKV_BENCH_ONLY").ok();
    for _ in 0..rounds {
        for (k, &kind) in kinds.iter().enumerate() {
            for (w, &workload) in WORKLOADS.iter().enumerate() {
                if kind == Kind::EveryBatch && matches!(workload, "inbox" | "capped log")
                    || only.as_deref().is_some_and(|only| only != workload)
                {
                    continue;
                }
                files += 1;
                let kv = kind.open(&dir, files).await;
                let rate = match workload {
                    "90/10" => mix(&filled(kv.clone(), &keys).await, &keys, 10).await,
                    "reads" => mix(&filled(kv.clone(), &keys).await, &keys, 0).await,
                    "inbox" => inbox(&kv).await,
                    "capped log" => capped_log(&kv).await,
                    "allocations per get" => {
                        allocations_per_get(&filled(kv.clone(), &keys).await, &keys).await
                    }
                    _ => writes(&kv).await,
                };
                figures[k][w].push(rate);
                kv.shutdown().await;
                // The store's map is freed off its owner, by a thread that runs on after the
                // shutdown (a 100,000-key store takes tens of milliseconds, its allocator's
                // clean-up longer): the next workload starts once that is done, not during it.
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    println!("| store | workload | calls/s (median; allocations for the last) | lowest–highest | vs in-memory (median) |");
    println!("|---|---|--:|--:|--:|");
    for (k, kind) in kinds.iter().enumerate() {
        for (w, workload) in WORKLOADS.iter().enumerate() {
            if figures[k][w].is_empty() {
                continue;
            }
            let (median, low, high) = spread(&figures[k][w]);
            let (base, _, _) = spread(&figures[0][w]);
            let digits = if *workload == "allocations per get" {
                2
            } else {
                0
            };
            println!(
                "| {} | {workload} | {median:.digits$} | {low:.digits$}–{high:.digits$} | {:.2}x |",
                kind.name(),
                median / base
            );
        }
    }

    // Reopen: `reopen_keys` keys written in chunks, closed, reopened; each round `mset`s them
    // into a fresh in-memory store, then reopens the file, so the two take turns.
    let entries =
        |from: usize| (from..(from + 10_000).min(reopen_keys)).map(|i| (format!("key:{i}"), i));
    let path = dir.join("reopen.db");
    let kv = KvHandle::builder()
        .durability(Durability::Interval(Duration::from_millis(100)))
        .durable(&path)
        .await
        .unwrap();
    for chunk in (0..reopen_keys).step_by(10_000) {
        kv.mset(entries(chunk)).await.unwrap();
    }
    kv.shutdown().await;
    let (mut msets, mut reopens, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let fresh = KvHandle::spawn();
        let started = Instant::now();
        for chunk in (0..reopen_keys).step_by(10_000) {
            fresh.mset(entries(chunk)).await.unwrap();
        }
        let mset = started.elapsed().as_secs_f64();
        fresh.shutdown().await;
        let started = Instant::now();
        let kv = KvHandle::builder().durable(&path).await.unwrap();
        let reopen = started.elapsed().as_secs_f64();
        assert_eq!(kv.stats().await.unwrap().entries, reopen_keys);
        kv.shutdown().await;
        msets.push(mset);
        reopens.push(reopen);
        ratios.push(reopen / mset);
    }
    let (mset, mset_low, mset_high) = spread(&msets);
    let (reopen, reopen_low, reopen_high) = spread(&reopens);
    let (ratio, ratio_low, ratio_high) = spread(&ratios);
    println!(
        "{reopen_keys} keys, median of {rounds} rounds (lowest–highest): mset into a fresh \
         in-memory store {mset:.2} s ({mset_low:.2}–{mset_high:.2}), reopen {reopen:.2} s \
         ({reopen_low:.2}–{reopen_high:.2}); reopen ÷ mset {ratio:.2}x ({ratio_low:.2}–{ratio_high:.2})"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
