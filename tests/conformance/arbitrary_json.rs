//! Arbitrary JSON through every call that takes or returns a value, on both backends (rule 28:
//! whatever is accepted reads back; and the calls' own rules 4–7, 16–20, 24, 26 and 27 for
//! values nobody would choose). Each test generates its values with proptest up front (a seeded
//! [`TestRunner`], no shrinking) and then awaits the calls for each: a conformance test is an
//! `async fn`, so it cannot `block_on` inside proptest's own runner.
//!
//! The values: `null`, booleans, integers at the edges of `i64` and `u64`, floats at the edges
//! (`-0.0`, the smallest normal and subnormal, `f64::MAX`, `1e308`, `-1e-308`...), strings empty,
//! thousands of characters long, of any Unicode (astral plane included) or of what JSON has to
//! escape (control characters, `\u{0}`, quotes, backslashes, brackets), empty and wide (50)
//! arrays and objects with keys of any text, nested a few levels and then wrapped in arrays and
//! objects up to exactly the depth each call accepts (`MAX_DEPTH`, one level less for a
//! `list_push` item, two for the value inside a `list_append_unique` item), often right at it.
//! What comes back must be the same JSON, down to each float's bits (`-0.0` is not `0.0`); one
//! level more is refused with `TooDeep` by every write and changes nothing.
//!
//! Floats: the Redis backend stores serde_json's text and parses it back. Without serde_json's
//! `float_roundtrip` feature about 3 in 10 finite floats parsed one unit in the last place off
//! (this suite found it); the `redis` feature turns that feature on, and
//! `rule_28_any_finite_float_reads_back_bit_for_bit` holds any finite float to its bits.
//!
//! `PROPTEST_CASES` sets the number of values per test (64 by default); `PROPTEST_RNG_SEED` replays
//! the values of a failure, whose message gives its seed.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};

use ephemeral_kv::{KvError, KvHandle, MAX_DEPTH};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngSeed, TestRunner};
use serde_json::{json, Map, Value};

use crate::backend::Backend;

conformance!(
    rule_28_arbitrary_json_reads_back_unchanged_through_set_get_mset_mget_set_if_absent_wait_for_and_get_del,
    rule_28_arbitrary_json_reads_back_unchanged_through_compare_and_set_update_and_transaction,
    rule_28_arbitrary_json_items_read_back_unchanged_through_every_list_call,
    rule_28_arbitrary_json_one_level_past_the_limit_is_refused_by_every_write_and_changes_nothing,
    rule_28_any_finite_float_reads_back_bit_for_bit,
);

// ---------------------------------------------------------------------------------------------
// What is generated.

/// How many values each test runs through its calls: `PROPTEST_CASES`, or 64.
fn case_count() -> usize {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(64)
}

/// `PROPTEST_RNG_SEED`, or a fresh one (printed with any failure, to replay it).
fn seed() -> u64 {
    std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| RandomState::new().build_hasher().finish())
}

