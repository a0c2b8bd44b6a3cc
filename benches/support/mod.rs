//! Code shared by the criterion benches (`benches/*.rs`) and `examples/bench_report.rs`, so that
//! both measure exactly the same workloads against exactly the same baselines.
//!
//! - `baselines`: the stores we compare against, with the store's semantics.
//! - `workloads`: the data and the timed workloads, generic over [`baselines::Kv`].
//! - `alloc`: the counting global allocator used for the memory numbers.
//!
//! Each binary uses a different subset of this code, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod alloc;
pub mod baselines;
pub mod workloads;
