//! Criterion benches of the seed workloads: what `python/seed_workloads.py` runs on the Python
//! reference, run on ephemeral-kv (see `src/seed.rs`). Each iteration is one whole workload, so
//! the times are comparable with the script's, which prints seconds per workload:
//!
//! ```text
//! cargo bench -p ephemeral-kv-benches --bench seed
//! python3 benches/python/seed_workloads.py
//! ```
//!
//! Everything runs on a 2-worker multi-thread tokio runtime, each workload in a task of its own,
//! except the `small_values/block_on_*` benches, which run the operations in the runtime's
//! `block_on` body (the shape of a `#[tokio::main]` body), on that runtime and on a
//! `current_thread` one.

use std::future::Future;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode};
use tokio::runtime::Runtime;

use ephemeral_kv_benches::seed::{self, SmallOps};
use ephemeral_kv_benches::workloads as w;

/// A group of whole-workload iterations: the fewest samples criterion takes, one flat run each.
fn group<'a>(c: &'a mut Criterion, name: &str, measure: Duration) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(measure);
    group
}

/// Registers `workload` as `name`: each criterion iteration is one run of it, timed by itself.
fn bench<F, Fut>(group: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime, name: &str, workload: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Duration>,
{
    group.bench_function(name, |b| {
        b.to_async(rt).iter_custom(|iters| {
            let runs: Vec<Fut> = (0..iters).map(|_| workload()).collect();
            async move {
                let mut total = Duration::ZERO;
                for run in runs {
                    total += run.await;
                }
                total
            }
        });
    });
}

fn seed_workloads(c: &mut Criterion) {
    let rt = w::runtime();
    let mut lists = group(c, "seed", Duration::from_secs(3));
    bench(&mut lists, &rt, "inbox", seed::inbox);
    bench(&mut lists, &rt, "capped_log", seed::capped_log);
    bench(&mut lists, &rt, "mget", seed::mget);
    lists.finish();

    // Only the purge call is timed (about 0.1 ms), but each iteration also sets 1,000 keys and
    // waits 2 ms for their TTL to run out: a short measurement time keeps the real time in check.
    let kv = rt.block_on(seed::purge_store());
    let mut purge = group(c, "seed_purge", Duration::from_millis(100));
    bench(&mut purge, &rt, "purge_1000_of_1000000", || {
        seed::purge(&kv)
    });
    purge.finish();
    rt.block_on(kv.shutdown());
    drop(kv);

    let ops = SmallOps::new();
    let mut small = group(c, "seed_small_values", Duration::from_secs(5));
    for tasks in [1, 16, 256] {
        let name = format!("{tasks}_task{}", if tasks == 1 { "" } else { "s" });
        bench(&mut small, &rt, &name, || {
            seed::small_from_tasks(&ops, tasks)
        });
    }
    bench(&mut small, &rt, "block_on_multi_thread", || {
        seed::small_inline(&ops)
    });
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    bench(&mut small, &current, "block_on_current_thread", || {
        seed::small_inline(&ops)
    });
    small.finish();
}

criterion_group!(benches, seed_workloads);
criterion_main!(benches);