/// `count` values of `strategy` drawn with `seed` (proptest's runner, without shrinking).
fn draw<S: Strategy>(strategy: &S, seed: u64, count: usize) -> Vec<S::Value> {
    let config = Config {
        cases: count as u32,
        rng_seed: RngSeed::Fixed(seed),
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    (0..count)
        .map(|_| match strategy.new_tree(&mut runner) {
            Ok(tree) => tree.current(),
            Err(reason) => panic!("cannot draw a value (seed {seed}): {reason}"),
        })
        .collect()
}

/// Floats at the edges of `f64`, and where its text changes shape. serde_json keeps each of them
/// through its text (`the_float_edges_read_back_from_their_text`).
static FLOAT_EDGES: [f64; 24] = [
    0.0,
    -0.0,
    1.0,
    -1.5,
    0.1,
    f64::EPSILON,
    f64::MIN_POSITIVE,
    -f64::MIN_POSITIVE,
    2.225_073_858_507_201e-308, // the largest subnormal
    5e-324,                     // the smallest subnormal
    -5e-324,
    1e308,
    -1e308,
    1e-308,
    -1e-308,
    f64::MAX,
    f64::MIN,
    1e21,
    1e-7,
    9_007_199_254_740_992.0,      // 2^53
    9_007_199_254_740_994.0,      // 2^53 + 2
    18_446_744_073_709_551_616.0, // 2^64: past u64
    -9_223_372_036_854_775_808.0, // i64::MIN as a float
    123_456.789e-300,
];

/// Characters JSON escapes or parsers trip on, and some from every Unicode plane.
const HOSTILE_CHARS: &str = concat!(
    "\u{0}\u{1}\t\n\r\u{1b}\u{1f}\"\\/[]{},:'% a\u{e9}\u{7f}\u{80}\u{ad}\u{2028}\u{2029}",
    "\u{d7ff}\u{e000}\u{feff}\u{fffd}\u{ffff}\u{10000}\u{1f600}\u{10ffff}",
);

/// One of [`HOSTILE_CHARS`].
fn hostile_char() -> impl Strategy<Value = char> {
    select(HOSTILE_CHARS.chars().collect::<Vec<_>>())
}

/// Any finite float: normal, subnormal or zero, of either sign.
fn finite_float() -> impl Strategy<Value = f64> {
    use proptest::num::f64::{NEGATIVE, NORMAL, POSITIVE, SUBNORMAL, ZERO};
    POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO
}

/// A float: an edge, or any finite float.
fn float() -> impl Strategy<Value = f64> {
    prop_oneof![select(&FLOAT_EDGES[..]), finite_float()]
}

/// Integers at the edges of `i64` and `u64`, and any.
fn integer() -> impl Strategy<Value = Value> {
    prop_oneof![
        select(vec![
            0,
            -1,
            1,
            i64::MIN,
            i64::MIN + 1,
            i64::MAX,
            -(1 << 53) - 1
        ])
        .prop_map(Value::from),
        select(vec![u64::MAX, u64::MAX - 1, 1 << 63, (1 << 53) + 1]).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
    ]
}

/// Short text of any kind: empty, hostile, or any Unicode.
fn short_text() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => Just(String::new()),
        4 => vec(hostile_char(), 1..16).prop_map(String::from_iter),
        4 => vec(any::<char>(), 1..24).prop_map(String::from_iter),
        2 => "\\PC{1,12}",
    ]
}

/// Text of any kind, now and then thousands of characters long.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => short_text(),
        1 => (hostile_char(), 256usize..4096).prop_map(|(c, n)| c.to_string().repeat(n)),
        1 => vec(any::<char>(), 512..3000).prop_map(String::from_iter),
    ]
}

/// A JSON scalar, its strings from `text`.
fn scalar_of(text: impl Strategy<Value = String>) -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::from),
        3 => integer(),
        3 => float().prop_map(Value::from),
        4 => text.prop_map(Value::from),
    ]
}

/// A JSON scalar.
fn scalar() -> impl Strategy<Value = Value> {
    scalar_of(text())
}

/// A value a few levels deep: scalars, empty containers, narrow nested ones, and wide (up to 50)
/// ones of scalars.
fn tree() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 96, 6, |inner| {
        prop_oneof![
            1 => Just(json!([])),
            1 => Just(json!({})),
            3 => vec(inner.clone(), 1..6).prop_map(Value::Array),
            3 => btree_map(text(), inner, 1..6).prop_map(object),
            1 => vec(scalar(), 0..=50).prop_map(Value::Array),
            1 => btree_map(text(), scalar(), 0..=50).prop_map(object),
        ]
    })
}

fn object(fields: std::collections::BTreeMap<String, Value>) -> Value {
    Value::Object(fields.into_iter().collect())
}

/// One level around a value.
#[derive(Clone, Debug)]
enum Wrap {
    /// `[x]`.
    Array,
    /// `[s1, s2, ..., x]`.
    After(Vec<Value>),
    /// `{key: x}`.
    Object(String),
    /// `{others..., key: x}` (`key` replaces another field of that name).
    Among(String, Map<String, Value>),
}

