//! The latency of `get` while the store does something big: grows, lets go of a big value,
//! expires many keys at once, takes large writes, or is dropped.
//!
//! Reader tasks send `get`s of a small set of hot keys at a fixed rate (open loop): each request
//! has a scheduled send time, and its latency runs from that time to its answer. A reader held up
//! by a stall sends the requests it missed as soon as it can, and each of them counts the whole
//! delay it suffered, so a 100 ms pause shows as a hundred slow requests, not one (the
//! coordinated omission a closed loop would hide). Percentiles come from an `hdrhistogram`.
//!
//! Tokio's timers tick once a millisecond, so the send times are laid on that grid (see
//! [`timer_grid`]): a reader then wakes when its request is due, not up to a millisecond later.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ephemeral_kv::{Eviction, KvHandle};
use hdrhistogram::Histogram;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio::time::{sleep, sleep_until, Instant};

use crate::baselines::{DashKv, Kv, MokaKv, MutexKv};
use crate::workloads::{list_of, small_value};

/// A store a scenario can make for itself: on the runtime that runs the scenario, for
/// ephemeral-kv, whose owner task must be spawned there.
pub trait Fresh: Kv {
    /// A new, empty store with default settings.
    fn fresh() -> Self;

    /// Lets go of the store once a scenario is over, off the runtime's workers where the store
    /// allows it, and waits until it is gone; then waits a little longer for a store of `entries`
    /// entries, so that a thread still freeing its memory does not run into the next scenario.
    fn close(self, entries: usize) -> impl Future<Output = ()> + Send
    where
        Self: Sized,
    {
        async move {
            drop_off_runtime(self).await;
            rest(entries).await;
        }
    }
}

impl Fresh for KvHandle {
    fn fresh() -> Self {
        KvHandle::spawn()
    }

    async fn close(self, entries: usize) {
        // Answered once the owner task has dropped its store.
        self.shutdown().await;
        rest(entries).await;
    }
}

/// A pause after a scenario that held `entries` entries: about what freeing them takes.
async fn rest(entries: usize) {
    sleep(Duration::from_millis(100 + entries as u64 / 1_000)).await;
}

impl Fresh for MutexKv {
    fn fresh() -> Self {
        MutexKv::default()
    }
}

impl Fresh for DashKv {
    fn fresh() -> Self {
        DashKv::default()
    }
}

impl Fresh for MokaKv {
    fn fresh() -> Self {
        MokaKv::default()
    }
}

/// Reader tasks per probe.
pub const READERS: usize = 8;
/// Each reader sends one `get` per period.
pub const PERIOD: Duration = Duration::from_millis(1);
/// Readers of the steady scenario, nothing else running.
pub const STEADY_READERS: usize = 16;
/// `get`s a second the steady scenario's readers send in all.
pub const STEADY_RATE: u32 = 100_000;
/// Hot keys the readers read, stored before each scenario starts.
pub const HOT: usize = 1_000;
/// Keys per `mset` while a store grows.
pub const GROW_BATCH: usize = 2_000;
/// How long the readers run before and after the event of a scenario.
pub const MARGIN: Duration = Duration::from_millis(200);

/// The sizes of one run.
#[derive(Debug, Clone)]
pub struct Sizes {
    /// The sizes a store grows to, one scenario each.
    pub grow: Vec<usize>,
    /// The largest size that DashMap and moka grow to as well (beyond it, ephemeral-kv and the
    /// mutex only).
    pub grow_baselines: usize,
    /// Items of the big list that leaves the store.
    pub list: usize,
    /// Keys that expire at the same instant.
    pub expiring: usize,
    /// Keys per `mset` of the periodic writer, and how long it runs.
    pub mset: usize,
    /// How often the periodic writer runs.
    pub mset_every: Duration,
    /// How long the periodic writer scenario lasts.
    pub mset_for: Duration,
    /// Keys of the store whose last handle is dropped.
    pub drop_keys: usize,
    /// Keys of the store that is scanned (1% of them under the prefix).
    pub scan: usize,
}

