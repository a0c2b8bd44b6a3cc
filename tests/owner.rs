//! What the owner task does besides answering calls: expire keys on its own, and sleep while it
//! has nothing to do.

use std::sync::mpsc;
use std::time::Duration;

use ephemeral_kv::KvHandle;

#[tokio::test(start_paused = true)]
async fn active_expiry_removes_expired_keys_that_nobody_touches() {
    let kv = KvHandle::spawn();
    kv.set("a", 1).ttl(Duration::from_secs(1)).await.unwrap();
    kv.set("b", 2).ttl(Duration::from_secs(5)).await.unwrap();
    kv.set("c", 3).await.unwrap();
    // `sleep` lets the paused clock run to the owner's expiry timer and the owner act on it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stats = kv.stats().await.unwrap();
    assert_eq!((stats.entries, stats.expiring), (2, 1));
    tokio::time::sleep(Duration::from_secs(4)).await;
    let stats = kv.stats().await.unwrap();
    assert_eq!((stats.entries, stats.expiring), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn without_active_expiry_expired_keys_wait_for_a_purge() {
    let kv = KvHandle::builder().active_expiry(false).spawn();
    kv.set("a", 1).ttl(Duration::from_secs(1)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(kv.stats().await.unwrap().entries, 1);
    assert_eq!(kv.purge_expired().await.unwrap(), 1);
    assert_eq!(kv.stats().await.unwrap().entries, 0);
}

/// A store with a deadline pending must let a paused-clock runtime go idle (so that its clock can
/// jump ahead), not spin re-checking a timer that already fired. The store runs on its own thread
/// so that a spinning owner task fails this test instead of hanging it.
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
            let stats = kv.stats().await.unwrap();
            done.send((stats.entries, stats.expiring)).unwrap();
        });
    });
    let stats = finished
        .recv_timeout(Duration::from_secs(20))
        .expect("the owner task kept the runtime busy");
    assert_eq!(stats, (1, 1));
}
