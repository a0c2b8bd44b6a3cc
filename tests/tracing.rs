//! Rule 14 of `docs/rules.md`: one debug event per command, core and coordination and list calls,
//! with operation and key (or prefix, or number of keys), never the value, and what came of it
//! (`outcome=`: hit, miss, applied, refused, ok, waiting, or the error's kind); a caught closure
//! panic at warn; the owner task's start and stop at info; and each command's line inside the
//! span its call was made in.
//!
//! Alone in its own test binary, and one test at a time (`captured` takes turns): `tracing`'s
//! scoped subscriber is per thread, and its callsite interest cache can miss events when other
//! tests run on other threads at the same time.

use ephemeral_kv::KvHandle;
use serde_json::json;
use std::io::Write;
use std::sync::{Arc, Mutex};
use tracing::Instrument;

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

/// What is logged on this thread while its guards are held, and the guards: the subscriber's, then
/// this test's turn (no other test of this binary logs meanwhile). Tuple fields drop in order.
type Guards = (
    tracing::subscriber::DefaultGuard,
    std::sync::MutexGuard<'static, ()>,
);

fn captured() -> (Captured, Guards) {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    (captured, (guard, turn))
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn one_debug_event_per_command_with_its_key_never_its_value() {
    let (captured, _guard) = captured();

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

    let log = captured.text();
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

/// The one debug line of the command `op` on `subject` (`key=...`, `prefix=...`, or nothing for
/// a command about the whole store), which must exist exactly once.
fn line_of<'a>(log: &'a str, op: &str, subject: &str) -> &'a str {
    let needle = match subject {
        "" => format!("op=\"{op}\" outcome="),
        subject => format!("op=\"{op}\" {subject} "),
    };
    let lines: Vec<&str> = log.lines().filter(|line| line.contains(&needle)).collect();
    assert_eq!(lines.len(), 1, "{needle} in {log}");
    lines[0]
}

#[tokio::test(flavor = "current_thread")]
async fn each_command_line_says_what_came_of_it() {
    let (captured, _guard) = captured();

    let kv = KvHandle::spawn();
    kv.set("present", 1).await.unwrap();
    kv.set("text", "x").await.unwrap();
    kv.get("present").await.unwrap();
    kv.get("absent").await.unwrap();
    assert!(kv.set_if_absent("lease", 1).await.unwrap());
    assert!(!kv.set_if_absent("present", 2).await.unwrap());
    assert!(kv.exists("lease").await.unwrap());
    assert!(!kv.exists("nothing").await.unwrap());
    assert!(kv.compare_and_set("cas", None, 1).await.unwrap());
    assert!(!kv
        .compare_and_set("cas-refused", Some(json!(1)), 2)
        .await
        .unwrap());
    assert!(kv.list_push("text", [1]).await.is_err());
    assert!(kv.incr("text", 1).await.is_err());
    kv.get_del("absent").await.unwrap();
    let waiter = kv.clone();
    let waiting = tokio::spawn(async move { waiter.wait_for("later").await });
    tokio::task::yield_now().await;
    kv.set("later", 1).await.unwrap();
    waiting.await.unwrap().unwrap();
    kv.wait_for("present").await.unwrap();
    let panicked = kv.update("present", |_| panic!("closure bug")).await;
    assert!(panicked.is_err());
    // A call made inside a request's span: the owner task's line about it is inside it too.
    let request = tracing::info_span!("request", id = 7);
    kv.get("in_span").instrument(request).await.unwrap();
    kv.get("outside").await.unwrap();
    kv.shutdown().await;
    drop(kv);

    let log = captured.text();
    for (op, subject, outcome) in [
        ("set", "key=present", "ok"),
        ("get", "key=present", "hit"),
        ("get", "key=absent", "miss"),
        ("set_if_absent", "key=lease", "applied"),
        ("set_if_absent", "key=present", "refused"),
        ("exists", "key=lease", "hit"),
        ("exists", "key=nothing", "miss"),
        ("compare_and_set", "key=cas", "applied"),
        ("compare_and_set", "key=cas-refused", "refused"),
        ("list_push", "key=text", "wrong_type"),
        ("incr", "key=text", "wrong_type"),
        ("get_del", "key=absent", "miss"),
        ("wait_for", "key=later", "waiting"),
        ("wait_for", "key=present", "ok"),
        ("update", "key=present", "update_panicked"),
        ("shutdown", "", "ok"),
    ] {
        let line = line_of(&log, op, subject);
        assert!(line.contains(" DEBUG "), "{line}");
        assert!(
            line.contains(&format!(" outcome=\"{outcome}\" took_us=")),
            "expected outcome={outcome}: {line}"
        );
    }

    let warned: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("caught a panic in a closure"))
        .collect();
    assert_eq!(warned.len(), 1, "{log}");
    assert!(warned[0].contains(" WARN "), "{}", warned[0]);
    assert!(warned[0].contains("closure bug"), "{}", warned[0]);

    for event in [
        "ephemeral-kv owner task started",
        "ephemeral-kv owner task shutting down",
        "ephemeral-kv owner task stopped",
    ] {
        let lines: Vec<&str> = log.lines().filter(|line| line.contains(event)).collect();
        assert_eq!(lines.len(), 1, "{event} in {log}");
        assert!(lines[0].contains(" INFO "), "{}", lines[0]);
    }

    let in_span = line_of(&log, "get", "key=in_span");
    assert!(in_span.contains(" request{id=7}: "), "{in_span}");
    let outside = line_of(&log, "get", "key=outside");
    assert!(!outside.contains("request"), "{outside}");
}