impl Wrap {
    fn around(&self, value: Value) -> Value {
        match self {
            Wrap::Array => Value::Array(vec![value]),
            Wrap::After(before) => {
                let mut items = before.clone();
                items.push(value);
                Value::Array(items)
            }
            Wrap::Object(key) => Value::Object(Map::from_iter([(key.clone(), value)])),
            Wrap::Among(key, others) => {
                let mut fields = others.clone();
                fields.insert(key.clone(), value);
                Value::Object(fields)
            }
        }
    }
}

/// A level to wrap around a value, from short text only: it is repeated up to 128 times.
fn wrap() -> impl Strategy<Value = Wrap> {
    prop_oneof![
        Just(Wrap::Array),
        vec(scalar_of(short_text()), 1..3).prop_map(Wrap::After),
        short_text().prop_map(Wrap::Object),
        (
            short_text(),
            btree_map(short_text(), scalar_of(short_text()), 1..3)
        )
            .prop_map(|(key, others)| Wrap::Among(key, others.into_iter().collect())),
    ]
}

/// A generated value: a `core` a few levels deep, wrapped in up to `levels` levels of `wraps`
/// (taken in turn) as deep as each call allows.
#[derive(Clone, Debug)]
struct Case {
    core: Value,
    wraps: Vec<Wrap>,
    levels: usize,
}

impl Case {
    /// The value with as many of its levels as fit in `limit`.
    fn within(&self, limit: usize) -> Value {
        let room = limit.saturating_sub(depth(&self.core));
        self.wrapped(self.levels.min(room))
    }

    /// The value wrapped to exactly `limit + 1` levels: one too many.
    fn past(&self, limit: usize) -> Value {
        let value = self.wrapped(limit + 1 - depth(&self.core));
        assert_eq!(
            depth(&value),
            limit + 1,
            "the generator builds too deep a value"
        );
        value
    }

    fn wrapped(&self, levels: usize) -> Value {
        let mut value = self.core.clone();
        for wrap in self.wraps.iter().cycle().take(levels) {
            value = wrap.around(value);
        }
        value
    }
}

/// Cases: often wrapped right up to the limit, often not at all.
fn case() -> impl Strategy<Value = Case> {
    let levels = prop_oneof![
        3 => Just(0usize),
        2 => 1usize..=16,
        1 => 17usize..=119,
        1 => 120usize..MAX_DEPTH,
        3 => Just(MAX_DEPTH), // as deep as each call accepts
    ];
    (tree(), vec(wrap(), 1..8), levels).prop_map(|(core, wraps, levels)| Case {
        core,
        wraps,
        levels,
    })
}

/// The cases of one test run, with the seed that replays them.
struct Cases {
    seed: u64,
    cases: Vec<Case>,
}

impl Cases {
    fn draw() -> Cases {
        let seed = seed();
        let cases = draw(&case(), seed, case_count());
        Cases { seed, cases }
    }

    /// Says which value failed, for an assertion message.
    fn show(&self, index: usize, value: &Value) -> String {
        format!(
            "case {index} of seed {seed} (replay with PROPTEST_RNG_SEED={seed}): {}",
            show(value),
            seed = self.seed,
        )
    }
}

// ---------------------------------------------------------------------------------------------
// How values are compared and shown.

/// How deep `value` nests (`[]` is one level), counted without recursion.
fn depth(value: &Value) -> usize {
    let (mut deepest, mut stack) = (0, vec![(value, 0)]);
    while let Some((value, level)) = stack.pop() {
        let children: Vec<&Value> = match value {
            Value::Array(items) => items.iter().collect(),
            Value::Object(fields) => fields.values().collect(),
            _ => continue,
        };
        deepest = deepest.max(level + 1);
        stack.extend(children.into_iter().map(|child| (child, level + 1)));
    }
    deepest
}

/// Equal as JSON and in every float's bits (`Value`'s `==` takes `-0.0` for `0.0`).
fn same(a: &Value, b: &Value) -> bool {
    a == b && serde_json::to_string(a).ok() == serde_json::to_string(b).ok()
}

