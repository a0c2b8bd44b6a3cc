//! Model-based property test of the in-process store against `docs/rules.md`: random sequences of
//! every call (rules 1–9 and 15–22, `list_push` and `list_pop_front` of rules 26 and 27, the error
//! kinds of rule 13, and `stats`' `entries`/`expiring` of rule 25), on several prefixed handles of
//! one store, with active expiry (rule 10) on and off and the paused clock moving between them,
//! checked step by step against the reference model in `support/reference.rs`.
//!
//! `PROPTEST_CASES=100000 cargo test --release --test model` runs the deep pass. A failure shrinks
//! to a minimal sequence, printed as the Rust calls it stands for.

mod support;

use proptest::prelude::*;
#[cfg(feature = "durable")]
use support::drive::{builder, check_on, handles};
use support::drive::{check, paused_runtime};
use support::ops::{pool_key, script, POOL};

/// Longest generated sequence. Long enough for set → advance → expire → purge chains over a key
/// pool of six on three handles; short enough to keep a case around a millisecond.
const MAX_LEN: usize = 40;

proptest! {
    // 256 cases (proptest's default, raised by PROPTEST_CASES) take about a second in debug mode.
    #![proptest_config(ProptestConfig {
        max_shrink_iters: 10_000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_call_answers_as_the_model_says(script in script(pool_key(), MAX_LEN)) {
        let final_keys: Vec<String> = POOL.iter().map(|key| key.to_string()).collect();
        let outcome = paused_runtime().block_on(check(&script, &final_keys));
        prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
    }
}

/// The same sequences on the durable store (`Interval` durability: under `EveryBatch` a caller
/// waits for the journal thread, and the paused clock would jump meanwhile), which must answer as
/// the model says; then it is shut down and its file opened again, and every key must be as the
/// store last answered: a key without a TTL with the same value, a key with one the same or
/// gone (its deadline is on the wall clock, which the paused one does not move), a missing key
/// still missing.
#[cfg(feature = "durable")]
mod durable {
    use super::*;
    use ephemeral_kv::{Durability, Ttl};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// What the store answers for each final key on each handle: its value and its TTL.
    async fn state(
        kvs: &[ephemeral_kv::KvHandle],
        keys: &[String],
    ) -> Result<Vec<(Option<serde_json::Value>, Ttl)>, String> {
        let mut state = Vec::new();
        for kv in kvs {
            for key in keys {
                let value = kv.get(key).await.map_err(|e| e.to_string())?;
                let ttl = kv.ttl(key).await.map_err(|e| e.to_string())?;
                state.push((value.map(|v| (*v).clone()), ttl));
            }
        }
        Ok(state)
    }

    async fn check_durable(
        script: &support::ops::Script,
        final_keys: &[String],
    ) -> Result<(), String> {
        static CASES: AtomicUsize = AtomicUsize::new(0);
        let n = CASES.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("ekv-model-{}-{n}.db", std::process::id()));
        let remove = |path: &std::path::Path| {
            for end in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{end}", path.display()));
            }
        };
        remove(&path);
        let open = || {
            builder(script.setup)
                .durability(Durability::Interval(Duration::from_millis(10)))
                .durable(&path)
        };
        let outcome = async {
            let kv = open().await.map_err(|e| format!("open: {e}"))?;
            let kvs = handles(&kv);
            check_on(&kvs, script, final_keys).await?;
            let before = state(&kvs, final_keys).await?;
            kv.shutdown().await;
            drop(kvs);
            let kv = open().await.map_err(|e| format!("reopen: {e}"))?;
            let after = state(&handles(&kv), final_keys).await?;
            kv.shutdown().await;
            for (i, ((value, ttl), (again, ttl_again))) in before.iter().zip(&after).enumerate() {
                let key = &final_keys[i % final_keys.len()];
                let handle = support::ops::HANDLES[i / final_keys.len()].0;
                let kept = match ttl {
                    Ttl::NoExpiry => again == value && *ttl_again == Ttl::NoExpiry,
                    Ttl::Expires(_) => {
                        again.is_none() || (again == value && matches!(ttl_again, Ttl::Expires(_)))
                    }
                    Ttl::Missing => again.is_none(),
                };
                if !kept {
                    return Err(format!(
                        "after the reopen, {handle}.get({key:?}) is {again:?} ({ttl_again:?}); \
                         before it, {value:?} ({ttl:?})"
                    ));
                }
            }
            Ok(())
        }
        .await;
        remove(&path);
        outcome
    }

    proptest! {
        // Each case opens a file twice: 64 cases, not 256.
        #![proptest_config(ProptestConfig {
            cases: 64,
            max_shrink_iters: 2_000,
            ..ProptestConfig::default()
        })]

        #[test]
        fn a_durable_store_answers_as_the_model_says_and_reopens_as_it_was(
            script in script(pool_key(), MAX_LEN)
        ) {
            let final_keys: Vec<String> = POOL.iter().map(|key| key.to_string()).collect();
            let outcome = paused_runtime().block_on(check_durable(&script, &final_keys));
            prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
        }
    }
}
