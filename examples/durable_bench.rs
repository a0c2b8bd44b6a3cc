//! The numbers in `docs/performance.md`'s durable section: a write/read mix from 256 concurrent
//! callers on the in-memory store and on durable ones under each durability, this machine's fsync
//! rate, and the time to reopen a store of many keys against `mset`-ing them into a fresh
//! in-memory store.
//!
//! `cargo run --release --features durable --example durable_bench [keys_to_reopen]`
//! (default 1,000,000). Files go in `$TMPDIR`.

use std::io::Write;
use std::time::{Duration, Instant};

use ephemeral_kv::{Durability, KvHandle};

const CALLERS: usize = 256;
const CALLS_EACH: usize = 200;

/// Calls per second: each caller does `CALLS_EACH` calls, one write then three reads.
async fn mix(kv: &KvHandle) -> f64 {
    let started = Instant::now();
    let tasks: Vec<_> = (0..CALLERS)
        .map(|c| {
            let kv = kv.clone();
            tokio::spawn(async move {
                for i in 0..CALLS_EACH {
                    let key = format!("k{c}:{}", i % 16);
                    if i % 4 == 0 {
                        kv.set(key, i).await.unwrap();
                    } else {
                        let _ = kv.get(key).await.unwrap();
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    (CALLERS * CALLS_EACH) as f64 / started.elapsed().as_secs_f64()
}

/// Writes per second when every write is an `EveryBatch` set (for writes/fsync).
async fn writes(kv: &KvHandle) -> f64 {
    let started = Instant::now();
    let tasks: Vec<_> = (0..CALLERS)
        .map(|c| {
            let kv = kv.clone();
            tokio::spawn(async move {
                for i in 0..CALLS_EACH / 4 {
                    kv.set(format!("w{c}:{i}"), i).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    (CALLERS * CALLS_EACH / 4) as f64 / started.elapsed().as_secs_f64()
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

#[tokio::main]
async fn main() {
    let keys: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let dir = std::env::temp_dir().join(format!("ekv-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    println!("fsync rate: {:.0}/s", fsync_rate(&dir));
    let memory = KvHandle::spawn();
    mix(&memory).await; // warm up
    let base = mix(&memory).await;
    println!("in-memory mix: {base:.0} calls/s");
    for (name, durability) in [
        (
            "Interval(100 ms)",
            Durability::Interval(Duration::from_millis(100)),
        ),
        ("EveryBatch", Durability::EveryBatch),
    ] {
        let path = dir.join(format!("{name}.db"));
        let kv = KvHandle::builder()
            .durability(durability)
            .durable(&path)
            .await
            .unwrap();
        mix(&kv).await;
        let rate = mix(&kv).await;
        let w = writes(&kv).await;
        println!(
            "{name} mix: {rate:.0} calls/s ({:.2}x in-memory); writes only: {w:.0}/s",
            rate / base
        );
        kv.shutdown().await;
    }

    // Reopen: `keys` keys written in chunks, closed, reopened.
    let entries = |from: usize| (from..from + 10_000).map(|i| (format!("key:{i}"), i));
    let fresh = KvHandle::spawn();
    let started = Instant::now();
    for chunk in (0..keys).step_by(10_000) {
        fresh.mset(entries(chunk)).await.unwrap();
    }
    let mset = started.elapsed();
    let path = dir.join("reopen.db");
    let kv = KvHandle::builder()
        .durability(Durability::Interval(Duration::from_millis(100)))
        .durable(&path)
        .await
        .unwrap();
    for chunk in (0..keys).step_by(10_000) {
        kv.mset(entries(chunk)).await.unwrap();
    }
    kv.shutdown().await;
    let started = Instant::now();
    let kv = KvHandle::builder().durable(&path).await.unwrap();
    let reopen = started.elapsed();
    assert_eq!(kv.stats().await.unwrap().entries, keys);
    println!(
        "{keys} keys: mset into a fresh in-memory store {mset:?}, reopen {reopen:?} ({:.2}x)",
        reopen.as_secs_f64() / mset.as_secs_f64()
    );
    kv.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