fn same_opt(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => same(a, b),
        (None, None) => true,
        _ => false,
    }
}

fn same_all(a: &[Value], b: &[Value]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same(a, b))
}

/// A value's depth, size and text, cut to a few hundred characters.
fn show(value: &Value) -> String {
    let text = value.to_string();
    let cut = text
        .char_indices()
        .map(|(at, _)| at)
        .nth(400)
        .unwrap_or(text.len());
    let more = if cut < text.len() { "..." } else { "" };
    format!(
        "{} levels, {} bytes of JSON: {}{more}",
        depth(value),
        text.len(),
        &text[..cut]
    )
}

fn show_opt(value: Option<&Value>) -> String {
    value.map_or_else(|| "nothing".to_owned(), show)
}

/// The answer of a call that must succeed; its error, with the case, if it did not.
fn ok<T>(result: Result<T, KvError>, call: &str, case: impl FnOnce() -> String) -> T {
    result.unwrap_or_else(|error| panic!("`{call}` failed with {error:?} for {}", case()))
}

/// Whether `result` is the refusal of a value deeper than `MAX_DEPTH` for the full key `key`.
fn is_too_deep<T>(result: &Result<T, KvError>, key: &str) -> bool {
    matches!(result, Err(KvError::TooDeep { key: k, limit }) if k == key && *limit == MAX_DEPTH)
}

/// A handle of its own for case `index`, so that no case sees another's keys.
fn handle_for(kv: &KvHandle, index: usize) -> (KvHandle, String) {
    let prefix = format!("case{index}:");
    (kv.with_prefix(&prefix), prefix)
}

// ---------------------------------------------------------------------------------------------
// The properties.

#[test]
fn the_generators_build_what_they_say() {
    assert_eq!(HOSTILE_CHARS.chars().count(), 34);
    assert!(['\u{0}', '"', '\\', '\u{10ffff}']
        .iter()
        .all(|&c| HOSTILE_CHARS.contains(c)));
    assert!(!same(&json!(-0.0), &json!(0.0)));
    assert_eq!(depth(&json!([])), 1);
    assert_eq!(depth(&json!({"a": [1, {"b": []}], "c": 2})), 4);
    let cases = draw(&case(), 7, 64);
    for case in &cases {
        assert!(depth(&case.within(MAX_DEPTH)) <= MAX_DEPTH);
        assert_eq!(depth(&case.past(MAX_DEPTH - 2)), MAX_DEPTH - 1);
    }
    let at_limit = cases
        .iter()
        .filter(|case| depth(&case.within(MAX_DEPTH)) == MAX_DEPTH)
        .count();
    assert!(at_limit > 4, "only {at_limit} of 64 cases reach MAX_DEPTH");
}

#[test]
fn the_float_edges_read_back_from_their_text() {
    for float in FLOAT_EDGES {
        let text = Value::from(float).to_string();
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            back.as_f64().map(f64::to_bits),
            Some(float.to_bits()),
            "{text}"
        );
    }
}

