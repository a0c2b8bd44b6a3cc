//! The coordination rules of `docs/rules.md` where the in-process store promises more than both
//! backends can show (what they share is in `tests/conformance/coordination.rs`): `update` and
//! `transaction` closures run exactly once, on the owner task, which catches their panics and keeps
//! serving, and may call another store (rules 18 and 19); and the `stats` counters (rule 25), which
//! only this store keeps.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ephemeral_kv::{KvError, KvHandle};
use serde_json::json;

const SEC: Duration = Duration::from_secs(1);

/// A store whose expired entries stay in memory until touched or purged, so tests can tell
/// "removed" from "invisible".
fn lazy_store() -> KvHandle {
    KvHandle::builder().active_expiry(false).spawn()
}

/// Rules 18 and 19: closures run on the owner task (on Redis they may run more than once).
mod closures {
    use super::*;

    #[tokio::test]
    async fn update_and_transaction_closures_run_exactly_once() {
        let kv = KvHandle::spawn();
        kv.set("k", 1).await.unwrap();
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&runs);
        kv.update("k", move |cur| {
            counted.fetch_add(1, Ordering::SeqCst);
            cur.cloned()
        })
        .await
        .unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        let counted = Arc::clone(&runs);
        kv.transaction(move |txn| {
            counted.fetch_add(1, Ordering::SeqCst);
            let k = txn.get("k").cloned();
            txn.set("copy", k.unwrap_or_default());
        })
        .await
        .unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert_eq!(kv.get("copy").await.unwrap().as_deref(), Some(&json!(1)));
    }

    #[tokio::test]
    async fn a_panicking_update_is_caught_on_the_owner_task_which_keeps_serving() {
        let kv = KvHandle::builder().prefix("app:").spawn();
        kv.set("cart", json!(["apple"])).await.unwrap();
        let err = kv
            .update("cart", |_| panic!("closure bug"))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, KvError::UpdatePanicked { key, message } if key == "app:cart" && message == "closure bug"),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "the update closure for key `app:cart` panicked: closure bug"
        );
        assert_eq!(
            kv.get("cart").await.unwrap().as_deref(),
            Some(&json!(["apple"]))
        );
        let formatted = kv
            .update("cart", |_| panic!("{} bugs", 2))
            .await
            .unwrap_err();
        assert!(
            matches!(formatted, KvError::UpdatePanicked { message, .. } if message == "2 bugs")
        );
        // The owner task is still there and serving.
        kv.set("after", 1).await.unwrap();
        assert_eq!(kv.get("after").await.unwrap().as_deref(), Some(&json!(1)));
        assert!(!kv.is_closed());
    }

    #[tokio::test]
    async fn a_panicking_transaction_is_caught_on_the_owner_task_which_keeps_serving() {
        let kv = KvHandle::builder().prefix("app:").spawn();
        kv.mset([("a", 1), ("b", 2)]).await.unwrap();
        let err = kv
            .transaction(|txn| {
                txn.set("a", 100);
                txn.delete("b");
                txn.set("c", 3);
                panic!("halfway");
            })
            .await
            .unwrap_err();
        assert!(
            matches!(&err, KvError::TransactionPanicked { prefix, message } if prefix == "app:" && message == "halfway"),
            "{err:?}"
        );
        assert_eq!(
            kv.mget(["a", "b", "c"]).await.unwrap(),
            vec![Some(Arc::new(json!(1))), Some(Arc::new(json!(2))), None]
        );
        assert_eq!(kv.stats().await.unwrap().entries, 2);
        assert!(kv.transaction(|txn| txn.delete("a")).await.unwrap());
    }

    /// Rule 29: only calls on the closure's own store are refused (`Reentrant`, in the conformance
    /// suite): a closure may block on a call to another store, here one whose owner task runs on
    /// a runtime of its own (on the same thread it could not run while the closure blocks).
    #[test]
    fn rule_29_a_closure_may_call_another_store() {
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let elsewhere = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            let other = {
                let _on = elsewhere.enter();
                KvHandle::spawn()
            };
            let here = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let seen = here.block_on(async {
                other.set("x", "from the other store").await.unwrap();
                let kv = KvHandle::spawn();
                let from_update = other.clone();
                let updated = kv
                    .update("k", move |_| {
                        let read = futures::executor::block_on(from_update.get("x")).unwrap();
                        futures::executor::block_on(from_update.set("y", 1)).unwrap();
                        read.map(|value| (*value).clone())
                    })
                    .await
                    .unwrap();
                let from_txn = other.clone();
                let in_txn = kv
                    .transaction(move |txn| {
                        let read = futures::executor::block_on(from_txn.get("y"));
                        txn.set("copied", read.as_ref().ok().cloned().flatten().as_deref());
                        read.map(|value| value.map(|value| (*value).clone()))
                    })
                    .await
                    .unwrap();
                let copied = kv.get("copied").await.unwrap();
                (updated, in_txn.unwrap(), copied)
            });
            elsewhere.shutdown_background();
            done.send(seen).unwrap();
        });
        let (updated, in_txn, copied) = finished
            .recv_timeout(Duration::from_secs(20))
            .expect("a call on another store from inside a closure stalled");
        assert_eq!(updated.as_deref(), Some(&json!("from the other store")));
        assert_eq!(in_txn, Some(json!(1)));
        assert_eq!(copied.as_deref(), Some(&json!(1)));
    }
}

