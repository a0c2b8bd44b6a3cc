//! Churn at scale for rules 9 and 10 of `docs/rules.md` (`purge_expired`, active expiry): a
//! million `set(..).ttl(..)` calls whose keys then expire leave the store, its expiry index and its
//! memory back where they started. And for rules 23 and 24 (`watch`, `wait_for`): thousands of
//! streams dropped, or waits abandoned, on a store nobody writes to give their memory back without
//! any write or `stats` call to notice them.
//!
//! This file is its own test binary so that its allocation counter sees only this test's memory.

#![allow(unsafe_code)] // a counting global allocator: the only way to measure what the map holds

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use ephemeral_kv::{KvHandle, Stats};
use futures::future::join_all;

/// The system allocator, counting the bytes currently allocated.
struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to `System` unchanged; the counter only observes sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Calls sent at once, so that the owner task works through full batches.
const WAVE: usize = 1000;

/// Sets `calls` distinct keys with TTLs of 1 to 3 s, a wave at a time, moving the clock 1 s after
/// each wave, then lets everything expire. Returns the stats at the end and how many bytes more
/// than before the churn are still allocated.
async fn churn(kv: &KvHandle, calls: usize, active_expiry: bool) -> (Stats, isize) {
    // A first wave and its expiry, so that buffers which live as long as the store (the mailbox's
    // blocks, the owner's batch) exist before the baseline is taken.
    one_wave(kv, usize::MAX).await;
    settle(kv, active_expiry).await;
    let before = LIVE_BYTES.load(Ordering::SeqCst);

    for wave in 0..calls / WAVE {
        one_wave(kv, wave).await;
    }
    settle(kv, active_expiry).await;
    let stats = kv.stats().await.unwrap();
    (stats, LIVE_BYTES.load(Ordering::SeqCst) - before)
}

async fn one_wave(kv: &KvHandle, wave: usize) {
    let calls = (0..WAVE).map(|i| {
        let ttl = Duration::from_secs(1 + (i % 3) as u64);
        async move { kv.set(format!("{wave}:{i}"), i).ttl(ttl).await }
    });
    for result in join_all(calls).await {
        result.unwrap();
    }
    tokio::time::advance(Duration::from_secs(1)).await;
}

/// Moves past every deadline and waits until nothing expired is held: with active expiry, by
/// letting the owner task sweep on its own (a slice at a time); without, by purging.
async fn settle(kv: &KvHandle, active_expiry: bool) {
    tokio::time::advance(Duration::from_secs(10)).await;
    if active_expiry {
        for _ in 0..10_000 {
            if kv.stats().await.unwrap().entries == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    } else {
        while kv.purge_expired().limit(100_000).await.unwrap() > 0 {}
    }
}

/// Runs `test` on a current-thread runtime with the clock paused, while no other test of this
/// binary runs, so that the allocation counter sees only its memory.
fn alone(test: impl Future<Output = ()>) {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
        .block_on(test);
}

/// How many bytes of slack the store may keep after a churn: a few small buffers, not a table sized
/// for the peak.
const SLACK: isize = 64 * 1024;

/// Churns `calls` keys on a store with each expiry setting and checks it ends as it started.
fn churn_both_ways(calls: usize) {
    alone(async {
        for active_expiry in [true, false] {
            // A small mailbox: tokio's channel keeps the blocks of its queue for reuse, up to
            // its capacity, which would otherwise blur the count by some hundred kilobytes.
            let kv = KvHandle::builder()
                .active_expiry(active_expiry)
                .mailbox_capacity(64)
                .spawn();
            let (stats, grown) = churn(&kv, calls, active_expiry).await;
            assert_eq!((stats.entries, stats.expiring), (0, 0));
            assert!(
                grown < SLACK,
                "{grown} bytes more than before the churn (active expiry: {active_expiry})"
            );
        }
    });
}

/// A tenth of the million, so that the default `cargo test` stays short (about 1.5 s per expiry
/// setting in debug mode).
#[test]
fn a_hundred_thousand_expiring_sets_leave_the_store_as_it_started() {
    churn_both_ways(100_000);
}

/// The full million, about 15 seconds per setting in debug mode, a few in release:
/// `cargo test --release --test churn -- --ignored`.
#[test]
#[ignore = "a million calls: run in release mode"]
fn a_million_expiring_sets_leave_the_store_as_it_started() {
    churn_both_ways(1_000_000);
}

/// Regression: the map kept the capacity of its peak after every key in it had expired, so a
/// burst of keys held its memory for as long as the store lived.
#[test]
fn expired_burst_does_not_leave_the_map_at_its_peak_capacity() {
    alone(async {
        for active_expiry in [true, false] {
            let kv = KvHandle::builder().active_expiry(active_expiry).spawn();
            settle(&kv, active_expiry).await;
            let before = LIVE_BYTES.load(Ordering::SeqCst);
            let burst = (0..50_000).map(|i| (format!("burst:{i}"), i));
            kv.mset(burst).ttl(Duration::from_secs(1)).await.unwrap();
            settle(&kv, active_expiry).await;
            let grown = LIVE_BYTES.load(Ordering::SeqCst) - before;
            assert!(
                grown < SLACK,
                "{grown} bytes still held after the burst expired"
            );
        }
    });
}

/// Rule 23: streams dropped on a store nobody writes to are forgotten when the next stream is
/// opened, so their rings do not pile up until some write (or `stats`) notices them.
#[test]
fn dropped_watch_streams_give_their_memory_back_on_the_next_watch() {
    alone(async {
        let kv = KvHandle::builder().mailbox_capacity(64).spawn();
        drop(kv.watch("").capacity(64).await.unwrap());
        let _kept = kv.watch("").capacity(64).await.unwrap();
        let before = LIVE_BYTES.load(Ordering::SeqCst);
        for _ in 0..2_000 {
            drop(kv.watch("").capacity(64).await.unwrap());
        }
        let _last = kv.watch("").capacity(64).await.unwrap();
        let grown = LIVE_BYTES.load(Ordering::SeqCst) - before;
        assert!(
            grown < SLACK,
            "{grown} bytes still held after 2,000 streams were dropped"
        );
        assert_eq!(kv.stats().await.unwrap().watchers, 2);
    });
}

/// Rule 24: waits given up on (here by a timeout, after the owner task registered them) are swept
/// as new ones arrive, so that ten thousand of them on keys never written do not pile up.
#[test]
fn abandoned_waits_give_their_memory_back_without_a_write_or_a_stats_call() {
    async fn abandon(kv: &KvHandle, keys: std::ops::Range<usize>) {
        for i in keys {
            let wait = kv.wait_for(format!("never:{i}"));
            let gave_up = tokio::time::timeout(Duration::from_millis(1), wait).await;
            assert!(gave_up.is_err());
        }
    }
    alone(async {
        let kv = KvHandle::builder().mailbox_capacity(64).spawn();
        abandon(&kv, 0..1_000).await;
        let before = LIVE_BYTES.load(Ordering::SeqCst);
        abandon(&kv, 1_000..11_000).await;
        let grown = LIVE_BYTES.load(Ordering::SeqCst) - before;
        assert!(
            grown < SLACK,
            "{grown} bytes still held after 10,000 waits were abandoned"
        );
        assert_eq!(kv.stats().await.unwrap().watchers, 0);
    });
}
