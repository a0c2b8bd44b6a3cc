//! A short run of the benchmarks, printed as markdown tables, in this order (the two that count
//! bytes first, before other parts' big stores are being freed):
//!
//! 4. appends onto a list while older versions of it are held (alone: `bench_report held`);
//! 3. memory per entry against a plain `HashMap<String, Value>`;
//! 1. the seed workloads, on the Python reference (`python/seed_workloads.py`, run as a
//!    subprocess with `python3`) and on ephemeral-kv;
//! 2. ephemeral-kv against `Mutex<HashMap>`, `DashMap` and `moka`;
//! 5. the call against a bare actor (alone: `bench_report floor`).
//!
//! ```text
//! cargo run --release -p ephemeral-kv-benches --bin bench_report
//! ```
//!
//! `bench_report latency` prints instead the latency of `get` while a store does something big
//! (grows to a million keys, lets go of a million-item list, ...), against the same baselines;
//! `bench_report latency --quick` runs it at a tenth of the sizes.
//!
//! Each workload runs [`REPS`] times and the best run counts, on both sides of every comparison:
//! other programs on the machine only ever make a run slower, so the best run is the closest to
//! what a store can do. In part 2 the stores take turns, so that all are exposed to the same
//! noise.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ephemeral_kv::KvHandle;
use futures::StreamExt;
use serde_json::Value;
use tokio::runtime::Runtime;

use ephemeral_kv_benches::alloc;
use ephemeral_kv_benches::baselines::{DashKv, MokaKv, MutexKv};
use ephemeral_kv_benches::latency::{self, Latencies, Leave, Sizes};
use ephemeral_kv_benches::seed::{self, SmallOps};
use ephemeral_kv_benches::workloads::{self as w, BATCH, KEYS, MEMORY_ENTRIES, PURGE, TASKS};

/// The command that prints this report.
const COMMAND: &str = "cargo run --release -p ephemeral-kv-benches --bin bench_report";
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
/// Calls of `scan_prefix(..).limit(10)`, and of `get`, in the latency report; the median counts.
const SCAN_CALLS: usize = 1_000;
/// Entries active expiry removes between two batches (`src/local/actor.rs`).
const EXPIRY_SLICE: usize = 256;

/// The header's first sentences: the cores, the system and the allocator the numbers come from.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "Machine: {cores} cores ({} {}). Allocator: {}.",
        std::env::consts::OS,
        std::env::consts::ARCH,
        alloc::allocator()
    )
}

fn main() {
    let started = Instant::now();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("latency") {
        let quick = args.iter().any(|arg| arg == "--quick");
        // `--only grow,scan`: only those parts (grow, leave, expiry, steady, mset, drop, scan).
        let only: Option<Vec<String>> = args
            .iter()
            .position(|arg| arg == "--only")
            .and_then(|at| args.get(at + 1))
            .map(|parts| parts.split(',').map(str::to_owned).collect());
        println!("# ephemeral-kv: latency under the owner's big jobs");
        println!();
        println!(
            "{} Command: `{COMMAND} latency{}`.",
            machine(),
            if quick { " --quick" } else { "" }
        );
        println!();
        let wanted = |part: &str| {
            only.as_ref()
                .is_none_or(|only| only.iter().any(|p| p == part))
        };
        latency_report(if quick { Sizes::quick() } else { Sizes::full() }, &wanted);
        println!("(ran in {:.0} s)", started.elapsed().as_secs_f64());
        return;
    }
    // One part alone: `held` or `floor`.
    let parts: [(&str, &str, fn()); 2] = [
        (
            "held",
            "appends while older versions of a list are held",
            held_versions,
        ),
        ("floor", "the call against a bare actor", floor),
    ];
    if let Some((name, title, part)) = parts
        .into_iter()
        .find(|(name, ..)| args.first().map(String::as_str) == Some(*name))
    {
        println!("# ephemeral-kv: {title}");
        println!();
        println!("{} Command: `{COMMAND} {name}`.", machine());
        println!();
        part();
        println!("(ran in {:.0} s)", started.elapsed().as_secs_f64());
        return;
    }
    println!("# ephemeral-kv benchmarks");
    println!();
    println!(
        "{} Command: `{COMMAND}`. Each number is the best of {REPS} runs.",
        machine()
    );
    println!();
    // The two parts that count bytes first, before any other part's big stores are being freed
    // (their freeing, and the pauses it brings, would count against them).
    held_versions();
    memory();
    seed_workloads();
    rust_stores();
    floor();
    println!("(ran in {:.0} s)", started.elapsed().as_secs_f64());
}