impl Sizes {
    /// The sizes of the issue: 1,000,000 keys and items (and a store grown to 5,000,000).
    pub fn full() -> Sizes {
        Sizes {
            grow: vec![1_000_000, 5_000_000],
            grow_baselines: 1_000_000,
            list: 1_000_000,
            expiring: 500_000,
            mset: 10_000,
            mset_every: Duration::from_millis(50),
            mset_for: Duration::from_secs(2),
            drop_keys: 1_000_000,
            scan: 1_000_000,
        }
    }

    /// A tenth of that, for a short run.
    pub fn quick() -> Sizes {
        Sizes {
            grow: vec![100_000],
            grow_baselines: 100_000,
            list: 100_000,
            expiring: 50_000,
            mset: 10_000,
            mset_every: Duration::from_millis(50),
            mset_for: Duration::from_millis(500),
            drop_keys: 100_000,
            scan: 100_000,
        }
    }
}

/// Percentiles of the latencies one probe saw.
#[derive(Debug, Clone, Copy)]
pub struct Latencies {
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p999: Duration,
    /// The slowest request.
    pub max: Duration,
    /// How many requests were answered.
    pub count: u64,
}

impl Latencies {
    fn of(histogram: &Histogram<u64>) -> Latencies {
        let at = |quantile: f64| Duration::from_nanos(histogram.value_at_quantile(quantile));
        Latencies {
            p50: at(0.5),
            p99: at(0.99),
            p999: at(0.999),
            max: Duration::from_nanos(histogram.max()),
            count: histogram.len(),
        }
    }
}

/// A new histogram of nanoseconds, from 1 µs to a minute, 3 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1_000, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// An instant on tokio's 1 ms timer grid, a little before one of its ticks.
///
/// Tokio rounds a timer's deadline up to the next whole millisecond since the runtime started.
/// A send time laid just before a tick is woken at that tick; one laid just after it, a
/// millisecond late, which would add up to a millisecond to every request. The grid is found by
/// sleeping a few times and taking the earliest wake-up within a millisecond.
pub async fn timer_grid() -> Instant {
    sleep(PERIOD).await;
    let reference = Instant::now();
    let mut earliest: i64 = 0;
    let period = PERIOD.as_nanos() as i64;
    for _ in 0..20 {
        sleep(PERIOD).await;
        let phase = (Instant::now() - reference).as_nanos() as i64 % period;
        // A phase just below a whole period is a wake-up earlier than the reference's.
        let signed = if phase > period / 2 {
            phase - period
        } else {
            phase
        };
        earliest = earliest.min(signed);
    }
    let tick = if earliest < 0 {
        reference - Duration::from_nanos(earliest.unsigned_abs())
    } else {
        reference
    };
    // 50 µs before the (estimated) tick: early enough that the estimate's own wake-up delay does
    // not push the deadline past the tick.
    tick - Duration::from_micros(50)
}

/// Reader tasks sending `get`s at a fixed rate until stopped.
#[derive(Debug)]
pub struct Probe {
    stop: Arc<AtomicBool>,
    readers: Vec<JoinHandle<Histogram<u64>>>,
}

impl Probe {
    /// Starts [`READERS`] readers of the keys `hot:0..HOT` of `store`, one `get` each per
    /// [`PERIOD`].
    pub async fn start<S: Kv>(store: &S) -> Probe {
        Probe::start_with(store, READERS, PERIOD).await
    }

    /// Starts `readers` readers, each sending a `get` every `period` (below the timer's 1 ms, the
    /// requests due within a tick go out together when it fires, each timed from when it was due).
    pub async fn start_with<S: Kv>(store: &S, count: usize, period: Duration) -> Probe {
        let stop = Arc::new(AtomicBool::new(false));
        // The first send time: the next tick of the grid at least a period from now.
        let grid = timer_grid().await;
        let periods = (Instant::now() - grid).as_nanos() / PERIOD.as_nanos() + 2;
        let grid = grid + PERIOD * periods as u32;
        let readers = (0..count)
            .map(|reader| {
                let store = store.clone();
                let stop = Arc::clone(&stop);
                tokio::spawn(async move {
                    let mut latencies = histogram();
                    let mut due = grid + period * reader as u32 / count as u32;
                    let mut key = reader * 131;
                    while !stop.load(Ordering::Relaxed) {
                        if Instant::now() < due {
                            sleep_until(due).await;
                        }
                        key = (key * 31 + 17) % HOT;
                        let _ = store.get(&hot_key(key)).await;
                        let latency = Instant::now().saturating_duration_since(due);
                        latencies.saturating_record(latency.as_nanos() as u64);
                        due += period;
                    }
                    latencies
                })
            })
            .collect();
        Probe { stop, readers }
    }

