//! The core rules of `docs/rules.md` where the in-process store promises more than both backends
//! can show (what they share is in `tests/conformance/core.rs`): expiry exact to the nanosecond, and
//! expired entries held in memory, yet invisible, until touched (rule 1); a huge TTL holding no
//! deadline (rule 3); `purge_expired`'s counts (rule 9); active expiry (rule 10); the owner task
//! ending with its last handle (rule 11); a sent call applied whole (rule 12); a stopped store
//! telling `Closed` (after a shutdown) from `OwnerGone` (its runtime ended) (rule 31); and the
//! builder's settings, a mailbox capacity of `usize::MAX` included.

use std::future::IntoFuture;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use ephemeral_kv::{KvBuilder, KvError, KvHandle, Stats, Ttl};
use futures::FutureExt;
use serde_json::{json, Value};

const SEC: Duration = Duration::from_secs(1);

/// A store whose expired entries stay in memory until touched or purged, so tests can tell
/// "removed" from "invisible".
fn lazy_store() -> KvHandle {
    KvHandle::builder().active_expiry(false).spawn()
}

async fn stats(kv: &KvHandle) -> (usize, usize) {
    let Stats {
        entries, expiring, ..
    } = kv.stats().await.unwrap();
    (entries, expiring)
}

/// Rule 1: an expired key is invisible to every command, from its deadline on, while it is still
/// held in memory.
mod rule_01_expired_keys_are_invisible {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_key_is_live_until_its_deadline_and_expired_exactly_at_it() {
        let kv = lazy_store();
        kv.set("k", 7).ttl(SEC).await.unwrap();
        kv.list_append_unique("l", [json!({"id": 1})])
            .ttl(SEC)
            .await
            .unwrap();
        kv.set("p", json!([1, 2])).ttl(SEC).await.unwrap();
        kv.set("e", 1).ttl(SEC).await.unwrap();
        tokio::time::advance(SEC - Duration::from_nanos(1)).await;
        assert_eq!(kv.get("k").await.unwrap().as_deref(), Some(&json!(7)));
        assert_eq!(kv.get_as::<u32>("k").await.unwrap(), Some(7));
        tokio::time::advance(Duration::from_nanos(1)).await; // exactly at the deadline
        assert_eq!(kv.mget(["k"]).await.unwrap(), vec![None]);
        assert_eq!(kv.get_as::<u32>("k").await.unwrap(), None);
        assert_eq!(kv.get("k").await.unwrap(), None);
        let list = kv
            .list_append_unique("l", [json!({"id": 2})])
            .await
            .unwrap();
        assert_eq!(list, vec![json!({"id": 2})]);
        assert_eq!(kv.list_pop_all("p").await.unwrap(), Vec::<Value>::new());
        assert!(!kv.expire("e", 100 * SEC).await.unwrap());
        assert_eq!(kv.get("e").await.unwrap(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn an_access_removes_the_expired_entry() {
        let kv = lazy_store();
        kv.set("k", 7).ttl(SEC).await.unwrap();
        tokio::time::advance(2 * SEC).await;
        assert_eq!(stats(&kv).await, (1, 1));
        assert_eq!(kv.get("k").await.unwrap(), None);
        assert_eq!(stats(&kv).await, (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn entries_still_held_are_invisible_to_every_coordination_call() {
        let kv = lazy_store();
        for key in ["a", "b", "c", "d", "e", "f", "g"] {
            kv.set(key, 5).ttl(SEC).await.unwrap();
        }
        tokio::time::advance(SEC).await;
        assert_eq!(kv.stats().await.unwrap().entries, 7); // still held
        assert!(!kv.exists("a").await.unwrap());
        assert_eq!(kv.ttl("b").await.unwrap(), Ttl::Missing);
        assert!(!kv.persist("c").await.unwrap());
        assert_eq!(kv.get_del("d").await.unwrap(), None);
        assert_eq!(kv.incr("e", 1).await.unwrap(), 1);
        assert_eq!(kv.scan_prefix("").await.unwrap(), vec!["e"]);
        assert!(kv.set_if_absent("f", 0).await.unwrap());
        assert_eq!(kv.update("g", |cur| cur.cloned()).await.unwrap(), None);
    }
}

/// Rule 3: a TTL too large to represent never expires, and so holds no deadline.
mod rule_03_ttl_bounds {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_ttl_too_large_to_represent_holds_no_deadline() {
        let kv = lazy_store();
        kv.set("a", 1).ttl(Duration::MAX).await.unwrap();
        kv.mset([("b", 2)]).ttl(Duration::MAX).await.unwrap();
        kv.list_append_unique("c", [json!({"id": 3})])
            .ttl(Duration::MAX)
            .await
            .unwrap();
        kv.set("d", 4).ttl(SEC).await.unwrap();
        assert!(kv.expire("d", Duration::MAX).await.unwrap());
        tokio::time::advance(Duration::from_secs(10 * 365 * 24 * 3600)).await;
        assert_eq!(
            kv.mget(["a", "b", "d"]).await.unwrap(),
            vec![
                Some(Arc::new(json!(1))),
                Some(Arc::new(json!(2))),
                Some(Arc::new(json!(4)))
            ]
        );
        assert_eq!(
            kv.get("c").await.unwrap().as_deref(),
            Some(&json!([{"id": 3}]))
        );
        assert_eq!(stats(&kv).await, (4, 0));
    }
}

/// Rule 9: `purge_expired` removes up to `limit` expired entries store-wide.
mod rule_09_purge_expired {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn removes_up_to_limit_across_prefixes_and_only_expired_ones() {
        let kv = lazy_store();
        let a = kv.with_prefix("a:");
        let b = kv.with_prefix("b:");
        for i in 0..3 {
            a.set(format!("{i}"), i).ttl(SEC).await.unwrap();
            b.set(format!("{i}"), i).ttl(SEC).await.unwrap();
        }
        kv.set("forever", 0).await.unwrap();
        kv.set("later", 0).ttl(10 * SEC).await.unwrap();
        tokio::time::advance(SEC).await;

        assert_eq!(a.purge_expired().limit(4).await.unwrap(), 4);
        assert_eq!(stats(&kv).await, (4, 3));
        assert_eq!(b.purge_expired().limit(0).await.unwrap(), 0);
        assert_eq!(kv.purge_expired().await.unwrap(), 2);
        assert_eq!(kv.purge_expired().await.unwrap(), 0);
        assert_eq!(stats(&kv).await, (2, 1));
        assert_eq!(
            kv.mget(["forever", "later"]).await.unwrap(),
            vec![Some(Arc::new(json!(0))), Some(Arc::new(json!(0)))]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn default_limit_is_1000() {
        let kv = lazy_store();
        let entries: Vec<(String, u32)> = (0..1500).map(|i| (format!("k{i}"), i)).collect();
        kv.mset(entries).ttl(SEC).await.unwrap();
        tokio::time::advance(SEC).await;
        assert_eq!(kv.purge_expired().await.unwrap(), 1000);
        assert_eq!(kv.purge_expired().await.unwrap(), 500);
    }
}

/// Rule 10: active expiry removes entries on its own; without it they wait for access or purge.
mod rule_10_active_expiry {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn on_by_default_removes_expired_entries_without_any_access() {
        let kv = KvHandle::spawn();
        kv.set("a", 1).ttl(SEC).await.unwrap();
        kv.set("b", 1).ttl(3 * SEC).await.unwrap();
        kv.set("c", 1).await.unwrap();
        // Sleeping on the paused clock lets the owner task's timer fire at each deadline.
        tokio::time::sleep(2 * SEC).await;
        assert_eq!(stats(&kv).await, (2, 1));
        tokio::time::sleep(2 * SEC).await;
        assert_eq!(stats(&kv).await, (1, 0));
        assert_eq!(kv.purge_expired().await.unwrap(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_mass_expiry_is_removed_in_slices_without_losing_any() {
        let kv = KvHandle::spawn();
        let entries: Vec<(String, u32)> = (0..2000).map(|i| (format!("k{i}"), i)).collect();
        kv.mset(entries).ttl(SEC).await.unwrap();
        tokio::time::sleep(2 * SEC).await;
        // Let the owner task finish its slices.
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        assert_eq!(stats(&kv).await, (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn rearms_for_a_new_earlier_deadline() {
        let kv = KvHandle::spawn();
        kv.set("late", 1).ttl(10 * SEC).await.unwrap();
        kv.set("early", 1).ttl(SEC).await.unwrap();
        tokio::time::sleep(2 * SEC).await;
        assert_eq!(stats(&kv).await, (1, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn off_leaves_expired_entries_until_touched_or_purged() {
        let kv = lazy_store();
        kv.set("a", 1).ttl(SEC).await.unwrap();
        kv.set("b", 1).ttl(SEC).await.unwrap();
        tokio::time::sleep(5 * SEC).await;
        assert_eq!(stats(&kv).await, (2, 2));
        assert_eq!(kv.get("a").await.unwrap(), None);
        assert_eq!(kv.purge_expired().await.unwrap(), 1);
        assert_eq!(stats(&kv).await, (0, 0));
    }

    /// A store with a deadline pending must let a paused-clock runtime go idle (so that its clock
    /// can jump ahead), not spin re-checking a timer that already fired. The store runs on its own
    /// thread so that a spinning owner task fails this test instead of hanging it.
    #[test]
    fn an_idle_owner_waits_for_its_next_deadline_instead_of_spinning() {
        let (done, finished) = mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .start_paused(true)
                .build()
                .unwrap();
            runtime.block_on(async {
                let kv = KvHandle::spawn();
                kv.set("a", 1).ttl(Duration::from_secs(5)).await.unwrap();
                kv.set("b", 1).ttl(Duration::from_secs(60)).await.unwrap();
                tokio::time::sleep(Duration::from_secs(10)).await;
                done.send(stats(&kv).await).unwrap();
            });
        });
        let stats = finished
            .recv_timeout(Duration::from_secs(20))
            .expect("the owner task kept the runtime busy");
        assert_eq!(stats, (1, 1));
    }
}

/// Rule 11: dropping every handle stops the owner task (shutdown itself: the conformance suite).
mod rule_11_shutdown {
    use super::*;

    #[tokio::test]
    async fn dropping_every_handle_stops_the_owner_task() {
        let metrics = tokio::runtime::Handle::current().metrics();
        let before = metrics.num_alive_tasks();
        let kv = KvHandle::spawn();
        kv.set("a", 1).await.unwrap();
        let clone = kv.with_prefix("p:");
        drop(kv);
        assert_eq!(metrics.num_alive_tasks(), before + 1);
        // The store still serves through the prefixed clone (its key is "p:a").
        assert_eq!(clone.get("a").await.unwrap(), None);
        drop(clone);
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(metrics.num_alive_tasks(), before);
    }
}

/// Rule 12: a call that was sent is applied whole, whether or not its caller still waits: here one
/// poll always sends it (the mailbox has room).
mod rule_12_cancellation {
    use super::*;

    #[tokio::test]
    async fn a_command_that_was_sent_is_applied_even_if_its_caller_left() {
        let kv = KvHandle::spawn();
        // One poll sends the command (the mailbox has room), then the future is dropped.
        assert!(kv.set("k", 1).into_future().now_or_never().is_none());
        assert!(kv
            .list_append_unique("l", [json!({"id": 1})])
            .into_future()
            .now_or_never()
            .is_none());
        assert_eq!(kv.get("k").await.unwrap().as_deref(), Some(&json!(1)));
        assert_eq!(
            kv.get("l").await.unwrap().as_deref(),
            Some(&json!([{"id": 1}]))
        );
    }
}

/// The builder's settings, which the doctests show and these pin for the mutation run (which
/// runs no doctests).
mod builder {
    use super::*;

    #[tokio::test]
    async fn a_mailbox_capacity_of_zero_is_taken_as_one() {
        let kv = KvBuilder::new().mailbox_capacity(0).spawn();
        kv.set("k", 1).await.unwrap();
        assert_eq!(kv.get("k").await.unwrap().as_deref(), Some(&json!(1)));
    }

    /// Larger capacities are lowered to 2^20: tokio's channel panics on sizes near `usize::MAX`.
    #[tokio::test]
    async fn a_mailbox_capacity_of_usize_max_spawns_a_store_that_serves() {
        let kv = KvHandle::builder().mailbox_capacity(usize::MAX).spawn();
        kv.set("k", 1).await.unwrap();
        assert_eq!(kv.get("k").await.unwrap().as_deref(), Some(&json!(1)));
        let stats = kv.stats().await.unwrap();
        assert_eq!((stats.entries, stats.mailbox_depth), (1, 0));
        // Many calls queued at once all get through.
        let calls = (0..1_000).map(|i| kv.set(format!("n{i}"), i));
        for result in futures::future::join_all(calls).await {
            assert!(matches!(result, Ok(())));
        }
        assert_eq!(kv.stats().await.unwrap().entries, 1_001);
    }

    #[tokio::test]
    async fn the_default_builder_is_the_new_one() {
        assert_eq!(KvHandle::spawn().prefix(), "");
        let kv = KvBuilder::default().spawn();
        assert_eq!(kv.prefix(), "");
        kv.set("k", "v").await.unwrap();
        assert_eq!(kv.get("k").await.unwrap().as_deref(), Some(&json!("v")));
        kv.shutdown().await;
        assert!(matches!(kv.get("k").await, Err(KvError::Closed)));
    }
}

/// Rule 31: why a store no longer answers. `Closed` after a shutdown; `OwnerGone` when the runtime
/// that ran the owner task ended without one.
mod rule_31_stopped_stores {
    use super::*;

    #[tokio::test]
    async fn every_call_after_a_shutdown_is_closed_and_says_so() {
        let kv = KvHandle::spawn();
        let other = kv.with_prefix("p:");
        kv.shutdown().await;
        for err in [
            kv.get("k").await.unwrap_err(),
            other.set("k", 1).await.unwrap_err(),
            other.update("k", |v| v.cloned()).await.unwrap_err(),
            kv.transaction(|_| ()).await.unwrap_err(),
            kv.wait_for("k").await.unwrap_err(),
            kv.stats().await.unwrap_err(),
        ] {
            assert!(matches!(err, KvError::Closed), "{err:?}");
            assert_eq!(err.to_string(), "the store was shut down");
        }
    }

    #[test]
    fn a_store_whose_runtime_ended_answers_owner_gone() {
        let first = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let kv = first.block_on(async {
            let kv = KvHandle::spawn();
            kv.set("k", 1).await.unwrap();
            kv
        });
        drop(first); // the owner task ends with its runtime, without a shutdown
        let second = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        second.block_on(async {
            let clone = kv.with_prefix("p:");
            for err in [
                kv.get("k").await.unwrap_err(),
                kv.set("k", 2).await.unwrap_err(),
                clone.exists("k").await.unwrap_err(),
                kv.transaction(|_| ()).await.unwrap_err(),
            ] {
                assert!(matches!(err, KvError::OwnerGone), "{err:?}");
                assert_eq!(
                    err.to_string(),
                    "the store's owner task ended without a shutdown (its tokio runtime has ended)"
                );
            }
            assert!(kv.is_closed());
            // A shutdown now still returns, and from then on the store counts as shut down.
            kv.shutdown().await;
            assert!(matches!(kv.get("k").await, Err(KvError::Closed)));
        });
    }
}

/// A full mailbox makes callers wait for room (backpressure) instead of failing, and every call
/// that waited is still applied once, in order per caller.
#[tokio::test(flavor = "current_thread")]
async fn calls_that_find_the_mailbox_full_wait_for_room_and_are_applied() {
    let kv = ephemeral_kv::KvHandle::builder()
        .mailbox_capacity(1)
        .spawn();
    let writes = (0..50).map(|n| kv.incr("hits", n));
    let totals: Vec<i64> = futures::future::join_all(writes)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(totals.iter().max(), Some(&(0..50).sum::<i64>()));
    assert_eq!(kv.get_as::<i64>("hits").await.unwrap(), Some(1225));
    // A call waiting for room when the store shuts down is told so.
    let blocked = futures::future::join_all((0..10).map(|_| kv.get("hits")));
    let (_, answers) = tokio::join!(kv.shutdown(), blocked);
    for answer in answers {
        assert!(
            matches!(answer, Ok(_) | Err(ephemeral_kv::KvError::Closed)),
            "{answer:?}"
        );
    }
}