// ---- 1. Seed workloads: the Python reference and ephemeral-kv ----------------------------------

/// The Python reference's best times, in seconds, by workload name, or why there are none.
fn python_times() -> Result<Value, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/seed_workloads.py");
    let output = Command::new("python3")
        .arg(&script)
        .args(["--repeat", &REPS.to_string()])
        .output();
    let output = match output {
        Ok(output) => output,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err("python3 was not found, so only ephemeral-kv was measured".into())
        }
        Err(err) => return Err(format!("python3 could not be started ({err})")),
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().last().unwrap_or("").trim();
        return Err(format!(
            "{} failed ({}): {last}",
            script.display(),
            output.status
        ));
    }
    serde_json::from_slice(&output.stdout)
        .map_err(|err| format!("{} printed no JSON object ({err})", script.display()))
}

/// The best of [`REPS`] runs of `run` on `rt`.
fn best<F: std::future::Future<Output = Duration>>(
    rt: &Runtime,
    mut run: impl FnMut() -> F,
) -> Duration {
    (0..REPS)
        .map(|_| rt.block_on(run()))
        .min()
        .unwrap_or(Duration::MAX)
}

/// The Python reference's time and the reference's time divided by the store's, as printed
/// (`—` for both when the reference did not run).
fn against_reference(reference: Option<Duration>, store: Duration) -> (String, String) {
    match reference {
        Some(reference) => (
            time(reference),
            ratio(reference.as_secs_f64() / store.as_secs_f64()),
        ),
        None => ("—".to_owned(), "—".to_owned()),
    }
}

/// A duration in the unit that suits it.
fn time(time: Duration) -> String {
    let secs = time.as_secs_f64();
    match secs {
        s if s >= 1.0 => format!("{s:.2} s"),
        s if s >= 1e-3 => format!("{:.1} ms", s * 1e3),
        s if s >= 1e-5 => format!("{:.0} µs", s * 1e6),
        s => format!("{:.2} µs", s * 1e6),
    }
}

