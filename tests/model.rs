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