    /// Stops the readers and returns what they saw.
    pub async fn finish(self) -> Latencies {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = histogram();
        for reader in self.readers {
            let latencies = reader.await.expect("a reader task");
            all.add(&latencies).expect("histograms of the same bounds");
        }
        Latencies::of(&all)
    }
}

/// The `i`th hot key.
pub fn hot_key(i: usize) -> String {
    format!("hot:{i}")
}

/// Stores the hot keys, so that every reader's `get` is a hit.
pub async fn store_hot<S: Kv>(store: &S) {
    let entries = (0..HOT).map(|i| (hot_key(i), small_value(i))).collect();
    store.mset(entries, None).await;
}

/// Runs the readers against `probed` for [`MARGIN`], then `event`, then [`MARGIN`] more.
async fn around<S: Kv, F: Future<Output = ()>>(probed: &S, event: F) -> Latencies {
    let probe = Probe::start(probed).await;
    sleep(MARGIN).await;
    event.await;
    sleep(MARGIN).await;
    probe.finish().await
}

/// `readers` readers share `rate` `get`s a second for `lasting`, nothing else running.
pub async fn steady<S: Fresh>(readers: usize, rate: u32, lasting: Duration) -> Latencies {
    let store = S::fresh();
    store_hot(&store).await;
    let period = Duration::from_secs(1) * readers as u32 / rate;
    let probe = Probe::start_with(&store, readers, period).await;
    sleep(lasting).await;
    let latencies = probe.finish().await;
    store.close(HOT).await;
    latencies
}

/// Lets the machine settle between scenarios: memory another one freed on another thread, and
/// the allocator, are done before the next starts.
pub async fn settle() {
    sleep(Duration::from_millis(300)).await;
}

/// The store grows from the hot keys to `keys` keys, [`GROW_BATCH`] per `mset`. The batches are
/// built before the readers start, so that what the readers see is the store's work, not the
/// writer's.
pub async fn grow<S: Fresh>(keys: usize) -> Latencies {
    let store = S::fresh();
    store_hot(&store).await;
    let batches: Vec<Vec<(String, Value)>> = (0..keys)
        .step_by(GROW_BATCH)
        .map(|start| {
            (start..(start + GROW_BATCH).min(keys))
                .map(|i| (format!("key:{i}"), small_value(i)))
                .collect()
        })
        .collect();
    let latencies = around(&store, async {
        for batch in batches {
            store.mset(batch, None).await;
        }
    })
    .await;
    store.close(keys).await;
    latencies
}

/// How a big value leaves the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leave {
    /// `delete`.
    Delete,
    /// `set` of a small value over it.
    Overwrite,
    /// `list_pop_all`; the caller hands what it gets to a blocking thread to drop.
    PopAll,
    /// `get_del`; likewise.
    GetDel,
    /// Its TTL runs out; active expiry removes it.
    Expire,
    /// A new key in a full store evicts it (`Eviction::VolatileTtl`).
    Evict,
}

impl Leave {
    /// Every way, in the report's order.
    pub const ALL: [Leave; 6] = [
        Leave::Delete,
        Leave::Overwrite,
        Leave::PopAll,
        Leave::GetDel,
        Leave::Expire,
        Leave::Evict,
    ];

    /// The row's name.
    pub fn name(self) -> &'static str {
        match self {
            Leave::Delete => "deleted",
            Leave::Overwrite => "overwritten",
            Leave::PopAll => "popped (`list_pop_all`)",
            Leave::GetDel => "popped (`get_del`)",
            Leave::Expire => "expired (active expiry)",
            Leave::Evict => "evicted",
        }
    }
}

/// The TTL of the big list that expires: long enough for the readers to start first.
const BIG_TTL: Duration = Duration::from_millis(400);