fn seed_workloads() {
    println!("## Seed workloads: the Python reference and ephemeral-kv");
    println!();
    println!(
        "The workloads of `benches/python/seed_workloads.py` (same sizes, same values, each value \
         built inside the timed loop), on the Python reference (one asyncio event loop, one \
         coroutine) and on ephemeral-kv (a 2-worker multi-thread tokio runtime, the calls from one \
         spawned task unless the row says otherwise). Times are for the whole workload; the last \
         column is the Python time divided by the ephemeral-kv time (above 1: ephemeral-kv is \
         faster)."
    );
    println!();
    let python = python_times();
    let ops = SmallOps::new();
    let rt = w::runtime();
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");

    let small = format!(
        "small values: {} ops over {} keys",
        thousands(seed::SMALL_OPS),
        thousands(seed::SMALL_KEYS)
    );
    let mut rows: Vec<(String, &str, Duration)> = vec![
        (
            format!(
                "inbox: {} `list_append_unique`, then `list_pop_all`",
                thousands(seed::INBOX_ITEMS)
            ),
            "inbox",
            best(&rt, seed::inbox),
        ),
        (
            format!(
                "capped log: {} events, the last {} kept",
                thousands(seed::LOG_APPENDS),
                thousands(seed::LOG_CAP)
            ),
            "capped_log",
            best(&rt, seed::capped_log),
        ),
        (
            format!(
                "capped log, the events alone: built, the last {} kept in a plain list",
                thousands(seed::LOG_CAP)
            ),
            "capped_log_events",
            best(&rt, seed::capped_log_events),
        ),
    ];
    for tasks in [1, 16, 256] {
        let from = match tasks {
            1 => "1 task".to_owned(),
            n => format!("{n} tasks"),
        };
        let elapsed = best(&rt, || seed::small_from_tasks(&ops, tasks));
        rows.push((format!("{small}, {from}"), "small_1", elapsed));
    }
    rows.push((
        format!("{small}, `block_on` body, multi-thread runtime"),
        "small_1",
        best(&rt, || seed::small_inline(&ops)),
    ));
    rows.push((
        format!("{small}, `block_on` body, `current_thread` runtime"),
        "small_1",
        best(&current, || seed::small_inline(&ops)),
    ));
    let kv = rt.block_on(seed::purge_store());
    rows.push((
        format!(
            "`purge_expired` (limit {}): {} expired among {} keys",
            thousands(seed::PURGE_LIMIT),
            thousands(seed::PURGE_EXPIRED),
            thousands(seed::PURGE_LIVE + seed::PURGE_EXPIRED)
        ),
        "purge",
        best(&rt, || seed::purge(&kv)),
    ));
    rt.block_on(kv.shutdown());
    drop(kv);
    rows.push((
        format!(
            "mget: {} calls of `mget` of {} keys",
            thousands(seed::MGET_CALLS),
            seed::MGET_KEYS
        ),
        "mget",
        best(&rt, seed::mget),
    ));

    println!("| workload | Python reference | ephemeral-kv | Python ÷ ephemeral-kv |");
    println!("|---|--:|--:|--:|");
    let python_of = |name: &str| {
        python
            .as_ref()
            .ok()
            .and_then(|times| times[name].as_f64())
            .map(Duration::from_secs_f64)
    };
    for (workload, name, store) in &rows {
        let (reference_cell, speedup) = against_reference(python_of(name), *store);
        println!(
            "| {workload} | {reference_cell} | {} | {speedup} |",
            time(*store)
        );
    }
    println!();
    println!(
        "- inbox: each call appends one file reference (9 fields) to one list; the pop returns all \
         {} items.",
        thousands(seed::INBOX_ITEMS)
    );
    println!(
        "- capped log: each event has 7 fields, a 200-character text and 64 floats. ephemeral-kv: \
         one `list_push(..).max_len({}).ttl(7 days)` per event; Python: get the list, append, \
         keep the last {}, set it back with the TTL.",
        seed::LOG_CAP,
        thousands(seed::LOG_CAP)
    );
    let time_of = |name: &str| rows.iter().find(|row| row.1 == name).map(|row| row.2);
    if let (Some(log), Some(events)) = (time_of("capped_log"), time_of("capped_log_events")) {
        let store = log.saturating_sub(events);
        let reference = python_of("capped_log")
            .zip(python_of("capped_log_events"))
            .map(|(log, events)| log.saturating_sub(events));
        let (reference_cell, speedup) = against_reference(reference, store);
        println!(
            "- capped log, the store's part (the workload less its events alone): Python \
             {reference_cell}, ephemeral-kv {}, Python ÷ ephemeral-kv {speedup}.",
            time(store)
        );
    }
    println!(
        "- small values: 90% `get`, 10% `set` of random keys (the same sequence on both sides), \
         split evenly among the tasks. The Python reference runs them from one coroutine in every \
         row. \"`block_on` body\" runs them in the future given to `Runtime::block_on`, as in a \
         `#[tokio::main]` function, outside the runtime's worker threads on a multi-thread \
         runtime."
    );
    println!(
        "- purge: only the `purge_expired` call is timed (ephemeral-kv's keys expire through a \
         1 ms TTL and a 2 ms wait, followed by a `stats` call so that the store is awake, as the \
         Python one is); the Python reference scans every key to find the expired ones."
    );
    match &python {
        Ok(_) => {
            println!("- Python side: `python3 benches/python/seed_workloads.py --repeat {REPS}`.")
        }
        Err(why) => println!("- Python side: {why}."),
    }
    println!();
}

/// `n` with a comma every three digits.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

// ---- 2. Other Rust stores -----------------------------------------------------------------------

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

/// One line of the table: ephemeral-kv's number and each baseline's (`None`: not measured there).
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
        v if v >= 1e3 => format!("{:.1} k", v / 1e3),
        v => format!("{v:.1}"),
    }
}

/// A ratio, with fewer decimals as it grows.
fn ratio(ratio: f64) -> String {
    match ratio {
        r if r >= 100.0 => format!("{r:.0}x"),
        r if r >= 10.0 => format!("{r:.1}x"),
        r => format!("{r:.2}x"),
    }
}

