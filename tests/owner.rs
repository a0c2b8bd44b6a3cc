//! What the owner task does besides answering calls: expire keys on its own, sleep while it has
//! nothing to do, and log each command without its value.

use std::io;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use ephemeral_kv::KvHandle;
use serde_json::json;

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

/// Collects what a `tracing` subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn each_command_is_logged_with_its_name_and_key_but_never_its_value() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // The current-thread runtime polls the owner task on this thread, where the subscriber is set.
    let _guard = tracing::subscriber::set_default(subscriber);

    let kv = KvHandle::spawn();
    kv.set("session", "secret-token").await.unwrap();
    kv.get("session").await.unwrap();
    kv.list_append_unique("inbox", [json!({ "id": 1, "body": "secret-body" })])
        .await
        .unwrap();
    kv.mset([("a", 1), ("b", 2)]).await.unwrap();
    kv.mget(["a", "b", "c"]).await.unwrap();
    kv.purge_expired().limit(7).await.unwrap();
    kv.stats().await.unwrap();
    kv.shutdown().await;

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    for expected in [
        r#"op="set" key=session"#,
        r#"op="get" key=session"#,
        r#"op="list_append_unique" key=inbox"#,
        r#"op="mset" keys=2"#,
        r#"op="mget" keys=3"#,
        r#"op="purge_expired" limit=7"#,
        r#"op="stats""#,
        r#"op="shutdown""#,
    ] {
        assert!(log.contains(expected), "no `{expected}` in:\n{log}");
    }
    assert!(!log.contains("secret"), "a value was logged:\n{log}");
}
