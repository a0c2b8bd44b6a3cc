//! Rule 32 of `docs/rules.md`, in-process only: a store built with `max_entries` never holds more.
//! A call that would add a key to a full store first lets expired entries go; then, with
//! `Eviction::Refuse`, it fails with `KvError::Full` and changes nothing (an `mset` or a transaction
//! whole), and with `Eviction::VolatileTtl` it evicts the live keys closest to expiry, never one it
//! writes itself, counted in `Stats::evictions` and seen by watchers as `WatchEvent::Evicted`.
//! Overwriting a held key never needs room.
//!
//! On tokio's paused clock: TTLs only run out when a test advances time.

use std::time::Duration;

use ephemeral_kv::{Eviction, KvError, KvHandle, Stats, Ttl, WatchEvent, WatchStream};
use futures::{FutureExt, StreamExt};
use serde_json::{json, Value};

const SEC: Duration = Duration::from_secs(1);

/// The bound every test uses.
const MAX: usize = 10;

/// Everything a call could change: each live key (relative), its value and its TTL.
async fn contents(kv: &KvHandle) -> Vec<(String, Value, Ttl)> {
    let mut all = Vec::new();
    for key in kv.scan_prefix("").limit(usize::MAX).await.unwrap() {
        let value = kv.get(&key).await.unwrap().unwrap();
        let ttl = kv.ttl(&key).await.unwrap();
        all.push((key, (*value).clone(), ttl));
    }
    all
}

async fn stats(kv: &KvHandle) -> Stats {
    kv.stats().await.unwrap()
}

/// `n` keys `k0`.. holding `0`.., without TTL.
async fn fill(kv: &KvHandle, n: usize) {
    for i in 0..n {
        kv.set(format!("k{i}"), i).await.unwrap();
    }
}

/// Asserts that a call was refused as full, naming `key` (the full key, prefix included).
fn assert_full<T: std::fmt::Debug>(result: Result<T, KvError>, key: &str) {
    match result {
        Err(KvError::Full {
            key: refused,
            max_entries,
        }) => {
            assert_eq!(refused, key);
            assert_eq!(max_entries, MAX);
        }
        other => panic!("expected KvError::Full for `{key}`, got {other:?}"),
    }
}

/// The next event, which must be there already.
fn next_event(events: &mut WatchStream) -> WatchEvent {
    events
        .next()
        .now_or_never()
        .expect("an event is ready")
        .expect("the stream is open")
        .expect("no lag")
}

fn nothing_ready(events: &mut WatchStream) -> bool {
    events.next().now_or_never().is_none()
}

mod refuse {
    use super::*;

