//! A short run of the workloads of `benches/` (issue 4), printed as one markdown table of ops/s and
//! ratios against each baseline, followed by the five performance targets, met or not.
//!
//! ```text
//! cargo run --release --example bench_report
//! ```
//!
//! Each workload runs [`REPS`] times, the stores taking turns, and the best run of each store
//! counts: other programs on the machine only ever make a run slower, so the best run is the
//! closest to what the store can do, and taking turns exposes every store to the same noise.

#[path = "../benches/support/mod.rs"]
mod support;

use std::time::Duration;

use ephemeral_kv::KvHandle;
use tokio::runtime::Runtime;

use support::baselines::{DashKv, MokaKv, MutexKv};
use support::workloads::{self as w, BATCH, KEYS, MEMORY_ENTRIES, PURGE, TASKS};

/// Runs of each workload; the best counts.
const REPS: usize = 3;
/// Operations of one run of the get/set workload.
const MIXED_OPS: u64 = 200_000;
/// Rounds of 100 keys of one run of the batch workloads.
const BATCH_ROUNDS: u64 = 500;
/// Calls of one run of the list workloads.
const LIST_ROUNDS: u64 = 2_000;
/// Calls of the purge workloads; the fastest counts, for the store and for the scan alike. Each
/// call follows a 2 ms wait, during which other programs may take the core and its caches; a sum
/// over several calls would mostly measure how often that happened.
const PURGE_CALLS: usize = 20;

/// The store and the three baselines, each holding the same 100,000 keys.
struct Stores {
    kv: KvHandle,
    mutex: MutexKv,
    dash: DashKv,
    moka: MokaKv,
}

impl Stores {
    /// The four stores, each holding `small_value(i)` at each `keys[i]`.
    ///
    /// Each part of the report starts from fresh stores, as each criterion group does: a store
    /// that has been through the random writes of the get/set workload reads more slowly (its
    /// values are scattered in memory; every store shows it), which would make a part's numbers
    /// depend on which parts ran before it.
    fn populated(rt: &Runtime, keys: &[String]) -> Stores {
        rt.block_on(async {
            let stores = Stores {
                kv: KvHandle::spawn(),
                mutex: MutexKv::default(),
                dash: DashKv::default(),
                moka: MokaKv::default(),
            };
            w::populate(&stores.kv, keys).await;
            w::populate(&stores.mutex, keys).await;
            w::populate(&stores.dash, keys).await;
            w::populate(&stores.moka, keys).await;
            stores
        })
    }
}

/// The best time of each of the four stores (in the order of [`Stores`]) over [`REPS`] runs of
/// `$body`, run with `$store` bound to each store in turn.
macro_rules! best_of_each {
    ($rt:expr, $stores:expr, |$store:ident| $body:expr) => {{
        let mut best = [Duration::MAX; 4];
        for _ in 0..REPS {
            let times = [
                {
                    let $store = &$stores.kv;
                    $rt.block_on($body)
                },
                {
                    let $store = &$stores.mutex;
                    $rt.block_on($body)
                },
                {
                    let $store = &$stores.dash;
                    $rt.block_on($body)
                },
                {
                    let $store = &$stores.moka;
                    $rt.block_on($body)
                },
            ];
            for (best, time) in best.iter_mut().zip(times) {
                *best = (*best).min(time);
            }
        }
        best
    }};
}

/// The best of [`REPS`] runs of one workload.
fn best_of(rt: &Runtime, mut run: impl FnMut(&Runtime) -> Duration) -> Duration {
    (0..REPS).map(|_| run(rt)).min().unwrap_or(Duration::MAX)
}

/// One line of the table: the store's number and each baseline's (`None`: not measured there).
struct Row {
    workload: String,
    unit: &'static str,
    store: f64,
    baselines: [Option<f64>; 3],
}

/// Operations per second of `ops` operations in `time`.
fn rate(ops: u64, time: Duration) -> f64 {
    ops as f64 / time.as_secs_f64()
}

fn rates(ops: u64, times: [Duration; 4]) -> (f64, [Option<f64>; 3]) {
    let [store, mutex, dash, moka] = times.map(|time| rate(ops, time));
    (store, [Some(mutex), Some(dash), Some(moka)])
}

