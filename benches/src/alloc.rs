//! A global allocator that counts the bytes currently allocated, but only while asked to.
//!
//! Why not `stats_alloc` or `cap`: they count every allocation unconditionally, on counters shared
//! by all threads. The same binaries also measure multi-threaded throughput, where that shared
//! counter would be bounced between the two cores on every allocation and distort the very numbers
//! being compared. Here counting is off by default and costs one relaxed load of a flag that is
//! never written while throughput is measured.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};

/// The allocator underneath: the system's (glibc's malloc on Linux), or mimalloc with the
/// `mimalloc` feature.
#[cfg(not(feature = "mimalloc"))]
const INNER: std::alloc::System = std::alloc::System;
#[cfg(feature = "mimalloc")]
const INNER: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The allocator underneath, for a report's header: `mimalloc`, or the system allocator with the
/// glibc tunables it runs under (`GLIBC_TUNABLES`), which change its pauses.
pub fn allocator() -> String {
    if cfg!(feature = "mimalloc") {
        return "mimalloc (`--features mimalloc`)".to_owned();
    }
    match std::env::var("GLIBC_TUNABLES") {
        Ok(tunables) if !tunables.is_empty() => {
            format!("the system allocator, `GLIBC_TUNABLES={tunables}`")
        }
        _ => "the system allocator".to_owned(),
    }
}

/// The allocator underneath ([`allocator`]), counting net bytes while [`measure`] runs.
pub struct CountingAlloc;

static COUNTING: AtomicBool = AtomicBool::new(false);
static NET_BYTES: AtomicIsize = AtomicIsize::new(0);

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn count(delta: isize) {
    if COUNTING.load(Ordering::Relaxed) {
        NET_BYTES.fetch_add(delta, Ordering::Relaxed);
    }
}

// SAFETY: every call is passed straight to `INNER` unchanged; only a counter is updated besides.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        INNER.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        INNER.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        INNER.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        INNER.realloc(ptr, layout, new_size)
    }
}

/// Runs `f` with counting on and returns its result with the net bytes it left allocated (what it
/// allocated minus what it freed, on any thread, while it ran). Whatever `f` returns is still
/// allocated, so returning the structure being measured counts it.
///
/// It first waits (up to 60 s) until no other thread is freeing or allocating in bulk, such as the
/// store's freeing thread still dropping a store an earlier measurement shut down: that would
/// count against `f`. Quiet means a quarter of a second without: that thread's work has pauses of
/// 100 ms and more (glibc's malloc merging the chunks freed so far) in which nothing is counted.
pub async fn measure<T, F: std::future::Future<Output = T>>(f: F) -> (T, isize) {
    quiet().await;
    NET_BYTES.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    let out = f.await;
    COUNTING.store(false, Ordering::SeqCst);
    (out, NET_BYTES.load(Ordering::SeqCst))
}

/// Waits until five 50 ms windows in a row each see less than 64 KiB allocated or freed on net,
/// or 60 s pass.
async fn quiet() {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut quiet_windows = 0;
    while quiet_windows < 5 && std::time::Instant::now() < deadline {
        NET_BYTES.store(0, Ordering::SeqCst);
        COUNTING.store(true, Ordering::SeqCst);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        COUNTING.store(false, Ordering::SeqCst);
        quiet_windows = match NET_BYTES.load(Ordering::SeqCst).unsigned_abs() < 64 * 1024 {
            true => quiet_windows + 1,
            false => 0,
        };
    }
}
