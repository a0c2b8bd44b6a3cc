//! What the integration tests share:
//!
//! - [`ops`]: the generated operations, their printed forms and their answers;
//! - [`reference`]: the reference model that says what each operation must answer (the rules of
//!   `docs/rules.md` as plain code over a `HashMap` and a virtual clock);
//! - [`drive`]: the driver that runs operations on a real store and checks them against the model;
//! - [`races`]: a race many workers run on shared handles, and what must hold after it;
//! - [`redis_server`]: a `redis-server` of the test's own, for the Redis backend's tests;
//! - [`redis_process`], [`redis_tls`], [`redis_acl`], [`redis_cluster`]: servers for
//!   `tests/redis_production.rs` (TLS with certificates of the test's own, an ACL user confined to
//!   a prefix, a 6-node Redis Cluster).
//!
//! To cover a new command: add a variant to [`ops::Op`] (with its generator and its printed form),
//! one arm to [`reference::Model::step`] and one to [`drive::run`].

// Each test binary uses a different part of this module.
#![allow(dead_code)]

/// `redis_suite_skipped!();` at the root of a test binary whose tests need `--features redis`
/// (with `#[macro_use] mod support;`): without the feature, one ignored test whose reason a plain
/// `cargo test` shows, `test redis_suite_skipped ... ignored, the Redis tests of this binary need
/// --features redis ...`, where there would be a bare `0 passed`. A passing test that printed the
/// reason would show nothing: libtest captures its output.
#[allow(unused_macros)]
macro_rules! redis_suite_skipped {
    () => {
        #[cfg(not(feature = "redis"))]
        #[test]
        #[ignore = "the Redis tests of this binary need --features redis (and redis-server on PATH): cargo test --features redis"]
        fn redis_suite_skipped() {
            println!("nothing to run: build with --features redis");
        }
    };
}

pub mod drive;
pub mod ops;
pub mod races;
pub mod redis_acl;
pub mod redis_cluster;
pub mod redis_process;
pub mod redis_server;
pub mod redis_tls;
pub mod reference;
