//! The rules of `docs/rules.md` that hold on both backends, written once and run on each: the
//! in-process store (`local::<test>`, on tokio's paused clock) and, with `--features redis`, a
//! Redis server of the test's own (`redis::<test>`, on real time). Where the backends differ (what
//! `purge_expired` counts, whether an expiry is a change event, how exactly a TTL can be read back), the test
//! asks its [`Backend`](backend::Backend); `docs/redis.md` lists those differences.
//!
//! With `--features redis` every rule also runs on a 6-node Redis Cluster of the test's own
//! (`<list>::cluster::suite`, one cluster per list, its tests one after the other), under a
//! prefix with a hash tag and under one without, where only the documented refusals over several
//! hash slots may fail a test (`backend::Cluster`).
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
        mod cluster {
            /// Every test of the list on a 6-node Redis Cluster started once for the list, one
            /// test after the other: first each under a prefix with a hash tag (all must pass),
            /// then each under a prefix without one but those waiting on the change feed
            /// (`crate::uses_the_feed`), where a test may only fail on the documented refusal of
            /// calls over several slots or of the change feed (`crate::cluster_report`).
            #[tokio::test]
            async fn suite() {
                let Some(cluster) =
                    crate::support::redis_cluster::RedisCluster::start(module_path!()).await
                else {
                    return;
                };
                let mut runs = Vec::new();
                for tagged in [true, false] {
                    let mut n = 0;
                    $(
                        n += 1;
                        let ignored = false $(|| stringify!($attr).starts_with("ignore"))*;
                        if !ignored && (tagged || !crate::uses_the_feed(stringify!($name))) {
                            let backend = crate::backend::Cluster::new(&cluster, n, tagged);
                            let outcome = crate::cluster_run(super::$name(&backend)).await;
                            runs.push((stringify!($name), tagged, outcome));
                        }
                    )*
                }
                crate::cluster_report(runs);
            }
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

/// How one conformance test ended on the cluster.
#[cfg(feature = "redis")]
enum Outcome {
    Passed,
    /// It panicked with this message.
    Failed(String),
}

/// Runs one conformance test on the cluster, bounded (60 s), catching its panic.
#[cfg(feature = "redis")]
async fn cluster_run(test: impl std::future::Future<Output = ()>) -> Outcome {
    use futures::FutureExt;
    let run = std::panic::AssertUnwindSafe(test).catch_unwind();
    match tokio::time::timeout(std::time::Duration::from_secs(60), run).await {
        Ok(Ok(())) => Outcome::Passed,
        Ok(Err(panic)) => Outcome::Failed(
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default(),
        ),
        Err(_) => Outcome::Failed("hung for 60 s".to_owned()),
    }
}

/// The messages of the refusals a cluster handle without a hash tag gives (`docs/redis-deploy.md`):
/// the only ways a test may fail there.
#[cfg(feature = "redis")]
const CLUSTER_REFUSALS: [&str; 2] = [
    "on a Redis Cluster needs its keys in one hash slot",
    "on a Redis Cluster needs the change stream in the slot",
];

/// Whether a test waits on the change feed (`watch`, rule 23; `wait_for`, rule 24; the blocking
/// pop of rule 27), which a cluster handle without a hash tag refuses at once: such a test cannot
/// get to its point there, and is not run there (the refusal itself is pinned in
/// `tests/redis_production.rs`).
#[cfg(feature = "redis")]
fn uses_the_feed(name: &str) -> bool {
    name.starts_with("rule_23")
        || name.starts_with("rule_24")
        || name.contains("wait")
        || name.contains("wake")
}

/// Panics, listing them, unless every test passed under a hash tag and every test without a tag
/// passed or failed only on a documented refusal; prints what ran.
#[cfg(feature = "redis")]
fn cluster_report(runs: Vec<(&str, bool, Outcome)>) {
    let mut failures = Vec::new();
    let (mut passed, mut refused) = (0, Vec::new());
    for (name, tagged, outcome) in runs {
        match outcome {
            Outcome::Passed => passed += 1,
            Outcome::Failed(message)
                if !tagged && CLUSTER_REFUSALS.iter().any(|r| message.contains(r)) =>
            {
                refused.push(name)
            }
            Outcome::Failed(message) => {
                let prefix = if tagged { "tagged" } else { "untagged" };
                failures.push(format!("{prefix} {name}: {message}"));
            }
        }
    }
    eprintln!(
        "cluster: {passed} runs passed; refused without a hash tag (several slots or the \
         change feed): {refused:?}"
    );
    assert!(
        failures.is_empty(),
        "on the cluster:\n{}",
        failures.join("\n\n")
    );
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
