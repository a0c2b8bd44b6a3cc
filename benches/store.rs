//! Criterion benches: ephemeral-kv against `Arc<Mutex<HashMap>>`, `dashmap` and `moka`, all on a
//! 2-worker multi-thread tokio runtime. Run with `cargo bench -p ephemeral-kv-benches --bench
//! store`; the memory numbers come from `--bench memory`, the seed workloads from `--bench seed`,
//! and a short version of all of it from
//! `cargo run --release -p ephemeral-kv-benches --bin bench_report`.
//!
//! Sample sizes and measurement times are small so that the whole run takes a few minutes on two
//! cores.

use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
use ephemeral_kv::KvHandle;
use tokio::runtime::Runtime;

use ephemeral_kv_benches::baselines::{DashKv, Kv, MokaKv, MutexKv};
use ephemeral_kv_benches::workloads::{self as w, BATCH, KEYS, PURGE, TASKS};

/// Operations per criterion iteration of the get/set workload.
const BLOCK: u64 = 1_000;

/// A group with small samples, so that the whole run stays short.
fn group<'a>(c: &'a mut Criterion, name: &str, measure: Duration) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(measure);
    group
}

/// Registers the 90/10 get/set workload of one store at every concurrency.
fn mixed_of<S: Kv>(group: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime, name: &str, store: S) {
    let keys = w::keys(KEYS);
    rt.block_on(w::populate(&store, &keys));
    for tasks in TASKS {
        group.bench_with_input(BenchmarkId::new(name, tasks), &tasks, |b, &tasks| {
            b.to_async(rt)
                .iter_custom(|iters| w::mixed(&store, &keys, tasks, iters * BLOCK));
        });
    }
}

fn get_set_90_10(c: &mut Criterion) {
    let rt = w::runtime();
    let mut group = group(c, "get_set_90_10", Duration::from_secs(2));
    group.throughput(Throughput::Elements(BLOCK));
    mixed_of(
        &mut group,
        &rt,
        "ephemeral_kv",
        rt.block_on(async { KvHandle::spawn() }),
    );
    mixed_of(&mut group, &rt, "mutex", MutexKv::default());
    mixed_of(&mut group, &rt, "dashmap", DashKv::default());
    mixed_of(&mut group, &rt, "moka", MokaKv::default());
    group.finish();
}

/// Registers 100 single gets and 100 single sets of one store.
fn singles_of<S: Kv>(group: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime, name: &str, store: S) {
    let keys = w::keys(KEYS);
    rt.block_on(w::populate(&store, &keys));
    group.bench_function(BenchmarkId::new("100_gets", name), |b| {
        b.to_async(rt)
            .iter_custom(|rounds| w::single_gets(&store, &keys, rounds));
    });
    group.bench_function(BenchmarkId::new("100_sets", name), |b| {
        b.to_async(rt)
            .iter_custom(|rounds| w::single_sets(&store, &keys, rounds));
    });
}

fn batch_of_100(c: &mut Criterion) {
    let rt = w::runtime();
    let mut group = group(c, "batch_of_100", Duration::from_secs(1));
    group.throughput(Throughput::Elements(BATCH as u64));
    let kv = rt.block_on(async { KvHandle::spawn() });
    let keys = w::keys(KEYS);
    rt.block_on(w::populate(&kv, &keys));
    group.bench_function(BenchmarkId::new("mget", "ephemeral_kv"), |b| {
        b.to_async(&rt)
            .iter_custom(|rounds| w::mgets(&kv, &keys, rounds));
    });
    group.bench_function(BenchmarkId::new("mset", "ephemeral_kv"), |b| {
        b.to_async(&rt)
            .iter_custom(|rounds| w::msets(&kv, &keys, rounds));
    });
    singles_of(&mut group, &rt, "ephemeral_kv", kv.clone());
    singles_of(&mut group, &rt, "mutex", MutexKv::default());
    singles_of(&mut group, &rt, "dashmap", DashKv::default());
    singles_of(&mut group, &rt, "moka", MokaKv::default());
    group.finish();
}

/// Registers `list_append_unique` onto a 100-item list and `list_pop_all` of 100 items.
fn lists_of<S: Kv>(group: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime, name: &str, store: S) {
    group.bench_function(BenchmarkId::new("append_unique_onto_100", name), |b| {
        b.to_async(rt)
            .iter_custom(|rounds| w::list_appends(&store, rounds));
    });
    group.bench_function(BenchmarkId::new("pop_all_100", name), |b| {
        b.to_async(rt)
            .iter_custom(|rounds| w::list_pops(&store, rounds));
    });
}

fn lists(c: &mut Criterion) {
    let rt = w::runtime();
    let mut group = group(c, "lists", Duration::from_secs(1));
    group.throughput(Throughput::Elements(1));
    lists_of(
        &mut group,
        &rt,
        "ephemeral_kv",
        rt.block_on(async { KvHandle::spawn() }),
    );
    lists_of(&mut group, &rt, "mutex", MutexKv::default());
    lists_of(&mut group, &rt, "dashmap", DashKv::default());
    lists_of(&mut group, &rt, "moka", MokaKv::default());
    group.finish();
}

fn purge_expired(c: &mut Criterion) {
    let rt = w::purge_runtime();
    // Only the purge itself is timed, but each iteration also waits 2 ms for a TTL to run out:
    // a short measurement time keeps the real time in check.
    let mut group = group(c, "purge_expired_1000", Duration::from_millis(300));
    group.throughput(Throughput::Elements(PURGE as u64));
    for live in [10_000, 1_000_000] {
        let kv = rt.block_on(w::purge_store(live));
        group.bench_with_input(BenchmarkId::new("ephemeral_kv", live), &live, |b, _| {
            b.to_async(&rt).iter_custom(|rounds| w::purges(&kv, rounds));
        });
        rt.block_on(kv.shutdown());
        let scan = rt.block_on(w::scan_store(live));
        group.bench_with_input(BenchmarkId::new("full_scan", live), &live, |b, _| {
            b.iter_custom(|rounds| w::scan_purges(&scan, rounds));
        });
    }
    group.finish();
}

criterion_group!(benches, get_set_90_10, batch_of_100, lists, purge_expired);
criterion_main!(benches);
