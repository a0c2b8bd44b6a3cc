//! The durable store (feature `durable`): what survives a restart, TTLs across one, the files it
//! refuses, and a failing disk. The conformance suite also runs on it
//! (`tests/conformance/`, `durable::<test>`), and `tests/durable_crash.rs` kills writers.
#![cfg(feature = "durable")]

use std::path::PathBuf;
use std::time::Duration;

use ephemeral_kv::{Durability, DurableErrorKind, KvError, KvHandle, Ttl};
use serde_json::json;

/// A fresh directory for one test, removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(test: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("ekv-durable-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }
    fn file(&self) -> PathBuf {
        self.0.join("kv.db")
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn kind(error: KvError) -> DurableErrorKind {
    match error {
        KvError::Durable { kind, .. } => kind,
        other => panic!("expected a durable error, got {other:?}"),
    }
}

async fn open(path: &PathBuf) -> KvHandle {
    KvHandle::builder().durable(path).await.unwrap()
}

#[tokio::test]
async fn values_lists_and_deletes_survive_a_restart() {
    let dir = Dir::new("restart");
    let kv = open(&dir.file()).await;
    kv.set("a", 1).await.unwrap();
    kv.set("b", json!({"x": [1, 2.5, "s"]})).await.unwrap();
    kv.set("gone", 3).await.unwrap();
    kv.delete("gone").await.unwrap();
    kv.list_push("l", [json!(1), json!(2), json!(3)])
        .await
        .unwrap();
    kv.list_pop_front("l", 1).await.unwrap();
    kv.incr("n", 5).await.unwrap();
    kv.mset([("m1", 10), ("m2", 20)]).await.unwrap();
    kv.transaction(|txn| {
        txn.set("t1", 1);
        txn.delete("m1");
    })
    .await
    .unwrap();
    kv.shutdown().await;

    let kv = open(&dir.file()).await;
    assert_eq!(kv.get("a").await.unwrap().as_deref(), Some(&json!(1)));
    assert_eq!(
        kv.get("b").await.unwrap().as_deref(),
        Some(&json!({"x": [1, 2.5, "s"]}))
    );
    assert_eq!(kv.get("gone").await.unwrap(), None);
    assert_eq!(kv.get("l").await.unwrap().as_deref(), Some(&json!([2, 3])));
    assert_eq!(kv.get("n").await.unwrap().as_deref(), Some(&json!(5)));
    assert_eq!(kv.get("m1").await.unwrap(), None);
    assert_eq!(kv.get("m2").await.unwrap().as_deref(), Some(&json!(20)));
    assert_eq!(kv.get("t1").await.unwrap().as_deref(), Some(&json!(1)));
    assert_eq!(kv.stats().await.unwrap().entries, 6);
    kv.shutdown().await;
}

#[tokio::test]
async fn interval_durability_commits_within_its_interval_and_on_shutdown() {
    let dir = Dir::new("interval");
    let kv = KvHandle::builder()
        .durability(Durability::Interval(Duration::from_millis(20)))
        .durable(dir.file())
        .await
        .unwrap();
    for i in 0..100 {
        kv.set(format!("k{i}"), i).await.unwrap();
    }
    kv.shutdown().await;
    let kv = open(&dir.file()).await;
    assert_eq!(kv.stats().await.unwrap().entries, 100);
    assert_eq!(kv.get("k99").await.unwrap().as_deref(), Some(&json!(99)));
    kv.shutdown().await;
}

/// On tokio's paused clock: under `Interval` (answered at once), as under `EveryBatch` a caller
/// waiting for a commit on the journal thread leaves the runtime idle, and the paused clock jumps
/// to the next timer (`docs/durability.md`).
#[tokio::test(start_paused = true)]
async fn ttls_are_kept_across_a_restart_as_wall_clock_deadlines() {
    let dir = Dir::new("ttl");
    let interval = Durability::Interval(Duration::from_millis(10));
    let kv = KvHandle::builder()
        .durability(interval)
        .durable(dir.file())
        .await
        .unwrap();
    kv.set("short", 1)
        .ttl(Duration::from_secs(10))
        .await
        .unwrap();
    kv.set("forever", 2).await.unwrap();
    kv.set("renewed", 3)
        .ttl(Duration::from_secs(1))
        .await
        .unwrap();
    kv.expire("renewed", Duration::from_secs(100))
        .await
        .unwrap();
    kv.set("persisted", 4)
        .ttl(Duration::from_secs(1))
        .await
        .unwrap();
    kv.persist("persisted").await.unwrap();
    // Deadlines are kept on the wall clock, which tokio's paused clock does not move: what is
    // left after the restart is the TTL less the real time it took.
    kv.shutdown().await;

    let kv = KvHandle::builder()
        .durability(interval)
        .durable(dir.file())
        .await
        .unwrap();
    match kv.ttl("short").await.unwrap() {
        Ttl::Expires(left) => assert!(
            left <= Duration::from_secs(10) && left > Duration::from_secs(9),
            "{left:?}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(kv.ttl("forever").await.unwrap(), Ttl::NoExpiry);
    assert_eq!(kv.ttl("persisted").await.unwrap(), Ttl::NoExpiry);
    assert!(
        matches!(kv.ttl("renewed").await.unwrap(), Ttl::Expires(left) if left > Duration::from_secs(95))
    );
    tokio::time::advance(Duration::from_secs(9)).await;
    assert_eq!(kv.get("short").await.unwrap().as_deref(), Some(&json!(1)));
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(kv.get("short").await.unwrap(), None);
    assert_eq!(kv.get("forever").await.unwrap().as_deref(), Some(&json!(2)));
    kv.shutdown().await;
}

#[tokio::test]
async fn a_key_that_expired_while_the_store_was_down_is_not_loaded() {
    let dir = Dir::new("expired-while-down");
    let kv = open(&dir.file()).await;
    kv.set("brief", 1)
        .ttl(Duration::from_millis(30))
        .await
        .unwrap();
    kv.set("kept", 2).await.unwrap();
    kv.shutdown().await;
    tokio::time::sleep(Duration::from_millis(60)).await;
    let kv = open(&dir.file()).await;
    assert_eq!(kv.stats().await.unwrap().entries, 1);
    assert_eq!(kv.get("brief").await.unwrap(), None);
    kv.shutdown().await;
}

#[tokio::test]
async fn a_second_store_on_the_same_file_is_refused_until_the_first_closes() {
    let dir = Dir::new("locked");
    let kv = open(&dir.file()).await;
    kv.set("a", 1).await.unwrap();
    let refused = KvHandle::builder().durable(dir.file()).await.unwrap_err();
    assert!(refused.to_string().contains("another store"), "{refused}");
    assert_eq!(kind(refused), DurableErrorKind::Locked);
    assert_eq!(kv.get("a").await.unwrap().as_deref(), Some(&json!(1)));
    kv.shutdown().await;
    let kv = open(&dir.file()).await;
    assert_eq!(kv.get("a").await.unwrap().as_deref(), Some(&json!(1)));
    kv.shutdown().await;
}

/// Dropping the last handle closes the file on the owner task, soon after: a `durable(path)` on
/// the same file meanwhile waits for that close rather than being refused as `Locked`.
#[tokio::test]
async fn dropping_the_last_handle_then_reopening_at_once_finds_the_file_released() {
    let dir = Dir::new("drop-reopen");
    for round in 0..20 {
        let kv = open(&dir.file()).await;
        assert_eq!(
            kv.get("round").await.unwrap().as_deref(),
            (round > 0).then(|| json!(round - 1)).as_ref()
        );
        kv.set("round", round).await.unwrap();
        drop(kv);
    }
}

/// The same on a runtime with worker threads, the last handle dropped from another task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_handle_on_another_task_then_reopening_finds_the_file_released() {
    let dir = Dir::new("drop-reopen-mt");
    for round in 0..20 {
        let kv = open(&dir.file()).await;
        assert_eq!(
            kv.get("round").await.unwrap().as_deref(),
            (round > 0).then(|| json!(round - 1)).as_ref()
        );
        kv.set("round", round).await.unwrap();
        tokio::spawn(async move { drop(kv) }).await.unwrap();
    }
}

/// `shutdown().await` returns once the file is closed: another opener, even one that does not
/// wait (another process, here a plain SQLite connection asking for a write lock at once), finds
/// it free.
#[tokio::test]
async fn shutdown_returns_once_the_file_is_closed() {
    let dir = Dir::new("shutdown-closed");
    for round in 0..10 {
        let kv = open(&dir.file()).await;
        kv.set("round", round).await.unwrap();
        kv.shutdown().await;
        let conn = rusqlite::Connection::open(dir.file()).unwrap();
        conn.busy_timeout(Duration::ZERO).unwrap();
        conn.execute_batch("BEGIN EXCLUSIVE; COMMIT;").unwrap();
    }
}

/// Under `EveryBatch` a waiting pop's reply is relayed by the owner until its commit; a caller
/// that stopped waiting is still seen as gone by the next push, and its pop takes nothing (rule
/// 27, as without a journal).
#[tokio::test]
async fn under_every_batch_a_dropped_waiting_pop_takes_nothing() {
    let dir = Dir::new("dropped-pop");
    let kv = open(&dir.file()).await;
    for round in 0..10 {
        let waiter = {
            let kv = kv.clone();
            tokio::spawn(async move {
                kv.list_pop_front("jobs", 1)
                    .wait(Duration::from_secs(60))
                    .await
            })
        };
        let parked = std::time::Instant::now();
        while kv.stats().await.unwrap().watchers == 0 {
            assert!(parked.elapsed() < Duration::from_secs(10), "never parked");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        waiter.abort();
        let _ = waiter.await;
        kv.list_push("jobs", [json!(round)]).await.unwrap();
        assert_eq!(
            kv.list_pop_all("jobs").await.unwrap(),
            [json!(round)],
            "round {round}"
        );
    }
    kv.shutdown().await;
}

/// Writes `bytes` at `offset` of the file.
fn patch(path: &PathBuf, offset: usize, bytes: &[u8]) {
    let mut data = std::fs::read(path).unwrap();
    data[offset..offset + bytes.len()].copy_from_slice(bytes);
    std::fs::write(path, data).unwrap();
}

#[tokio::test]
async fn files_that_are_not_this_crates_or_newer_or_corrupt_are_refused_and_left_alone() {
    let dir = Dir::new("refused");
    let path = dir.file();

    std::fs::write(
        &path,
        b"not a database, just some text that is long enough".repeat(100),
    )
    .unwrap();
    let before = std::fs::read(&path).unwrap();
    let refused = KvHandle::builder().durable(&path).await.unwrap_err();
    assert_eq!(kind(refused), DurableErrorKind::NotOurs);
    assert_eq!(std::fs::read(&path).unwrap(), before, "left as it was");

    std::fs::remove_file(&path).unwrap();
    let kv = open(&path).await;
    kv.set("a", 1).await.unwrap();
    kv.shutdown().await;
    // SQLite's header: user_version at byte 60, application_id at 68 (big-endian).
    patch(&path, 60, &2i32.to_be_bytes());
    let refused = KvHandle::builder().durable(&path).await.unwrap_err();
    assert!(refused.to_string().contains("newer"), "{refused}");
    assert_eq!(kind(refused), DurableErrorKind::NewerFormat);
    patch(&path, 60, &1i32.to_be_bytes());
    patch(&path, 68, &7i32.to_be_bytes());
    let refused = KvHandle::builder().durable(&path).await.unwrap_err();
    assert_eq!(kind(refused), DurableErrorKind::NotOurs);
    patch(&path, 68, &0x454B_5631i32.to_be_bytes());
    let kv = open(&path).await;
    assert_eq!(kv.get("a").await.unwrap().as_deref(), Some(&json!(1)));
    kv.shutdown().await;
}

#[tokio::test]
async fn a_file_with_more_keys_than_max_entries_is_refused() {
    let dir = Dir::new("too-many");
    let kv = open(&dir.file()).await;
    kv.mset([("a", 1), ("b", 2), ("c", 3)]).await.unwrap();
    kv.shutdown().await;
    let refused = KvHandle::builder()
        .max_entries(2)
        .durable(dir.file())
        .await
        .unwrap_err();
    assert_eq!(kind(refused), DurableErrorKind::TooManyKeys);
    let kv = KvHandle::builder()
        .max_entries(3)
        .durable(dir.file())
        .await
        .unwrap();
    assert!(matches!(kv.set("d", 4).await, Err(KvError::Full { .. })));
    kv.shutdown().await;
}

#[tokio::test]
async fn a_watch_after_a_restart_is_a_fresh_feed() {
    let dir = Dir::new("watch");
    let kv = open(&dir.file()).await;
    kv.set("a", 1).await.unwrap();
    kv.shutdown().await;
    let kv = open(&dir.file()).await;
    let mut feed = kv.watch("").await.unwrap();
    kv.set("a", 2).await.unwrap();
    let event = futures::StreamExt::next(&mut feed).await.unwrap().unwrap();
    assert_eq!(
        event,
        ephemeral_kv::WatchEvent::Set {
            key: "a".into(),
            value: std::sync::Arc::new(json!(2))
        }
    );
    kv.shutdown().await;
}
