//! Running a caller's closure (`update`, `transaction`) on an owner task, safely.
//!
//! A closure is user code running on the one task every caller of the store shares, so three
//! things are guarded here, for both executors:
//! - a panic is caught and becomes an error, and so is a panic while dropping the panic's payload
//!   or the closure itself (a value with a panicking `Drop` captured by the closure would otherwise
//!   end the owner task, and every call after it);
//! - a call on the same store made from inside the closure (say, `block_on(kv.get(..))`) would
//!   wait for the owner task, which waits for the closure: it fails at once instead, because the
//!   closure runs with its store marked on the thread ([`inside`]).

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::panic_message;

/// Which store a handle talks to, and which store's closure a thread is running: unique in the
/// process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StoreId(u64);

impl Default for StoreId {
    fn default() -> Self {
        StoreId::new()
    }
}

impl StoreId {
    /// A new id, never given before in this process.
    pub(crate) fn new() -> StoreId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        StoreId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

thread_local! {
    /// The store whose closure this thread is running, if any.
    static RUNNING_FOR: Cell<Option<StoreId>> = const { Cell::new(None) };
}

/// Runs `f`, a closure of store `store`, catching its panic; the error is the panic's message.
pub(crate) fn run<R>(store: StoreId, f: impl FnOnce() -> R) -> Result<R, String> {
    let outer = RUNNING_FOR.with(|running| running.replace(Some(store)));
    let outcome = catch_unwind(AssertUnwindSafe(f));
    RUNNING_FOR.with(|running| running.set(outer));
    outcome.map_err(|payload| {
        let message = panic_message(&*payload);
        drop_quietly(payload);
        message
    })
}

/// Whether this thread is running a closure of `store` right now.
pub(crate) fn inside(store: StoreId) -> bool {
    RUNNING_FOR.with(|running| running.get() == Some(store))
}

/// Drops `value`, catching a panic in its `Drop`. The payload of such a panic is leaked rather than
/// dropped, since its own `Drop` could panic again.
pub(crate) fn drop_quietly<T>(value: T) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(value))) {
        std::mem::forget(payload);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct PanicsOnDrop;

    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            panic!("drop panicked");
        }
    }

    #[test]
    fn a_panic_whose_payload_panics_on_drop_is_caught() {
        let store = StoreId::new();
        let outcome = run(store, || -> () { std::panic::panic_any(PanicsOnDrop) });
        assert_eq!(outcome, Err("a panic with a non-string payload".to_owned()));
        drop_quietly(PanicsOnDrop);
    }

    #[test]
    fn the_thread_knows_whose_closure_it_runs() {
        let (a, b) = (StoreId::new(), StoreId::new());
        assert_ne!(a, b);
        assert!(!inside(a));
        assert_eq!(run(a, || (inside(a), inside(b))), Ok((true, false)));
        assert!(!inside(a));
    }
}