async fn rule_28_arbitrary_json_reads_back_unchanged_through_set_get_mset_mget_set_if_absent_wait_for_and_get_del(
    b: &impl Backend,
) {
    let root = b.kv().await;
    let all = Cases::draw();
    for (i, case) in all.cases.iter().enumerate() {
        let (kv, _) = handle_for(&root, i);
        let v = case.within(MAX_DEPTH);
        let other = all.cases[(i + 1) % all.cases.len()].within(MAX_DEPTH);
        let at = || all.show(i, &v);

        ok(kv.set("set", &v).await, "set", at);
        let got = ok(kv.get("set").await, "get", at);
        assert!(
            same_opt(got.as_deref(), Some(&v)),
            "`get` after `set` gave {} for {}",
            show_opt(got.as_deref()),
            at()
        );
        let typed = ok(kv.get_as::<Value>("set").await, "get_as", at);
        assert!(
            same_opt(typed.as_ref(), Some(&v)),
            "`get_as::<Value>` gave {} for {}",
            show_opt(typed.as_ref()),
            at()
        );
        let waited = ok(kv.wait_for("set").await, "wait_for", at);
        assert!(
            same(&waited, &v),
            "`wait_for` gave {} for {}",
            show(&waited),
            at()
        );
        let waited = ok(kv.wait_for_as::<Value>("set").await, "wait_for_as", at);
        assert!(
            same(&waited, &v),
            "`wait_for_as::<Value>` gave {} for {}",
            show(&waited),
            at()
        );

        ok(
            kv.mset([("m1", v.clone()), ("m2", other.clone())]).await,
            "mset",
            at,
        );
        let got = ok(kv.mget(["m1", "m2", "missing", "m1"]).await, "mget", at);
        let expected = [Some(&v), Some(&other), None, Some(&v)];
        assert!(
            got.len() == 4
                && got
                    .iter()
                    .zip(expected)
                    .all(|(got, expected)| same_opt(got.as_deref(), expected)),
            "`mget` after `mset` gave {:?} for {}",
            got.iter()
                .map(|got| show_opt(got.as_deref()))
                .collect::<Vec<_>>(),
            at()
        );

        assert!(
            ok(kv.set_if_absent("sia", &v).await, "set_if_absent", at),
            "`set_if_absent` on a missing key refused {}",
            at()
        );
        assert!(
            !ok(kv.set_if_absent("sia", &other).await, "set_if_absent", at),
            "`set_if_absent` on a held key stored, for {}",
            at()
        );
        let got = ok(kv.get("sia").await, "get", at);
        assert!(
            same_opt(got.as_deref(), Some(&v)),
            "`get` after `set_if_absent` gave {} for {}",
            show_opt(got.as_deref()),
            at()
        );

        for key in ["set", "m1", "sia"] {
            let taken = ok(kv.get_del(key).await, "get_del", at);
            assert!(
                same_opt(taken.as_ref(), Some(&v)),
                "`get_del({key:?})` gave {} for {}",
                show_opt(taken.as_ref()),
                at()
            );
        }
        let taken = ok(kv.get_del("m2").await, "get_del", at);
        assert!(
            same_opt(taken.as_ref(), Some(&other)),
            "`get_del(\"m2\")` gave {} for {}",
            show_opt(taken.as_ref()),
            at()
        );
        let left = ok(kv.scan_prefix("").await, "scan_prefix", at);
        assert!(left.is_empty(), "`get_del` left {left:?} for {}", at());
    }
}