fn number(value: f64) -> String {
    match value {
        v if v >= 1e6 => format!("{:.2} M", v / 1e6),
        v if v >= 1e4 => format!("{:.0} k", v / 1e3),
        v => format!("{v:.1}"),
    }
}

fn print_table(rows: &[Row]) {
    println!("| workload | unit | ephemeral-kv | Mutex<HashMap> | DashMap | moka | ÷ mutex | ÷ dashmap | ÷ moka |");
    println!("|---|---|--:|--:|--:|--:|--:|--:|--:|");
    for row in rows {
        let cells: Vec<String> = row
            .baselines
            .iter()
            .map(|b| b.map_or("—".into(), number))
            .collect();
        let ratios: Vec<String> = row
            .baselines
            .iter()
            .map(|b| b.map_or("—".into(), |b| format!("{:.2}x", row.store / b)))
            .collect();
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.workload,
            row.unit,
            number(row.store),
            cells[0],
            cells[1],
            cells[2],
            ratios[0],
            ratios[1],
            ratios[2]
        );
    }
}

fn check(number: usize, what: &str, met: bool, detail: String) {
    let verdict = if met { "met" } else { "NOT met" };
    println!("{number}. {what}: **{verdict}** ({detail})");
}

fn main() {
    let rt = w::runtime();
    let started = std::time::Instant::now();
    let keys = w::keys(KEYS);
    let mut rows = Vec::new();

    // 1, 2: 90/10 get/set from 1, 16 and 256 tasks.
    let stores = Stores::populated(&rt, &keys);
    let mut mixed = Vec::new();
    for tasks in TASKS {
        let times = best_of_each!(rt, stores, |s| w::mixed(s, &keys, tasks, MIXED_OPS));
        let (store, baselines) = rates(MIXED_OPS, times);
        mixed.push((
            tasks,
            store,
            baselines[0].unwrap_or(0.0),
            baselines[1].unwrap_or(0.0),
        ));
        let workload = format!(
            "get/set 90/10, {tasks} task{}",
            if tasks == 1 { "" } else { "s" }
        );
        rows.push(Row {
            workload,
            unit: "ops/s",
            store,
            baselines,
        });
    }

    // 3: 100 keys in one call against 100 single calls.
    drop(stores);
    let stores = Stores::populated(&rt, &keys);
    let batch_keys = (BATCH as u64) * BATCH_ROUNDS;
    let gets = best_of_each!(rt, stores, |s| w::single_gets(s, &keys, BATCH_ROUNDS));
    let sets = best_of_each!(rt, stores, |s| w::single_sets(s, &keys, BATCH_ROUNDS));
    let mget = best_of(&rt, |rt| {
        rt.block_on(w::mgets(&stores.kv, &keys, BATCH_ROUNDS))
    });
    let mset = best_of(&rt, |rt| {
        rt.block_on(w::msets(&stores.kv, &keys, BATCH_ROUNDS))
    });
    let (_, single_gets) = rates(batch_keys, gets);
    let (_, single_sets) = rates(batch_keys, sets);
    let (mget, mset) = (rate(batch_keys, mget), rate(batch_keys, mset));
    rows.push(Row {
        workload: "mget of 100 keys, one call (baselines: 100 gets)".into(),
        unit: "keys/s",
        store: mget,
        baselines: single_gets,
    });
    rows.push(Row {
        workload: "mset of 100 keys, one call (baselines: 100 sets)".into(),
        unit: "keys/s",
        store: mset,
        baselines: single_sets,
    });
    let (store, baselines) = rates(batch_keys, gets);
    rows.push(Row {
        workload: "100 single gets".into(),
        unit: "keys/s",
        store,
        baselines,
    });
    let (store, baselines) = rates(batch_keys, sets);
    rows.push(Row {
        workload: "100 single sets".into(),
        unit: "keys/s",
        store,
        baselines,
    });

    // Lists.
    let appends = best_of_each!(rt, stores, |s| w::list_appends(s, LIST_ROUNDS));
    let (store, baselines) = rates(LIST_ROUNDS, appends);
    rows.push(Row {
        workload: format!("list_append_unique onto a {}-item list", w::LIST_LEN),
        unit: "calls/s",
        store,
        baselines,
    });
    let pops = best_of_each!(rt, stores, |s| w::list_pops(s, LIST_ROUNDS));
    let (store, baselines) = rates(LIST_ROUNDS, pops);
    rows.push(Row {
        workload: format!("list_pop_all of {} items", w::LIST_LEN),
        unit: "calls/s",
        store,
        baselines,
    });

    // 4: purge_expired(1000) against a full scan.
    let mut purge = Vec::new();
    let purge_rt = w::purge_runtime();
    for live in [10_000, 1_000_000] {
        let kv = purge_rt.block_on(w::purge_store(live));
        let store = (0..PURGE_CALLS)
            .map(|_| purge_rt.block_on(w::purges(&kv, 1)))
            .min()
            .unwrap_or(Duration::MAX);
        purge_rt.block_on(kv.shutdown());
        let scan_store = rt.block_on(w::scan_store(live));
        let scan = (0..PURGE_CALLS)
            .map(|_| w::scan_purges(&scan_store, 1))
            .min()
            .unwrap_or(Duration::MAX);
        drop(scan_store);
        let (store, scan) = (rate(1, store), rate(1, scan));
        purge.push((store, scan));
        rows.push(Row {
            workload: format!(
                "purge_expired({PURGE}), {live} live + {PURGE} expired (mutex: full scan)"
            ),
            unit: "calls/s",
            store,
            baselines: [Some(scan), None, None],
        });
    }

    // 5: memory per entry.
    let plain = rt.block_on(w::plain_bytes_per_entry(MEMORY_ENTRIES));
    let bytes = rt.block_on(w::store_bytes_per_entry(MEMORY_ENTRIES, false));
    let bytes_ttl = rt.block_on(w::store_bytes_per_entry(MEMORY_ENTRIES, true));
    let memory_row = |workload: &str, store| Row {
        workload: workload.into(),
        unit: "bytes/entry",
        store,
        baselines: [Some(plain), None, None],
    };
    rows.push(memory_row(
        "memory, 1M entries, no TTL (mutex column: plain HashMap<String, Value>)",
        bytes,
    ));
    rows.push(memory_row(
        "memory, 1M entries, all with a TTL (same baseline)",
        bytes_ttl,
    ));

    print_table(&rows);
    println!();
    println!("Targets (ratios from this run):");
    let at = |tasks| {
        mixed
            .iter()
            .find(|m| m.0 == tasks)
            .copied()
            .unwrap_or_default()
    };
    let (_, s16, m16, d16) = at(16);
    let (_, s256, m256, d256) = at(256);
    check(
        1,
        "90/10 at 16 and 256 tasks >= 1.0x mutex",
        s16 >= m16 && s256 >= m256,
        format!(
            "16 tasks {:.2}x, 256 tasks {:.2}x; stretch vs dashmap: {:.2}x and {:.2}x",
            s16 / m16,
            s256 / m256,
            s16 / d16,
            s256 / d256
        ),
    );
    let (_, s1, m1, _) = at(1);
    check(
        2,
        "1 task >= 0.5x mutex",
        s1 >= 0.5 * m1,
        format!("{:.2}x", s1 / m1),
    );
    let (mutex_gets, mutex_sets) = (
        single_gets[0].unwrap_or(f64::MAX),
        single_sets[0].unwrap_or(f64::MAX),
    );
    check(
        3,
        "mget/mset of 100 keys >= 2x keys/s of 100 mutex ops",
        mget >= 2.0 * mutex_gets && mset >= 2.0 * mutex_sets,
        format!(
            "mget {:.2}x, mset {:.2}x",
            mget / mutex_gets,
            mset / mutex_sets
        ),
    );
    let ((small, _), (large, large_scan)) = (purge[0], purge[1]);
    check(
        4,
        "purge_expired(1000) >= 100x full scan at 1M, and time at 1M <= 2x time at 10k",
        large >= 100.0 * large_scan && small <= 2.0 * large,
        format!(
            "{:.0}x the scan at 1M; time at 1M is {:.2}x the time at 10k",
            large / large_scan,
            small / large
        ),
    );
    check(
        5,
        "memory <= 1.5x plain HashMap<String, Value>",
        bytes <= 1.5 * plain,
        format!(
            "{:.2}x without TTL, {:.2}x with a TTL on every entry",
            bytes / plain,
            bytes_ttl / plain
        ),
    );
    println!();
    println!("(ran in {:.0} s)", started.elapsed().as_secs_f64());
}