/// A list of `items` small objects leaves an ephemeral-kv store, the way `how` says.
pub async fn leave_kv(items: usize, how: Leave) -> Latencies {
    let kv = match how {
        Leave::Evict => KvHandle::builder()
            .max_entries(HOT + 1)
            .eviction(Eviction::VolatileTtl)
            .spawn(),
        _ => KvHandle::spawn(),
    };
    store_hot(&kv).await;
    let big = list_of(items);
    let ttl = match how {
        Leave::Expire => BIG_TTL,
        _ => Duration::from_secs(3600),
    };
    kv.set("big", big).ttl(ttl).await.expect("store is running");
    let latencies = around(&kv, async {
        match how {
            Leave::Delete => kv.delete("big").await.expect("store is running"),
            Leave::Overwrite => kv.set("big", 1).await.expect("store is running"),
            Leave::PopAll => {
                let list = kv.list_pop_all("big").await.expect("store is running");
                drop_off_runtime(list).await;
            }
            Leave::GetDel => {
                let value = kv.get_del("big").await.expect("store is running");
                drop_off_runtime(value).await;
            }
            Leave::Expire => sleep(BIG_TTL).await,
            Leave::Evict => kv.set("new", 1).await.expect("store is running"),
        }
    })
    .await;
    kv.close(items).await;
    latencies
}

/// A list of `items` small objects is deleted from a baseline store.
pub async fn leave_baseline<S: Fresh>(items: usize) -> Latencies {
    let store = S::fresh();
    store_hot(&store).await;
    store
        .mset(vec![("big".to_owned(), list_of(items))], None)
        .await;
    let latencies = around(&store, store.delete("big")).await;
    store.close(items).await;
    latencies
}

/// The time to drop a list of `items` small objects where it is: what a store that frees it on
/// its only thread pauses for. The best of two.
pub fn inline_drop(items: usize) -> Duration {
    (0..2)
        .map(|_| {
            let list = list_of(items);
            let started = std::time::Instant::now();
            drop(list);
            started.elapsed()
        })
        .min()
        .unwrap_or_default()
}