/// Rule 25: what the store holds (`entries`, `expiring`) and how it has been used (`hits`, `misses`,
/// `expirations`, `commands`, `mailbox_depth`).
mod stats {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn persist_takes_a_key_out_of_the_expiring_count() {
        let kv = KvHandle::spawn();
        kv.set("k", 1).ttl(SEC).await.unwrap();
        assert_eq!(kv.stats().await.unwrap().expiring, 1);
        assert!(kv.persist("k").await.unwrap());
        tokio::time::advance(10 * SEC).await;
        assert_eq!(kv.get("k").await.unwrap().as_deref(), Some(&json!(1)));
        assert_eq!(kv.stats().await.unwrap().expiring, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn counts_hits_misses_expirations_and_commands() {
        let kv = lazy_store();
        kv.set("a", 1).await.unwrap(); // 1 command
        kv.set("t", 1).ttl(SEC).await.unwrap(); // 2
        kv.get("a").await.unwrap(); // 3, hit
        kv.get("missing").await.unwrap(); // 4, miss
        kv.mget(["a", "a", "nope"]).await.unwrap(); // 5, 2 hits 1 miss
        kv.incr("a", 1).await.unwrap(); // 6, hit
        tokio::time::advance(SEC).await;
        kv.exists("t").await.unwrap(); // 7, miss + expiration
        kv.set("u", 1).ttl(SEC).await.unwrap(); // 8
        tokio::time::advance(SEC).await;
        assert_eq!(kv.purge_expired().await.unwrap(), 1); // 9, expiration
        let stats = kv.stats().await.unwrap(); // 10
        assert_eq!(
            (stats.hits, stats.misses, stats.expirations, stats.commands),
            (4, 3, 2, 10)
        );
        assert_eq!((stats.entries, stats.expiring, stats.watchers), (1, 0, 0));
        assert_eq!(stats.mailbox_depth, 0);
    }

    /// Removing an expired entry counts as an expiration (and is reported as one), whether or not
    /// anyone watches: a `delete`, or a transaction that writes the key and then deletes it.
    #[tokio::test(start_paused = true)]
    async fn removing_an_expired_entry_counts_an_expiration_with_or_without_a_watcher() {
        for watched in [false, true] {
            let kv = lazy_store();
            let _events = if watched {
                Some(kv.watch("").await.unwrap())
            } else {
                None
            };
            for key in ["deleted", "rewritten", "overwritten"] {
                kv.set(key, 0).ttl(SEC).await.unwrap();
            }
            tokio::time::advance(2 * SEC).await;
            kv.delete("deleted").await.unwrap();
            kv.transaction(|txn| {
                txn.set("rewritten", 1);
                txn.delete("rewritten");
                txn.set("overwritten", 1); // written over, as `set` would: not an expiration
            })
            .await
            .unwrap();
            let stats = kv.stats().await.unwrap();
            assert_eq!(
                (stats.entries, stats.expirations),
                (1, 2),
                "watched: {watched}"
            );
        }
    }

    /// A `get` that finds its key expired counts one miss and one expiration, as a missing key
    /// counts one miss.
    #[tokio::test(start_paused = true)]
    async fn a_get_of_an_expired_key_counts_a_miss_and_an_expiration() {
        let kv = lazy_store();
        kv.set("t", 1).ttl(SEC).await.unwrap();
        tokio::time::advance(SEC).await;
        assert_eq!(kv.get("t").await.unwrap(), None);
        let stats = kv.stats().await.unwrap();
        assert_eq!((stats.hits, stats.misses, stats.expirations), (0, 1, 1));
        assert_eq!(kv.get("never").await.unwrap(), None);
        assert_eq!(kv.stats().await.unwrap().misses, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn active_expiry_counts_expirations() {
        let kv = KvHandle::spawn();
        kv.mset([("a", 1), ("b", 2)]).ttl(SEC).await.unwrap();
        tokio::time::sleep(2 * SEC).await;
        let stats = kv.stats().await.unwrap();
        assert_eq!((stats.entries, stats.expirations), (0, 2));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn mailbox_depth_counts_the_commands_queued_ahead() {
        let kv = KvHandle::builder().mailbox_capacity(64).spawn();
        assert_eq!(kv.stats().await.unwrap().mailbox_depth, 0);
        // Queue commands without letting the owner task run: on a current-thread runtime it only
        // runs when this task yields. Polling a call once puts its command in the mailbox.
        let mut queued = Vec::new();
        for i in 0..10 {
            let kv = kv.clone();
            let mut call = Box::pin(async move { kv.set("k", i).await });
            assert!(futures::poll!(call.as_mut()).is_pending());
            queued.push(call);
        }
        let stats = kv.stats().await.unwrap();
        assert_eq!(stats.mailbox_depth, 10);
        for call in queued {
            call.await.unwrap();
        }
        assert_eq!(kv.get("k").await.unwrap().as_deref(), Some(&json!(9)));
    }
}

/// Rule 27: waiting pops are served in the order they began waiting, so none starves, and a pop
/// whose caller gave up is skipped without taking anything.
mod waiting_pops {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn waiting_pops_are_served_oldest_first_and_given_up_ones_are_skipped() {
        let kv = KvHandle::spawn();
        let mut workers = Vec::new();
        for n in 0..3 {
            let worker = kv.clone();
            workers.push(tokio::spawn(async move {
                worker.list_pop_front("inbox", 1).wait(SEC * 100).await
            }));
            // Each parks before the next: their order is the order they began waiting.
            while kv.stats().await.unwrap().watchers < n + 1 {
                tokio::task::yield_now().await;
            }
        }
        // The second worker gives up: its place is skipped, and it takes nothing.
        workers[1].abort();
        kv.list_push("inbox", [json!("a"), json!("b"), json!("c")])
            .await
            .unwrap();
        let first = workers.remove(0).await.unwrap().unwrap();
        let third = workers.remove(1).await.unwrap().unwrap();
        assert_eq!((first, third), (vec![json!("a")], vec![json!("b")]));
        assert_eq!(
            kv.get("inbox").await.unwrap().as_deref(),
            Some(&json!(["c"]))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_pop_ends_at_its_deadline_without_active_expiry() {
        let kv = KvHandle::builder().active_expiry(false).spawn();
        let start = tokio::time::Instant::now();
        let taken = kv.list_pop_front("inbox", 1).wait(SEC * 5).await.unwrap();
        assert!(taken.is_empty());
        assert_eq!(start.elapsed(), SEC * 5);
        // A timeout too large for an instant waits until a push.
        let worker = kv.clone();
        let job =
            tokio::spawn(
                async move { worker.list_pop_front("inbox", 1).wait(Duration::MAX).await },
            );
        tokio::time::sleep(SEC * 1000).await;
        kv.list_push("inbox", [json!(1)]).await.unwrap();
        assert_eq!(job.await.unwrap().unwrap(), vec![json!(1)]);
    }
}