async fn rule_28_arbitrary_json_reads_back_unchanged_through_compare_and_set_update_and_transaction(
    b: &impl Backend,
) {
    let root = b.kv().await;
    let all = Cases::draw();
    for (i, case) in all.cases.iter().enumerate() {
        let (kv, _) = handle_for(&root, i);
        let v = case.within(MAX_DEPTH);
        let other = all.cases[(i + 1) % all.cases.len()].within(MAX_DEPTH);
        let at = || all.show(i, &v);
        let read = |key: &'static str| {
            let kv = &kv;
            async move { ok(kv.get(key).await, "get", at).as_deref().cloned() }
        };

        // compare_and_set: created from nothing, swapped away given exactly what `get` returned,
        // and back given the value itself (an expected value may be as deep as any).
        assert!(
            ok(
                kv.compare_and_set("cas", None, &v).await,
                "compare_and_set",
                at
            ),
            "`compare_and_set(None)` on a missing key refused {}",
            at()
        );
        let got = read("cas").await;
        assert!(
            same_opt(got.as_ref(), Some(&v)),
            "`get` after `compare_and_set` gave {} for {}",
            show_opt(got.as_ref()),
            at()
        );
        assert!(
            ok(
                kv.compare_and_set("cas", got, other.clone()).await,
                "compare_and_set",
                at
            ),
            "`compare_and_set` given what `get` returned did not swap, for {}",
            at()
        );
        assert!(
            ok(
                kv.compare_and_set("cas", Some(other.clone()), v.clone())
                    .await,
                "compare_and_set",
                at
            ),
            "`compare_and_set` given what was set did not swap back to {}",
            at()
        );
        assert!(
            !ok(
                kv.compare_and_set("cas", None, other.clone()).await,
                "compare_and_set",
                at
            ),
            "`compare_and_set(None)` swapped a held key, for {}",
            at()
        );
        let got = read("cas").await;
        assert!(
            same_opt(got.as_ref(), Some(&v)),
            "`get` after `compare_and_set` gave {} for {}",
            show_opt(got.as_ref()),
            at()
        );

        // update: creates the key with v, then sees v as the current value.
        let made = {
            let v = v.clone();
            ok(
                kv.update("upd", move |_| Some(v.clone())).await,
                "update",
                at,
            )
        };
        assert!(
            same_opt(made.as_deref(), Some(&v)),
            "`update` returned {} for {}",
            show_opt(made.as_deref()),
            at()
        );
        let seen = Arc::new(Mutex::new(None));
        let made = {
            let (seen, other) = (Arc::clone(&seen), other.clone());
            ok(
                kv.update("upd", move |current| {
                    *seen.lock().unwrap() = Some(current.cloned());
                    Some(other.clone())
                })
                .await,
                "update",
                at,
            )
        };
        let seen = seen.lock().unwrap().take().flatten();
        assert!(
            same_opt(seen.as_ref(), Some(&v)),
            "the `update` closure was given {} for {}",
            show_opt(seen.as_ref()),
            at()
        );
        assert!(
            same_opt(made.as_deref(), Some(&other))
                && same_opt(read("upd").await.as_ref(), Some(&other)),
            "`update` to the next case's value returned {} for {}",
            show_opt(made.as_deref()),
            at()
        );

        // transaction: a staged set applies v; a later transaction reads it back.
        {
            let v = v.clone();
            ok(
                kv.transaction(move |txn| txn.set("txn", &v)).await,
                "transaction",
                at,
            );
        }
        let got = read("txn").await;
        assert!(
            same_opt(got.as_ref(), Some(&v)),
            "`get` after a transaction's `set` gave {} for {}",
            show_opt(got.as_ref()),
            at()
        );
        let (seen, typed) = ok(
            kv.transaction(|txn| (txn.get("txn").cloned(), txn.get_as::<Value>("txn")))
                .await,
            "transaction",
            at,
        );
        assert!(
            same_opt(seen.as_ref(), Some(&v)),
            "`Txn::get` gave {} for {}",
            show_opt(seen.as_ref()),
            at()
        );
        let typed = ok(typed, "Txn::get_as", at);
        assert!(
            same_opt(typed.as_ref(), Some(&v)),
            "`Txn::get_as::<Value>` gave {} for {}",
            show_opt(typed.as_ref()),
            at()
        );
        for key in ["cas", "upd", "txn"] {
            ok(kv.delete(key).await, "delete", at);
        }
    }
}

