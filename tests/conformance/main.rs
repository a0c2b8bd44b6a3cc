//! The rules of `docs/rules.md` that hold on both backends, written once and run on each: the
//! in-process store (`local::<test>`, on tokio's paused clock) and, with `--features redis`, a
//! Redis server of the test's own (`redis::<test>`, on real time). Where the backends differ (what
//! `purge_expired` counts, whether an expiry is a change event, how exactly a TTL can be read back), the test
//! asks its [`Backend`](backend::Backend); `docs/redis.md` lists those differences.
//!
//! With `--features durable` every rule also runs on a durable store (`durable::<test>`: the
//! in-process store journaled to a SQLite file of the test's own, on the paused clock, under
//! `Durability::Interval`: under `EveryBatch` a write waits for a commit on another thread, and
//! the paused clock would jump meanwhile).
//!
//! - [`core`]: rules 1–9 and 11–13 (rule 10, active expiry, and rule 14, logging, are about the
//!   in-process owner task: `tests/local/core.rs` and `tests/tracing.rs`);
//! - [`coordination`]: rules 15–25;
//! - [`lists`]: rules 26 (`list_push`) and 27 (`list_pop_front`);
//! - [`feeds`]: rules 23, 24, 25 (`watchers`), 27 (blocking pops) and 30 through the change feeds,
//!   with handles built separately; its `on_redis` part, the Redis change stream itself;
//! - [`hostile`]: rules 28 (values nested past `MAX_DEPTH`) and 29 (calls on a store from inside
//!   its own closures), and rules 18 and 19 for closures that panic with (or capture) values whose
//!   `Drop` panics;
//! - [`arbitrary_json`]: rule 28 for generated JSON of every shape, through every call;
//! - [`restart`]: values, lists, TTLs and counters kept across a restart, on the backends that
//!   have one (`Backend::restart`: the durable store);
//! - `redis_only` (with `--features redis`): what only a Redis server can show (handles built
//!   separately sharing one store, a server that dies and comes back, contention, foreign data).
//!
//! What only the in-process store does (its owner task, `stats` counters, exact paused-clock
//! timing, shared `Arc` values, expiry and eviction events) is in `tests/local/`.
//!
//! Each conformance test is an `async fn(&impl Backend)`; `conformance!` turns a list of them into
//! one `#[tokio::test]` per backend.

// A directory test binary can reach the shared `tests/support/` only by path: Cargo compiles
// `tests/conformance/main.rs` as its own crate root, whose plain `mod support;` would look in
// `tests/conformance/`.
#[path = "../support/mod.rs"]
#[macro_use]
mod support;

/// Generates, for each named test function, `local::<name>`, (with the `durable` feature)
/// `durable::<name>` and (with the `redis` feature) `redis::<name>`. Attributes written before a name (such as `#[ignore = "bug: ..."]`) go on
/// both.
macro_rules! conformance {
    ($($(#[$attr:meta])* $name:ident),* $(,)?) => {
        mod local {
            $(
                #[tokio::test(start_paused = true)]
                $(#[$attr])*
                async fn $name() {
                    super::$name(&crate::backend::Local).await;
                }
            )*
        }

        #[cfg(feature = "durable")]
        mod durable {
            $(
                #[tokio::test(start_paused = true)]
                $(#[$attr])*
                async fn $name() {
                    let backend = crate::backend::Durable::new();
                    super::$name(&backend).await;
                }
            )*
        }

        #[cfg(feature = "redis")]
        mod redis {
            $(
                #[tokio::test]
                $(#[$attr])*
                async fn $name() {
                    let Some(backend) = crate::backend::Redis::start(stringify!($name)).await else {
                        return;
                    };
                    super::$name(&backend).await;
                }
            )*
        }
    };
}

mod arbitrary_json;
mod backend;
mod coordination;
mod core;
mod feeds;
mod hostile;
mod lists;
#[cfg(feature = "redis")]
mod redis_only;
mod restart;

// Without the feature: in place of the `redis::` half of every `conformance!` list and of
// `redis_only`, one ignored test that says how to run them.
redis_suite_skipped!();