    fn bounded() -> KvHandle {
        KvHandle::builder().prefix("app:").max_entries(MAX).spawn()
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn every_call_that_would_add_the_11th_key_is_refused_and_changes_nothing() {
        let kv = bounded();
        fill(&kv, MAX - 1).await;
        kv.list_push("list", [json!("a")]).await.unwrap();
        let before = contents(&kv).await;
        assert_eq!(before.len(), MAX);

        assert_full(kv.set("new", 1).await, "app:new");
        assert_full(kv.set("new", 1).ttl(SEC).await, "app:new");
        assert_full(kv.set_if_absent("new", 1).await, "app:new");
        assert_full(kv.compare_and_set("new", None, 1).await, "app:new");
        assert_full(kv.incr("counter", 1).await, "app:counter");
        assert_full(kv.list_push("log", [json!(1)]).await, "app:log");
        assert_full(
            kv.list_append_unique("items", [json!({"id": 1})]).await,
            "app:items",
        );
        assert_full(
            kv.list_append_unique("items", Vec::<Value>::new()).await,
            "app:items",
        );
        assert_full(kv.update("new", |_| Some(json!(1))).await, "app:new");
        // One new key too many, beside an overwrite that must not happen either.
        assert_full(kv.mset([("k0", 100), ("new", 1)]).await, "app:new");
        assert_full(
            kv.transaction(|txn| {
                txn.set("k1", 100);
                txn.set("new", 1);
                txn.set("other", 2);
            })
            .await,
            "app:new",
        );

        assert_eq!(contents(&kv).await, before);
        let after = stats(&kv).await;
        assert_eq!(
            (after.entries, after.expirations, after.evictions),
            (MAX, 0, 0)
        );
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn an_mset_or_a_transaction_one_key_over_is_refused_whole() {
        let kv = bounded();
        fill(&kv, MAX - 1).await;
        let before = contents(&kv).await;

        // Two new keys where there is room for one: neither is written, nor the overwrite.
        assert_full(kv.mset([("k0", 100), ("a", 1), ("b", 2)]).await, "app:a");
        assert_full(
            kv.transaction(|txn| {
                txn.set("a", 1);
                txn.set("b", 2);
            })
            .await,
            "app:a",
        );
        assert_eq!(contents(&kv).await, before);

        // A key it sets, then deletes, adds nothing: only "b" is new, and it fits.
        kv.transaction(|txn| {
            txn.set("a", 1);
            txn.delete("a");
            txn.set("b", 2);
        })
        .await
        .unwrap();
        assert_eq!(stats(&kv).await.entries, MAX);
        assert_eq!(kv.get("a").await.unwrap(), None);
        assert_eq!(kv.get("b").await.unwrap().as_deref(), Some(&json!(2)));
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_full_store_still_overwrites_changes_and_swaps_keys() {
        let kv = bounded();
        fill(&kv, MAX - 2).await;
        kv.list_push("log", [json!(1)]).await.unwrap();
        kv.list_append_unique("items", [json!({"id": 1})])
            .await
            .unwrap();
        assert_eq!(stats(&kv).await.entries, MAX);

        kv.set("k0", "zero").await.unwrap();
        kv.mset([("k1", 11), ("k2", 12)]).await.unwrap();
        // A transaction that only overwrites held keys needs no room either.
        kv.transaction(|txn| {
            txn.set("k1", 21);
            txn.set("k2", 22);
        })
        .await
        .unwrap();
        assert!(!kv.set_if_absent("k3", 0).await.unwrap());
        assert!(kv.compare_and_set("k3", Some(json!(3)), 13).await.unwrap());
        assert_eq!(kv.incr("k4", 10).await.unwrap(), 14);
        assert_eq!(kv.list_push("log", [json!(2)]).await.unwrap(), 2);
        kv.list_append_unique("items", [json!({"id": 2})])
            .await
            .unwrap();
        kv.update("k5", |_| Some(json!(15))).await.unwrap();
        // An update that leaves a missing key missing adds nothing, so needs no room.
        assert_eq!(kv.update("absent", |_| None).await.unwrap(), None);
        // Pushing nothing onto a missing key creates nothing, so needs no room.
        assert_eq!(kv.list_push("empty", Vec::<Value>::new()).await.unwrap(), 0);
        // A transaction that deletes one key may add another.
        kv.transaction(|txn| {
            txn.delete("k6");
            txn.set("swapped", 16);
        })
        .await
        .unwrap();
        // A deleted key makes room for the next call.
        kv.delete("k7").await.unwrap();
        kv.set("new", 17).await.unwrap();

        let now = contents(&kv).await;
        let values: Vec<(&str, &Value)> = now.iter().map(|(k, v, _)| (k.as_str(), v)).collect();
        assert_eq!(
            values,
            vec![
                ("items", &json!([{"id": 1}, {"id": 2}])),
                ("k0", &json!("zero")),
                ("k1", &json!(21)),
                ("k2", &json!(22)),
                ("k3", &json!(13)),
                ("k4", &json!(14)),
                ("k5", &json!(15)),
                ("log", &json!([1, 2])),
                ("new", &json!(17)),
                ("swapped", &json!(16)),
            ]
        );
        assert_full(kv.set("one-more", 0).await, "app:one-more");
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn expired_entries_make_room_first_earliest_first_as_many_as_needed() {
        // Active expiry off: the expired entries are still held when the new key arrives.
        let kv = KvHandle::builder()
            .max_entries(MAX)
            .active_expiry(false)
            .spawn();
        fill(&kv, MAX - 2).await;
        kv.set("short", 0).ttl(SEC).await.unwrap();
        kv.set("shorter", 0).ttl(SEC / 2).await.unwrap();
        let mut events = kv.watch("").await.unwrap();
        tokio::time::advance(SEC).await;
        assert_eq!(stats(&kv).await.entries, MAX);

        // As many expired entries go as the call needs, earliest deadline first.
        kv.set("new", 1).await.unwrap();
        let after = stats(&kv).await;
        assert_eq!(
            (after.entries, after.expirations, after.evictions),
            (MAX, 1, 0)
        );
        assert_eq!(
            next_event(&mut events),
            WatchEvent::Expired {
                key: "shorter".into()
            }
        );
        assert_eq!(next_event(&mut events).key(), "new");
        assert!(nothing_ready(&mut events));

        kv.set("one-more", 2).await.unwrap();
        let after = stats(&kv).await;
        assert_eq!((after.entries, after.expirations), (MAX, 2));
        assert_eq!(
            next_event(&mut events),
            WatchEvent::Expired {
                key: "short".into()
            }
        );
        assert_eq!(next_event(&mut events).key(), "one-more");

        // Then full of live keys: refused.
        assert_full(kv.set("too-many", 3).await, "too-many");
        assert!(kv.exists("k0").await.unwrap());
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn overwriting_an_expired_entry_needs_no_room() {
        let kv = KvHandle::builder()
            .max_entries(MAX)
            .active_expiry(false)
            .spawn();
        fill(&kv, MAX - 2).await;
        kv.set("a", 0).ttl(SEC).await.unwrap();
        kv.set("b", 0).ttl(SEC).await.unwrap();
        tokio::time::advance(SEC).await;
        kv.set("a", 1).await.unwrap();
        // "b" was not needed to make room, so it is still held (expired, invisible).
        let after = stats(&kv).await;
        assert_eq!((after.entries, after.expirations), (MAX, 0));
        assert_eq!(kv.get("a").await.unwrap().as_deref(), Some(&json!(1)));
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn an_expired_entry_the_call_writes_needs_room_once_it_is_let_go() {
        let kv = KvHandle::builder()
            .max_entries(MAX)
            .active_expiry(false)
            .spawn();
        fill(&kv, MAX - 2).await;
        kv.set("a", 0).ttl(SEC / 2).await.unwrap();
        kv.set("b", 0).ttl(SEC).await.unwrap();
        tokio::time::advance(SEC).await;
        // "a" goes first (earliest), which makes it a new key of this mset: "b" must go too.
        kv.mset([("a", 1), ("new", 2)]).await.unwrap();
        let after = stats(&kv).await;
        assert_eq!((after.entries, after.expirations), (MAX, 2));
        assert_eq!(kv.get("a").await.unwrap().as_deref(), Some(&json!(1)));
        assert_eq!(kv.get("new").await.unwrap().as_deref(), Some(&json!(2)));
    }
}

mod volatile_ttl {
    use super::*;

    fn bounded() -> KvHandle {
        KvHandle::builder()
            .max_entries(MAX)
            .eviction(Eviction::VolatileTtl)
            .spawn()
    }

    /// A full store: `k0`..`k6` without TTL, `far` (30 s), `near` (10 s) and `mid` (20 s).
    async fn full_with_three_ttls(kv: &KvHandle) {
        fill(kv, MAX - 3).await;
        kv.set("far", "f").ttl(30 * SEC).await.unwrap();
        kv.set("near", "n").ttl(10 * SEC).await.unwrap();
        kv.set("mid", "m").ttl(20 * SEC).await.unwrap();
        assert_eq!(stats(kv).await.entries, MAX);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn evicts_the_key_closest_to_expiry_then_the_next_closest() {
        let kv = bounded();
        full_with_three_ttls(&kv).await;

        kv.set("new1", 1).await.unwrap();
        assert_eq!(kv.get("near").await.unwrap(), None);
        assert_eq!(kv.get("mid").await.unwrap().as_deref(), Some(&json!("m")));
        assert_eq!(stats(&kv).await.evictions, 1);

        kv.set("new2", 2).await.unwrap();
        assert_eq!(kv.get("mid").await.unwrap(), None);
        assert_eq!(kv.get("far").await.unwrap().as_deref(), Some(&json!("f")));

        kv.incr("new3", 3).await.unwrap();
        assert_eq!(kv.get("far").await.unwrap(), None);

        let after = stats(&kv).await;
        assert_eq!(
            (
                after.entries,
                after.expiring,
                after.evictions,
                after.expirations
            ),
            (MAX, 0, 3, 0)
        );
        for key in ["new1", "new2", "new3", "k0", "k6"] {
            assert!(kv.exists(key).await.unwrap(), "{key} is kept");
        }
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn an_mset_evicts_as_many_as_it_adds_and_watchers_see_each_eviction() {
        let kv = bounded();
        full_with_three_ttls(&kv).await;
        let mut events = kv.watch("").await.unwrap();

        kv.mset([("k0", 100), ("a", 1), ("b", 2)]).await.unwrap();
        assert_eq!(
            next_event(&mut events),
            WatchEvent::Evicted { key: "near".into() }
        );
        assert_eq!(
            next_event(&mut events),
            WatchEvent::Evicted { key: "mid".into() }
        );
        let keys: Vec<String> = (0..3)
            .map(|_| next_event(&mut events).key().to_owned())
            .collect();
        assert_eq!(keys, ["k0", "a", "b"]);
        assert!(nothing_ready(&mut events));
        let after = stats(&kv).await;
        assert_eq!((after.entries, after.evictions), (MAX, 2));
        assert_eq!(kv.get("far").await.unwrap().as_deref(), Some(&json!("f")));
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn never_evicts_a_key_the_same_call_writes() {
        let kv = bounded();
        full_with_three_ttls(&kv).await;

        // "near" is the closest to expiry, but this mset writes it: "mid" goes instead.
        kv.mset([("near", "written"), ("a", "new")]).await.unwrap();
        assert_eq!(
            kv.get("near").await.unwrap().as_deref(),
            Some(&json!("written"))
        );
        assert_eq!(kv.ttl("near").await.unwrap(), Ttl::NoExpiry);
        assert_eq!(kv.get("mid").await.unwrap(), None);
        assert_eq!(kv.get("a").await.unwrap().as_deref(), Some(&json!("new")));

        // A transaction that writes "far" (now the only key with a TTL) cannot evict it: full.
        let before = contents(&kv).await;
        assert_full(
            kv.transaction(|txn| {
                txn.expire("far", SEC).unwrap();
                txn.set("b", 1);
            })
            .await,
            "b",
        );
        assert_eq!(contents(&kv).await, before);
        assert_eq!(stats(&kv).await.evictions, 1);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn refuses_with_full_when_too_few_keys_have_a_ttl_and_evicts_none() {
        let kv = bounded();
        fill(&kv, MAX).await;
        let before = contents(&kv).await;
        assert_full(kv.set("new", 1).await, "new");
        assert_full(kv.set("new", 1).ttl(SEC).await, "new");
        assert_eq!(contents(&kv).await, before);

        // One key with a TTL, two new keys: it is not evicted for a call that is refused anyway.
        kv.expire("k9", 60 * SEC).await.unwrap();
        let before_mset = contents(&kv).await;
        assert_full(kv.mset([("a", 1), ("b", 2)]).await, "a");
        assert_eq!(contents(&kv).await, before_mset);
        let after = stats(&kv).await;
        assert_eq!((after.entries, after.evictions), (MAX, 0));

        // One new key fits by evicting it.
        kv.set("a", 1).await.unwrap();
        assert_eq!(kv.get("k9").await.unwrap(), None);
        assert_eq!(stats(&kv).await.evictions, 1);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn expired_entries_go_before_any_live_key_is_evicted() {
        let kv = KvHandle::builder()
            .max_entries(MAX)
            .eviction(Eviction::VolatileTtl)
            .active_expiry(false)
            .spawn();
        full_with_three_ttls(&kv).await;
        tokio::time::advance(10 * SEC).await; // "near" has expired, still held

        kv.set("new", 1).await.unwrap();
        let after = stats(&kv).await;
        assert_eq!(
            (after.entries, after.expirations, after.evictions),
            (MAX, 1, 0)
        );
        assert_eq!(kv.get("mid").await.unwrap().as_deref(), Some(&json!("m")));
    }
}