/// `keys` keys with one deadline expire, with active expiry on.
pub async fn mass_expiry(keys: usize) -> Latencies {
    let kv = KvHandle::spawn();
    store_hot(&kv).await;
    // Long enough for the `mset` itself (which takes the owner a while) and the readers' start.
    let ttl = Duration::from_secs(2).max(Duration::from_micros(4 * keys as u64));
    let entries: Vec<(String, Value)> = (0..keys)
        .map(|i| (format!("exp:{i}"), small_value(i)))
        .collect();
    let deadline = Instant::now() + ttl;
    kv.mset(entries).ttl(ttl).await.expect("store is running");
    let latencies = around(&kv, async {
        sleep_until(deadline).await;
        // Until active expiry has removed them all.
        while kv.stats().await.expect("store is running").entries > HOT {
            sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    kv.close(keys).await;
    latencies
}

/// An `mset` of `keys` keys (the same keys each time) every `every`, for `lasting`.
pub async fn periodic_mset<S: Fresh>(keys: usize, every: Duration, lasting: Duration) -> Latencies {
    let store = S::fresh();
    store_hot(&store).await;
    let batch = |round: usize| -> Vec<(String, Value)> {
        (0..keys)
            .map(|i| (format!("m:{i}"), small_value(i + round)))
            .collect()
    };
    store.mset(batch(0), None).await;
    // Built before the readers start, as in `grow`.
    let rounds = (lasting.as_nanos() / every.as_nanos()).max(1) as usize;
    let batches: Vec<_> = (1..=rounds).map(batch).collect();
    let latencies = around(&store, async {
        let started = Instant::now();
        for (round, batch) in batches.into_iter().enumerate() {
            sleep_until(started + every * round as u32).await;
            store.mset(batch, None).await;
        }
    })
    .await;
    store.close(keys).await;
    latencies
}

/// A store of `keys` keys loses its last handle, while the readers read another store of the
/// same kind on the same runtime.
pub async fn last_handle_dropped<S: Fresh>(keys: usize) -> Latencies {
    let probed = S::fresh();
    store_hot(&probed).await;
    let doomed = S::fresh();
    for start in (0..keys).step_by(10_000) {
        let entries = (start..(start + 10_000).min(keys))
            .map(|i| (format!("key:{i}"), small_value(i)))
            .collect();
        doomed.mset(entries, None).await;
    }
    let latencies = around(&probed, async {
        drop(doomed);
        // An owner task frees its store after the fact: give it the time.
        sleep(Duration::from_millis(300)).await;
    })
    .await;
    probed.close(keys).await;
    latencies
}

/// Drops `value` on a blocking thread and waits for it: setting up and tearing down a scenario
/// must not stall the runtime the next one measures.
pub async fn drop_off_runtime<T: Send + 'static>(value: T) {
    tokio::task::spawn_blocking(move || drop(value))
        .await
        .expect("a blocking task");
}

/// The prefix the scan scenarios scan: 1% of their store's keys start with it.
pub const SCAN_PREFIX: &str = "session:";

/// A store of `keys` keys, of which `keys / 100` start with [`SCAN_PREFIX`]; the others sort
/// before and after them (`key:{i}`, `user:{i}`), beside the hot keys.
async fn scan_store(keys: usize) -> KvHandle {
    let kv = KvHandle::spawn();
    store_hot(&kv).await;
    let sessions = keys / 100;
    for start in (0..keys).step_by(10_000) {
        let entries: Vec<(String, Value)> = (start..(start + 10_000).min(keys))
            .map(|i| {
                let key = match i % 100 {
                    0 => format!("{SCAN_PREFIX}{}", i / 100),
                    n if n % 2 == 0 => format!("key:{i}"),
                    _ => format!("user:{i}"),
                };
                (key, small_value(i))
            })
            .collect();
        kv.mset(entries).await.expect("store is running");
    }
    let found = kv.scan_prefix(SCAN_PREFIX).await.expect("store is running");
    assert_eq!(found.len(), sessions.max(1));
    kv
}

/// A full `scan_prefix` of the 1% of a `keys`-key store under [`SCAN_PREFIX`], while the readers
/// read.
pub async fn full_scan(keys: usize) -> Latencies {
    let kv = scan_store(keys).await;
    let latencies = around(&kv, async {
        let found = kv.scan_prefix(SCAN_PREFIX).await.expect("store is running");
        drop_off_runtime(found).await;
    })
    .await;
    kv.close(keys).await;
    latencies
}

/// In a store of `keys` keys, the median time of `calls` calls of `scan_prefix(SCAN_PREFIX)
/// .limit(10)` and of `calls` `get`s of a hot key, one after another from one task.
pub async fn scan_limit_and_get(keys: usize, calls: usize) -> (Duration, Duration) {
    let kv = scan_store(keys).await;
    let median = |mut times: Vec<Duration>| {
        times.sort_unstable();
        times[times.len() / 2]
    };
    let mut scans = Vec::with_capacity(calls);
    let mut gets = Vec::with_capacity(calls);
    for i in 0..calls {
        let started = Instant::now();
        let found = kv
            .scan_prefix(SCAN_PREFIX)
            .limit(10)
            .await
            .expect("store is running");
        scans.push(started.elapsed());
        assert_eq!(found.len(), 10.min(keys / 100));
        let started = Instant::now();
        let value = kv.get(hot_key(i % HOT)).await.expect("store is running");
        gets.push(started.elapsed());
        assert!(value.is_some());
    }
    kv.close(keys).await;
    (median(scans), median(gets))
}

/// `keys` keys with one deadline, removed by `purge_expired().limit(slice)` calls from one task
/// (active expiry off), each call timed: the median and the slowest call. The owner's own cost
/// of a slice of active expiry, with no readers around to share the machine with.
pub async fn purge_slices(keys: usize, slice: usize) -> (Duration, Duration) {
    let kv = KvHandle::builder().active_expiry(false).spawn();
    let entries: Vec<(String, Value)> = (0..keys)
        .map(|i| (format!("exp:{i}"), small_value(i)))
        .collect();
    kv.mset(entries)
        .ttl(Duration::from_millis(10))
        .await
        .expect("store is running");
    sleep(Duration::from_millis(20)).await;
    let mut times = Vec::new();
    loop {
        let started = Instant::now();
        let removed = kv
            .purge_expired()
            .limit(slice)
            .await
            .expect("store is running");
        times.push(started.elapsed());
        if removed == 0 {
            break;
        }
    }
    kv.close(keys).await;
    times.sort_unstable();
    (times[times.len() / 2], times[times.len() - 1])
}