async fn rule_28_arbitrary_json_items_read_back_unchanged_through_every_list_call(
    b: &impl Backend,
) {
    let root = b.kv().await;
    let all = Cases::draw();
    for (i, case) in all.cases.iter().enumerate() {
        let (kv, _) = handle_for(&root, i);
        let next = &all.cases[(i + 1) % all.cases.len()];
        // A list is a level itself: an item may nest one level less than MAX_DEPTH.
        let item = case.within(MAX_DEPTH - 1);
        let other = next.within(MAX_DEPTH - 1);
        let at = || all.show(i, &item);

        let len = ok(
            kv.list_push("push", [item.clone(), other.clone()]).await,
            "list_push",
            at,
        );
        assert_eq!(len, 2, "`list_push` of two items, for {}", at());
        let got = ok(kv.get("push").await, "get", at);
        let list = Value::Array(vec![item.clone(), other.clone()]);
        assert!(
            same_opt(got.as_deref(), Some(&list)),
            "`get` after `list_push` gave {} for {}",
            show_opt(got.as_deref()),
            at()
        );
        let front = ok(kv.list_pop_front("push", 1).await, "list_pop_front", at);
        assert!(
            same_all(&front, std::slice::from_ref(&item)),
            "`list_pop_front(1)` gave {} for {}",
            show(&Value::Array(front.clone())),
            at()
        );
        let rest = ok(kv.list_pop_all("push").await, "list_pop_all", at);
        assert!(
            same_all(&rest, std::slice::from_ref(&other)),
            "`list_pop_all` gave {} for {}",
            show(&Value::Array(rest.clone())),
            at()
        );

        // A list stored whole with `set` pops item by item.
        ok(kv.set("set", &list).await, "set", at);
        let front = ok(kv.list_pop_front("set", 2).await, "list_pop_front", at);
        assert!(
            same_all(&front, &[item.clone(), other.clone()]),
            "`list_pop_front(2)` of a set list gave {} for {}",
            show(&Value::Array(front.clone())),
            at()
        );

        // list_append_unique: the item `{"id": .., "v": v}` is a level itself, so v nests two
        // levels less. The second call's first item repeats id 1 and is skipped; on Redis it
        // decodes the stored list to find the ids.
        let (v, w) = (case.within(MAX_DEPTH - 2), next.within(MAX_DEPTH - 2));
        let at = || all.show(i, &v);
        let first = json!({"id": 1, "v": v});
        let list = ok(
            kv.list_append_unique("lau", [first.clone()]).await,
            "list_append_unique",
            at,
        );
        assert!(
            same_all(&list, std::slice::from_ref(&first)),
            "`list_append_unique` returned {} for {}",
            show(list.as_value()),
            at()
        );
        let second = json!({"id": 2, "v": w});
        let list = ok(
            kv.list_append_unique("lau", [json!({"id": 1.0, "v": w}), second.clone()])
                .await,
            "list_append_unique",
            at,
        );
        let both = [first.clone(), second.clone()];
        assert!(
            same_all(&list, &both),
            "a second `list_append_unique` returned {} for {}",
            show(list.as_value()),
            at()
        );
        let got = ok(kv.get("lau").await, "get", at);
        assert!(
            same_opt(got.as_deref(), Some(&Value::Array(both.to_vec()))),
            "`get` after `list_append_unique` gave {} for {}",
            show_opt(got.as_deref()),
            at()
        );
        let all_items = ok(kv.list_pop_all("lau").await, "list_pop_all", at);
        assert!(
            same_all(&all_items, &both),
            "`list_pop_all` after `list_append_unique` gave {} for {}",
            show(&Value::Array(all_items.clone())),
            at()
        );
        let left = ok(kv.scan_prefix("").await, "scan_prefix", at);
        assert!(left.is_empty(), "the pops left {left:?} for {}", at());
    }
}

