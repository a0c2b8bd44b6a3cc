//! Code shared by the criterion benches (`benches/*.rs`) and the `bench_report` binary, so that
//! both measure exactly the same workloads against exactly the same baselines.
//!
//! - [`baselines`]: the Rust stores ephemeral-kv is compared against, with the store's semantics.
//! - [`workloads`]: the data and the timed workloads of those comparisons, generic over
//!   [`baselines::Kv`].
//! - [`floor`]: a bare mpsc + oneshot actor, the least a call of this shape costs.
//! - [`latency`]: open-loop readers measuring `get` latency while a store grows, frees a big
//!   value, expires many keys, takes big writes or is dropped.
//! - [`seed`]: the seed workloads, the same as `python/seed_workloads.py` runs on the Python
//!   reference.
//! - [`alloc`]: the counting global allocator used for the memory numbers. Every binary built on
//!   this library uses it; it counts nothing unless asked to.

pub mod alloc;
pub mod baselines;
pub mod floor;
pub mod latency;
pub mod seed;
pub mod workloads;
