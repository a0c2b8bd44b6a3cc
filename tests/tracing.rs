//! Rule 14 of `docs/rules.md`: one debug event per command, core and coordination and list calls,
//! with operation and key (or prefix, or number of keys), never the value; the owner task logs its
//! start and stop.
//!
//! One test, alone in its own test binary: `tracing`'s scoped subscriber is per thread, and its
//! callsite interest cache can miss events when other tests run on other threads at the same time.

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
async fn one_debug_event_per_command_with_its_key_never_its_value() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let kv = KvHandle::builder().prefix("app:").spawn();
    kv.set("session_token", "secret-abc123").await.unwrap();
    kv.get("session_token").await.unwrap();
    kv.mset([("a", "secret-mset")]).await.unwrap();
    kv.mget(["a", "b"]).await.unwrap();
    kv.list_append_unique("l", [json!({"id": "secret-item"})])
        .await
        .unwrap();
    kv.list_pop_all("l").await.unwrap();
    kv.list_push("q", ["secret-push"]).await.unwrap();
    kv.list_pop_front("q", 1).await.unwrap();
    kv.expire("a", std::time::Duration::from_secs(5))
        .await
        .unwrap();
    kv.delete("a").await.unwrap();
    kv.purge_expired().limit(7).await.unwrap();
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
    assert!(log.contains("owner task started"), "{log}");
    assert!(log.contains("owner task stopped"), "{log}");
    for (op, field) in [
        ("set", "key=app:session_token"),
        ("get", "key=app:session_token"),
        ("mset", "keys=1"),
        ("mget", "keys=2"),
        ("list_append_unique", "key=app:l"),
        ("list_pop_all", "key=app:l"),
        ("list_push", "key=app:q"),
        ("list_pop_front", "key=app:q"),
        ("expire", "key=app:a"),
        ("delete", "key=app:a"),
        ("purge_expired", "limit=7"),
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