async fn rule_28_arbitrary_json_one_level_past_the_limit_is_refused_by_every_write_and_changes_nothing(
    b: &impl Backend,
) {
    let root = b.kv().await;
    let all = Cases::draw();
    for (i, case) in all.cases.iter().enumerate() {
        let (kv, prefix) = handle_for(&root, i);
        let full = |key: &str| b.full(&format!("{prefix}{key}"));
        let before = case.within(MAX_DEPTH);
        let item = case.within(MAX_DEPTH - 1);
        let too_deep = case.past(MAX_DEPTH);
        let at = || all.show(i, &too_deep);
        ok(kv.set("k", &before).await, "set", at);
        ok(kv.list_push("l", [item.clone()]).await, "list_push", at);

        let refusals = [
            ("set", kv.set("k", &too_deep).await.map(drop)),
            (
                "mset",
                kv.mset([("fresh", json!(1)), ("k", too_deep.clone())])
                    .await
                    .map(drop),
            ),
            (
                "set_if_absent",
                kv.set_if_absent("k", &too_deep).await.map(drop),
            ),
            (
                "compare_and_set (new)",
                kv.compare_and_set("k", Some(before.clone()), &too_deep)
                    .await
                    .map(drop),
            ),
            (
                "compare_and_set (expected)",
                kv.compare_and_set("k", Some(too_deep.clone()), json!(1))
                    .await
                    .map(drop),
            ),
            ("update", {
                let too_deep = too_deep.clone();
                kv.update("k", move |_| Some(too_deep.clone()))
                    .await
                    .map(drop)
            }),
            ("transaction", {
                let too_deep = too_deep.clone();
                kv.transaction(move |txn| {
                    txn.set("fresh", 1);
                    txn.set("k", &too_deep);
                })
                .await
            }),
        ];
        for (call, refused) in &refusals {
            assert!(
                is_too_deep(refused, &full("k")),
                "`{call}` of a value one level too deep answered {refused:?} for {}",
                at()
            );
        }
        let refused = kv.set_if_absent("absent", &too_deep).await;
        assert!(
            is_too_deep(&refused, &full("absent")),
            "`set_if_absent` on a missing key answered {refused:?} for {}",
            at()
        );
        let refused = kv
            .list_push("l", [json!(1), case.past(MAX_DEPTH - 1)])
            .await;
        assert!(
            is_too_deep(&refused, &full("l")),
            "`list_push` of an item one level too deep answered {refused:?} for {}",
            at()
        );
        let refused = kv
            .list_append_unique("l", [json!({"id": 2, "v": case.past(MAX_DEPTH - 2)})])
            .await;
        assert!(
            is_too_deep(&refused, &full("l")),
            "`list_append_unique` of an item one level too deep answered {refused:?} for {}",
            at()
        );

        let got = ok(kv.mget(["k", "l", "fresh", "absent"]).await, "mget", at);
        let list = Value::Array(vec![item]);
        let expected = [Some(&before), Some(&list), None, None];
        assert!(
            got.len() == 4
                && got
                    .iter()
                    .zip(expected)
                    .all(|(got, expected)| same_opt(got.as_deref(), expected)),
            "refused writes changed the store: {:?} for {}",
            got.iter()
                .map(|got| show_opt(got.as_deref()))
                .collect::<Vec<_>>(),
            at()
        );
        for key in ["k", "l"] {
            ok(kv.delete(key).await, "delete", at);
        }
    }
}

/// Any finite float, alone and in a list, through `mset`/`mget` and `set`/`get`: the same bits
/// come back. On Redis this needs serde_json's `float_roundtrip` feature, without which
/// `1.8218816927580057e294` read back as `1.8218816927580054e294`.
async fn rule_28_any_finite_float_reads_back_bit_for_bit(b: &impl Backend) {
    let kv = b.kv().await;
    let seed = seed();
    let mut floats = draw(&finite_float(), seed, case_count());
    floats.extend(FLOAT_EDGES);
    floats.push(1.821_881_692_758_005_7e294);
    let keys: Vec<String> = (0..floats.len()).map(|n| format!("f{n}")).collect();
    let values: Vec<Value> = floats.iter().map(|&f| Value::from(f)).collect();
    let at = || format!("the floats of seed {seed}");
    ok(kv.mset(keys.iter().zip(&values)).await, "mset", at);
    ok(kv.set("all", &values).await, "set", at);
    let got = ok(kv.mget(&keys).await, "mget", at);
    let list = ok(kv.get("all").await, "get", at);
    let list = list.as_deref().and_then(Value::as_array);
    let wrong: Vec<String> = values
        .iter()
        .zip(&got)
        .enumerate()
        .filter(|&(n, (value, got))| {
            !same_opt(got.as_deref(), Some(value))
                || !same_opt(list.and_then(|list| list.get(n)), Some(value))
        })
        .map(|(n, (value, got))| {
            let got = got
                .as_deref()
                .map_or("nothing".to_owned(), Value::to_string);
            let in_list = list
                .and_then(|list| list.get(n))
                .map_or("nothing".to_owned(), Value::to_string);
            format!("{value} read back as {got} (in a list: {in_list})")
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} floats changed (seed {seed}): {}",
        wrong.len(),
        floats.len(),
        wrong.join("; ")
    );
}