fn print_table(rows: &[Row]) {
    println!("| workload | unit | ephemeral-kv | Mutex<HashMap> | DashMap | moka | vs Mutex<HashMap> | vs DashMap | vs moka |");
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
            .map(|b| b.map_or("—".into(), |b| ratio(row.store / b)))
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

fn rust_stores() {
    println!("## ephemeral-kv and other Rust stores");
    println!();
    println!(
        "The same workloads on ephemeral-kv, `Arc<Mutex<HashMap<String, _>>>`, `DashMap` and \
         `moka::future::Cache`, each with a TTL checked on every read, on a 2-worker multi-thread \
         tokio runtime, over {} small JSON objects. Reads from the other stores clone the value \
         out; ephemeral-kv hands out a shared `Arc<Value>`. Higher is faster; each \"vs\" column \
         is ephemeral-kv's number divided by that store's (above 1: ephemeral-kv is faster).",
        thousands(KEYS)
    );
    println!();
    let rt = w::runtime();
    let keys = w::keys(KEYS);
    let mut rows = Vec::new();

    // 90/10 get/set from 1, 16 and 256 tasks.
    let stores = Stores::populated(&rt, &keys);
    for tasks in TASKS {
        let times = best_of_each!(rt, stores, |s| w::mixed(s, &keys, tasks, MIXED_OPS));
        let (store, baselines) = rates(MIXED_OPS, times);
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

    // 100 keys in one call against 100 single calls.
    drop(stores);
    let stores = Stores::populated(&rt, &keys);
    let batch_keys = (BATCH as u64) * BATCH_ROUNDS;
    let gets = best_of_each!(rt, stores, |s| w::single_gets(s, &keys, BATCH_ROUNDS));
    let sets = best_of_each!(rt, stores, |s| w::single_sets(s, &keys, BATCH_ROUNDS));
    let mget = best(&rt, || w::mgets(&stores.kv, &keys, BATCH_ROUNDS));
    let mset = best(&rt, || w::msets(&stores.kv, &keys, BATCH_ROUNDS));
    let (_, single_gets) = rates(batch_keys, gets);
    let (_, single_sets) = rates(batch_keys, sets);
    rows.push(Row {
        workload: "mget of 100 keys in one call (others: 100 gets)".into(),
        unit: "keys/s",
        store: rate(batch_keys, mget),
        baselines: single_gets,
    });
    rows.push(Row {
        workload: "mset of 100 keys in one call (others: 100 sets)".into(),
        unit: "keys/s",
        store: rate(batch_keys, mset),
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
    drop(stores);

    // purge_expired(1000) against a scan of the whole map.
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
        rows.push(Row {
            workload: format!(
                "purge_expired({}), {} live + {} expired keys (Mutex<HashMap>: a scan of the whole map)",
                thousands(PURGE),
                thousands(live),
                thousands(PURGE)
            ),
            unit: "calls/s",
            store: rate(1, store),
            baselines: [Some(rate(1, scan)), None, None],
        });
    }

    print_table(&rows);
    println!();
    println!(
        "The purge rows run on a `current_thread` runtime and count the fastest of {PURGE_CALLS} calls."
    );
    println!();
}

// ---- 3. Memory ----------------------------------------------------------------------------------

fn memory() {
    println!("## Memory per entry");
    println!();
    println!(
        "Bytes allocated per entry for {} entries (a key `key:{{i}}` and a small JSON object), \
         counted by a counting allocator.",
        thousands(MEMORY_ENTRIES)
    );
    println!();
    let rt = w::runtime();
    let plain = rt.block_on(w::plain_bytes_per_entry(MEMORY_ENTRIES));
    let (bytes, store) = rt.block_on(w::store_bytes_per_entry(MEMORY_ENTRIES, false));
    let (bytes_ttl, store_ttl) = rt.block_on(w::store_bytes_per_entry(MEMORY_ENTRIES, true));
    rt.block_on(async {
        store.shutdown().await;
        store_ttl.shutdown().await;
    });
    println!("| store | bytes per entry | vs HashMap<String, Value> |");
    println!("|---|--:|--:|");
    println!("| HashMap<String, Value> | {plain:.1} | 1.00x |");
    println!(
        "| ephemeral-kv, no TTL | {bytes:.1} | {:.2}x |",
        bytes / plain
    );
    println!(
        "| ephemeral-kv, a TTL on every entry | {bytes_ttl:.1} | {:.2}x |",
        bytes_ttl / plain
    );
    println!();
}

// ---- 4. Appends while older versions of the list are held ---------------------------------------

/// 500 `list_append_unique` calls onto a 2,000-item inbox, each answer dropped at once: with no
/// one else holding the list, with a reader holding the version from before the first call, with
/// a `watch` stream that is never read, and with one read after each call. Each case is the best
/// of [`REPS`] runs, by time; the bytes are the same in every run.
fn held_versions() {
    println!("## Appends while older versions of a list are held");
    println!();
    println!(
        "500 `list_append_unique` calls of one file reference onto a 2,000-item list, on a \
         `current_thread` runtime; time, and the bytes left allocated when the 500 calls end \
         (for the unread stream: before it is read), against the 2,000-item list's own bytes. \
         Best of {REPS} runs."
    );
    println!();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let ((), list_bytes) = rt.block_on(alloc::measure(async {
        let list = serde_json::Value::Array((0..2_000).map(seed::inbox_item).collect());
        std::hint::black_box(&list);
        std::mem::forget(list);
    }));
    println!("| who else holds the list | time | ÷ no one | bytes left allocated | ÷ the list's |");
    println!("|---|--:|--:|--:|--:|");
    let cases = [
        "no one",
        "a reader, one version",
        "an unread watch stream",
        "a watch stream read after each call",
    ];
    let mut alone = None;
    for case in cases {
        let mut best: Option<(Duration, isize)> = None;
        for _ in 0..REPS {
            let run = rt.block_on(appends_with(case));
            if best.is_none_or(|(time, _)| run.0 < time) {
                best = Some(run);
            }
        }
        let (time, bytes) = best.expect("REPS > 0");
        let alone = *alone.get_or_insert(time);
        println!(
            "| {case} | {} | {:.2}x | {:.1} MiB | {:.2}x |",
            self::time(time),
            time.as_secs_f64() / alone.as_secs_f64(),
            bytes as f64 / (1024.0 * 1024.0),
            bytes as f64 / list_bytes as f64
        );
    }
    println!();
    println!(
        "The 2,000-item list's own bytes: {:.1} MiB.",
        list_bytes as f64 / (1024.0 * 1024.0)
    );
    println!();
}

/// One run of [`held_versions`]: the time of the 500 calls and the bytes they left allocated.
async fn appends_with(case: &str) -> (Duration, isize) {
    let kv = ephemeral_kv::KvHandle::spawn();
    for i in 0..2_000 {
        kv.list_append_unique("inbox", [seed::inbox_item(i)])
            .await
            .expect("store is running");
    }
    let reader = match case == "a reader, one version" {
        true => kv.get("inbox").await.expect("store is running"),
        false => None,
    };
    let mut watcher = match case.contains("watch stream") {
        true => Some(kv.watch("").await.expect("store is running")),
        false => None,
    };
    let read = case == "a watch stream read after each call";
    // Timed inside: `measure` first waits for the allocator to be quiet.
    let (time, bytes) = alloc::measure(async {
        let started = Instant::now();
        for i in 2_000..2_500 {
            kv.list_append_unique("inbox", [seed::inbox_item(i)])
                .await
                .expect("store is running");
            if let Some(stream) = watcher.as_mut().filter(|_| read) {
                let event = stream.next().await.expect("an event");
                std::hint::black_box(event.expect("no lag"));
            }
        }
        started.elapsed()
    })
    .await;
    if let Some(mut stream) = watcher.filter(|_| !read) {
        // The unread stream still yields every version, whole.
        kv.shutdown().await;
        let mut last = 0;
        while let Some(event) = stream.next().await {
            let event = event.expect("no lag");
            last = event.value().and_then(|v| v.as_array()).map_or(0, Vec::len);
        }
        assert_eq!(last, 2_500, "the unread stream's last version");
    }
    drop(reader);
    (time, bytes)
}

// ---- 5. The call against a bare actor ----------------------------------------------------------

/// Calls per run of the floor comparison.
const FLOOR_CALLS: usize = 200_000;

fn floor() {
    use ephemeral_kv_benches::floor::{self, Bare, Call};
    println!("## The call against a bare actor");
    println!();
    println!(
        "Time per call of {} calls over {} held keys, on a 2-worker multi-thread runtime: a bare \
         tokio actor (bounded `mpsc` of requests, a `oneshot` per answer, a `HashMap` on its \
         task, drained 64 at a time) against `KvHandle` (the event rows: a tenth of the calls). \
         The two take turns, {REPS} runs each; the best counts.",
        thousands(FLOOR_CALLS),
        thousands(floor::KEYS)
    );
    println!();
    println!("| call | tasks | bare actor | ephemeral-kv | ephemeral-kv ÷ bare |");
    println!("|---|--:|--:|--:|--:|");
    let rt = w::runtime();
    let (bare, kv) = rt.block_on(w::on_worker(async {
        let (bare, kv) = (Bare::spawn(), KvHandle::spawn());
        floor::fill(&bare).await;
        floor::fill(&kv).await;
        (bare, kv)
    }));
    for call in [Call::Get, Call::Set, Call::Event] {
        // An event takes a few microseconds to build: a tenth of the calls take as long.
        let calls = match call {
            Call::Event => FLOOR_CALLS / 10,
            Call::Get | Call::Set => FLOOR_CALLS,
        };
        for tasks in [1, 16] {
            let (mut best_bare, mut best_kv) = (Duration::MAX, Duration::MAX);
            for _ in 0..REPS {
                let b = bare.clone();
                best_bare = best_bare.min(rt.block_on(w::on_worker(async move {
                    floor::per_call(&b, call, tasks, calls).await
                })));
                let k = kv.clone();
                best_kv = best_kv.min(rt.block_on(w::on_worker(async move {
                    floor::per_call(&k, call, tasks, calls).await
                })));
            }
            println!(
                "| {} | {tasks} | {:.0} ns | {:.0} ns | {} |",
                match call {
                    Call::Get => "`get`",
                    Call::Set => "`set`",
                    Call::Event => "`set` of a capped-log event, built in the loop",
                },
                best_bare.as_nanos(),
                best_kv.as_nanos(),
                ratio(best_kv.as_secs_f64() / best_bare.as_secs_f64())
            );
        }
    }
    println!();
}

// ---- Latency: `get` while the store does something big ----------------------------------------

/// One row of the latency table.
fn latency_row(scenario: &str, store: &str, latencies: Latencies) {
    let Latencies {
        p50,
        p99,
        p999,
        max,
        count,
    } = latencies;
    println!(
        "| {scenario} | {store} | {} | {} | {} | {} | {} |",
        time(p50),
        time(p99),
        time(p999),
        time(max),
        thousands(count as usize)
    );
}

/// Runs one scenario as a task on `rt`'s workers, then lets the machine settle.
fn run<F>(rt: &Runtime, scenario: F) -> Latencies
where
    F: std::future::Future<Output = Latencies> + Send + 'static,
{
    let latencies = rt.block_on(w::on_worker(scenario));
    rt.block_on(latency::settle());
    latencies
}

fn latency_report(sizes: Sizes, wanted: &dyn Fn(&str) -> bool) {
    println!(
        "{} reader tasks, each sending a `get` of one of {} hot keys every {} ms (open loop: a \
         request's latency runs from when it was due, so a stall counts for every request it \
         delays), on a 2-worker multi-thread tokio runtime, while the scenario's writer runs as \
         another task. Readers run {} ms before and after each event. The baselines clone the \
         value out on a read, as in the other tables.",
        latency::READERS,
        thousands(latency::HOT),
        latency::PERIOD.as_millis(),
        latency::MARGIN.as_millis(),
    );
    println!();
    println!("| scenario | store | p50 | p99 | p99.9 | max | requests |");
    println!("|---|---|--:|--:|--:|--:|--:|");
    let rt = w::runtime();
    macro_rules! each_store {
        ($scenario:expr, $make:ident ( $($arg:expr),* )) => {{
            let scenario = $scenario;
            latency_row(&scenario, "ephemeral-kv", run(&rt, latency::$make::<KvHandle>($($arg),*)));
            latency_row(&scenario, "Mutex<HashMap>", run(&rt, latency::$make::<MutexKv>($($arg),*)));
            latency_row(&scenario, "DashMap", run(&rt, latency::$make::<DashKv>($($arg),*)));
            latency_row(&scenario, "moka", run(&rt, latency::$make::<MokaKv>($($arg),*)));
        }};
    }

    for &keys in sizes.grow.iter().filter(|_| wanted("grow")) {
        let scenario = format!(
            "grows to {} keys (`mset` of {})",
            thousands(keys),
            thousands(latency::GROW_BATCH)
        );
        latency_row(
            &scenario,
            "ephemeral-kv",
            run(&rt, latency::grow::<KvHandle>(keys)),
        );
        // The mutex at every size (the 5M target is against it), the others up to
        // `grow_baselines`.
        latency_row(
            &scenario,
            "Mutex<HashMap>",
            run(&rt, latency::grow::<MutexKv>(keys)),
        );
        if keys <= sizes.grow_baselines {
            latency_row(
                &scenario,
                "DashMap",
                run(&rt, latency::grow::<DashKv>(keys)),
            );
            latency_row(&scenario, "moka", run(&rt, latency::grow::<MokaKv>(keys)));
        }
    }

    let list = thousands(sizes.list);
    for how in Leave::ALL.into_iter().filter(|_| wanted("leave")) {
        let scenario = format!("a {list}-item list is {}", how.name());
        latency_row(
            &scenario,
            "ephemeral-kv",
            run(&rt, latency::leave_kv(sizes.list, how)),
        );
        if how == Leave::Delete {
            latency_row(
                &scenario,
                "Mutex<HashMap>",
                run(&rt, latency::leave_baseline::<MutexKv>(sizes.list)),
            );
            latency_row(
                &scenario,
                "DashMap",
                run(&rt, latency::leave_baseline::<DashKv>(sizes.list)),
            );
            latency_row(
                &scenario,
                "moka",
                run(&rt, latency::leave_baseline::<MokaKv>(sizes.list)),
            );
        }
    }

    if wanted("expiry") {
        latency_row(
            &format!(
                "{} keys expire at one instant (active expiry)",
                thousands(sizes.expiring)
            ),
            "ephemeral-kv",
            run(&rt, latency::mass_expiry(sizes.expiring)),
        );
    }

    if wanted("steady") {
        each_store!(
            format!(
                "nothing else: {} `get`s a second from {} tasks",
                thousands(latency::STEADY_RATE as usize),
                latency::STEADY_READERS
            ),
            steady(
                latency::STEADY_READERS,
                latency::STEADY_RATE,
                sizes.mset_for
            )
        );
    }
    if wanted("mset") {
        each_store!(
            format!(
                "an `mset` of {} keys every {} ms",
                thousands(sizes.mset),
                sizes.mset_every.as_millis()
            ),
            periodic_mset(sizes.mset, sizes.mset_every, sizes.mset_for)
        );
    }
    if wanted("drop") {
        each_store!(
            format!(
                "the last handle of another {}-key store is dropped",
                thousands(sizes.drop_keys)
            ),
            last_handle_dropped(sizes.drop_keys)
        );
    }
    let sessions = sizes.scan / 100;
    for keys in [sizes.scan, sessions]
        .into_iter()
        .filter(|_| wanted("scan"))
    {
        latency_row(
            &format!(
                "a full `scan_prefix` of the {} keys under a prefix, among {}",
                thousands(sessions),
                thousands(keys)
            ),
            "ephemeral-kv",
            run(&rt, latency::full_scan(keys)),
        );
    }
    println!();
    if wanted("scan") {
        let (scan, get) = rt.block_on(w::on_worker(latency::scan_limit_and_get(
            sizes.scan, SCAN_CALLS,
        )));
        println!(
            "In a store of {} keys, `scan_prefix(\"{}\").limit(10)` takes {} and a `get` {} ({}; \
         the median of {SCAN_CALLS} calls each, from one task).",
            thousands(sizes.scan),
            latency::SCAN_PREFIX,
            time(scan),
            time(get),
            ratio(scan.as_secs_f64() / get.as_secs_f64())
        );
        println!();
    }
    if wanted("expiry") {
        let (median, slowest) = rt.block_on(w::on_worker(latency::purge_slices(
            sizes.expiring,
            EXPIRY_SLICE,
        )));
        println!(
            "Removing {} expired keys by `purge_expired().limit({EXPIRY_SLICE})` calls (active \
             expiry's slice) from one task: the median call takes {}, the slowest {}.",
            thousands(sizes.expiring),
            time(median),
            time(slowest)
        );
        println!();
    }
    if wanted("leave") {
        let inline = latency::inline_drop(sizes.list);
        println!(
            "Dropping the {list}-item list inline, on one thread, takes {} (the best of two).",
            time(inline)
        );
        println!();
    }
}
