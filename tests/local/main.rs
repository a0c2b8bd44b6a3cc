//! What only the in-process store promises, beyond the rules of `docs/rules.md` that both backends
//! share (those are in `tests/conformance/`, which runs them on this store too):
//!
//! - [`core`]: rules 1, 3, 9, 10, 11 and 12 where the owner task shows more: expiry exact to the
//!   nanosecond on tokio's paused clock, expired entries held until touched, active expiry, the
//!   owner task's end, a sent call applied whole, `Closed` and `OwnerGone`; and the builder's
//!   settings;
//! - [`coordination`]: rules 18, 19 and 25 on the owner task: closures run once, panics caught on
//!   it, calls on another store from inside a closure, the `stats` counters;
//! - [`watch_and_wait`]: rules 23 (`watch`, in-process only: one event per key per command, typed
//!   events) and 24 (`wait_for` woken by the write itself, abandoned waits and dropped streams
//!   forgotten);
//! - [`zero_copy`]: values shared as the `Arc` the store holds, not copied;
//! - [`reference_examples`]: every example of the reference's documentation.
//!
//! TTL tests run on tokio's paused clock: time moves only when a test moves it.

mod coordination;
mod core;
mod max_entries;
mod reference_examples;
mod watch_and_wait;
mod zero_copy;
