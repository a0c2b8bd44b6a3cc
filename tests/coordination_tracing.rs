//! One debug event per coordination command, with operation and key (or prefix), never the value.
//!
//! Alone in its own test binary: `tracing`'s scoped subscriber is per thread, and its callsite
//! interest cache can miss events when other tests run on other threads at the same time.

use ephemeral_kv::KvHandle;
use serde_json::json;
use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn one_debug_event_per_coordination_command_without_values() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let kv = KvHandle::builder().prefix("app:").spawn();
    kv.incr("n", 1).await.unwrap();
    kv.set_if_absent("lock", "secret-1").await.unwrap();
    kv.compare_and_set("lock", Some(json!("secret-1")), "secret-2")
        .await
        .unwrap();
    kv.update("n", |v| v.cloned()).await.unwrap();
    kv.transaction(|txn| txn.set("x", "secret-3"))
        .await
        .unwrap();
    kv.get_del("x").await.unwrap();
    kv.exists("n").await.unwrap();
    kv.ttl("n").await.unwrap();
    kv.persist("n").await.unwrap();
    kv.scan_prefix("l").await.unwrap();
    let events = kv.watch("w:").await.unwrap();
    kv.wait_for("n").await.unwrap();
    drop(events);
    kv.shutdown().await;

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    for (op, field) in [
        ("incr", "key=app:n"),
        ("set_if_absent", "key=app:lock"),
        ("compare_and_set", "key=app:lock"),
        ("update", "key=app:n"),
        ("transaction", "prefix=app:"),
        ("get_del", "key=app:x"),
        ("exists", "key=app:n"),
        ("ttl", "key=app:n"),
        ("persist", "key=app:n"),
        ("scan_prefix", "prefix=app:l"),
        ("watch", "prefix=app:w:"),
        ("wait_for", "key=app:n"),
    ] {
        let line = format!("op=\"{op}\" {field}");
        assert_eq!(log.matches(&line).count(), 1, "{line} in {log}");
    }
    assert!(!log.contains("secret"), "{log}");
}
