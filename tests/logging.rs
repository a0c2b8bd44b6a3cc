//! The owner task logs each command at debug level with its name and key, never its value.
//!
//! Alone in its test binary: `tracing` caches per call site whether anyone listens, and a test on
//! another thread without a subscriber could make that cache skip this test's events.

use std::io;
use std::sync::{Arc, Mutex};

use ephemeral_kv::KvHandle;
use serde_json::json;

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
