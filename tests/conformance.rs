//! One conformance suite, written once, run against both backends: the in-process store (`local`,
//! on tokio's paused clock) and, with `--features redis`, a Redis server of the test's own
//! (`redis`, on real time). Every numbered rule of the core store and every coordination rule that
//! means the same on both backends is here; what differs is asserted per backend through
//! [`Backend`], and documented on [`KvBuilder::redis`](ephemeral_kv::KvBuilder).
//!
//! Each test is an `async fn(&impl Backend)`; `conformance!` turns a list of them into one
//! `#[tokio::test]` per backend.

#[path = "support/redis_server.rs"]
mod redis_server;

#[path = "support/races.rs"]
mod races;

#[path = "conformance/backend.rs"]
mod backend;

/// Generates, for each named test function, `local::<name>` and (with the `redis` feature)
/// `redis::<name>`.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod local {
            $(
                #[tokio::test(start_paused = true)]
                async fn $name() {
                    super::$name(&crate::backend::Local).await;
                }
            )*
        }

        #[cfg(feature = "redis")]
        mod redis {
            $(
                #[tokio::test]
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

#[path = "conformance/core.rs"]
mod core;

#[path = "conformance/coordination.rs"]
mod coordination;

#[path = "conformance/lists.rs"]
mod lists;
