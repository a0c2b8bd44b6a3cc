//! Model-based comparison of the two backends on the rules of `docs/rules.md` they share without
//! a clock (4–7, 13's error kinds, 15–22, 26 and 27): random sequences of the shared
//! [`Op`](support::ops::Op)s of [`untimed_op`] run on the Redis-backed handles and on the
//! in-process handles (the reference here), with the same prefixes; every answer, errors included
//! down to their `Debug` form, must agree. No TTLs: the two backends run on different clocks, and
//! the conformance suite covers expiry. Few cases, since each call is a round trip.
//!
//! Without `--features redis` the binary holds only `redis_suite_skipped`, which says so.

#[macro_use]
mod support;

redis_suite_skipped!();

#[cfg(feature = "redis")]
#[test]
fn the_redis_handle_answers_like_the_in_process_handle() {
    use ephemeral_kv::KvHandle;
    use proptest::prelude::*;
    use proptest::sample::select;
    use proptest::test_runner::{Config, TestRunner};
    use support::drive::run_with;
    use support::ops::{untimed_op, Failure, Op, HANDLES};

    // `a` starts `ab` (for `scan_prefix`); the empty and non-ASCII keys are the model test's.
    const KEYS: [&str; 6] = ["a", "b", "ab", "c", "", "ключ"];
    let handles = |kv: KvHandle| -> Vec<KvHandle> {
        HANDLES
            .iter()
            .map(|(_, prefix)| kv.with_prefix(prefix))
            .collect()
    };

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some(server) = runtime.block_on(support::redis_server::RedisServer::start(
        "the_redis_handle_answers_like_the_in_process_handle",
    )) else {
        return;
    };
    let mut runner = TestRunner::new(Config {
        cases: 24,
        ..Config::default()
    });
    let key = select(&KEYS[..]).prop_map(str::to_owned);
    let case = std::sync::atomic::AtomicUsize::new(0);
    let result = runner.run(&proptest::collection::vec(untimed_op(key), 1..40), |ops| {
        // A fresh namespace per case (and per shrinking step) on the one server.
        let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let prefix = format!("case{n}:");
        runtime.block_on(async {
            let local = handles(KvHandle::builder().prefix(&prefix).spawn());
            let redis = handles(
                KvHandle::builder()
                    .prefix(&prefix)
                    .redis(server.url())
                    .await
                    .unwrap(),
            );
            // Then everything the handles can see: every key through each handle, and the keys
            // of the whole namespace.
            let final_check = (0..HANDLES.len())
                .map(|h| Op::Mget {
                    h,
                    keys: KEYS.map(str::to_owned).to_vec(),
                })
                .chain([Op::ScanPrefix {
                    h: 0,
                    prefix: String::new(),
                    limit: None,
                }]);
            for (step, op) in ops.iter().cloned().chain(final_check).enumerate() {
                let expected = run_with(&op, &local, Failure::whole).await;
                let actual = run_with(&op, &redis, Failure::whole).await;
                prop_assert_eq!(&actual, &expected, "step {} `{:?}`", step, op);
            }
            Ok(())
        })
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
