//! The durable store under a crash and a full disk, each in a child process: this test binary
//! runs itself again with `EKV_CHILD` set, and only the child half of a test then does anything.
//!
//! - `sigkill_mid_load_loses_no_answered_write_and_half_applies_nothing`: a child writes from 64
//!   tasks under `EveryBatch`, printing each answered write; the parent kills it with SIGKILL
//!   after some number of answers (several kill points), reopens the file and finds every
//!   answered write, and every `mset` and `transaction` whole or not at all.
//!   Round 0 also checks that a second process is refused the file while the child has it.
//! - `a_full_disk_fails_the_write_and_refuses_calls_after_it`: the child runs under a file-size
//!   limit (`ulimit -f`, with `SIGXFSZ` ignored, so a write past it fails as on a full disk).
//! - `an_answered_blocking_pop_is_on_disk`: a child's waiting pop is served by a push, and the
//!   child aborts the moment the pop is answered; the reopened file has the item gone (else a
//!   crash would hand the same job out again).
#![cfg(all(feature = "durable", unix))]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ephemeral_kv::{DurableErrorKind, KvError, KvHandle};
use serde_json::json;

const CHILD: &str = "EKV_CHILD";

fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ekv-crash-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// This test binary, running only `test`, with `EKV_CHILD=path`.
fn child(test: &str, path: &Path) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    command
}

/// The child's half: writes until killed, printing each answered write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_writer() {
    let Some(path) = std::env::var_os(CHILD) else {
        return; // run as a plain test: nothing to do
    };
    let kv = KvHandle::builder()
        .durable(PathBuf::from(path))
        .await
        .unwrap();
    // A line of its own: the harness's "test child_writer ... " has no newline.
    println!("\nopen");
    let writers: Vec<_> = (0..64)
        .map(|w| {
            let kv = kv.clone();
            tokio::spawn(async move {
                for j in 0u64.. {
                    match j % 3 {
                        0 => {
                            kv.set(format!("s:{w}:{j}"), j).await.unwrap();
                            println!("s:{w}:{j} {j}");
                        }
                        1 => {
                            let entries =
                                [(format!("m:{w}:{j}:x"), j), (format!("m:{w}:{j}:y"), j)];
                            kv.mset(entries).await.unwrap();
                            println!("m:{w}:{j}:x {j}");
                            println!("m:{w}:{j}:y {j}");
                        }
                        _ => {
                            kv.transaction(move |txn| {
                                txn.set(format!("t:{w}:{j}:a"), j);
                                txn.set(format!("t:{w}:{j}:b"), j);
                                txn.delete(format!("s:{w}:{}", j - 2));
                            })
                            .await
                            .unwrap();
                            println!("t:{w}:{j}:a {j}");
                            println!("t:{w}:{j}:b {j}");
                            println!("s:{w}:{} gone", j - 2);
                        }
                    }
                }
            })
        })
        .collect();
    for writer in writers {
        let _ = writer.await;
    }
}

#[tokio::test]
async fn sigkill_mid_load_loses_no_answered_write_and_half_applies_nothing() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let dir = temp_dir("sigkill");
    let started = Instant::now();
    for (round, kill_after) in [1usize, 50, 300, 1000, 3000].into_iter().enumerate() {
        let path = dir.join(format!("kv{round}.db"));
        let mut writer = child("child_writer", &path).spawn().unwrap();
        let mut lines = BufReader::new(writer.stdout.take().unwrap()).lines();
        // The test harness's own lines come first.
        let opened = lines
            .by_ref()
            .map_while(Result::ok)
            .any(|line| line == "open");
        assert!(opened, "the writer did not start");
        if round == 0 {
            // One store per file across processes too.
            let refused = KvHandle::builder().durable(&path).await.unwrap_err();
            assert!(
                matches!(
                    refused,
                    KvError::Durable {
                        kind: DurableErrorKind::Locked,
                        ..
                    }
                ),
                "{refused:?}"
            );
        }
        let mut answered = Vec::new();
        while answered.len() < kill_after {
            match lines.next() {
                Some(line) => answered.push(line.unwrap()),
                None => panic!("the writer ended early"),
            }
        }
        writer.kill().unwrap(); // SIGKILL
                                // What it printed before it died was answered too.
        answered.extend(lines.map_while(Result::ok));
        let _ = writer.wait();

        let kv = KvHandle::builder().durable(&path).await.unwrap();
        // Per key, the last answered state (a transaction deletes a key set earlier).
        let mut expected = std::collections::BTreeMap::new();
        for line in &answered {
            // A line cut by the kill has no value.
            if let Some((key, value)) = line.split_once(' ') {
                expected.insert(key, value);
            }
        }
        let mut lost = Vec::new();
        for (key, value) in expected {
            let line = format!("{key} {value}");
            let found = kv.get(key).await.unwrap();
            let ok = match value {
                "gone" => found.is_none(),
                value => match value.parse::<u64>() {
                    Ok(j) if found.is_none() && key.starts_with("s:") => {
                        // Deleted by the writer's next transaction, committed but not yet
                        // answered when the kill came: allowed, if that transaction is whole.
                        let w = key.split(':').nth(1).unwrap();
                        kv.get(format!("t:{w}:{}:a", j + 2))
                            .await
                            .unwrap()
                            .is_some()
                    }
                    Ok(j) => found.as_deref() == Some(&json!(j)),
                    Err(_) => false,
                },
            };
            if !ok {
                lost.push(format!("{line}: found {found:?}"));
            }
        }
        assert!(
            lost.is_empty(),
            "round {round}: answered but not on disk: {lost:?}"
        );
        // Whole or not at all: every mset's pair and every transaction's pair.
        for (prefix, ends) in [("m:", [":x", ":y"]), ("t:", [":a", ":b"])] {
            for key in kv.scan_prefix(prefix).await.unwrap() {
                let stem = key
                    .strip_suffix(ends[0])
                    .or_else(|| key.strip_suffix(ends[1]));
                let stem = stem.unwrap();
                let a = kv.get(format!("{stem}{}", ends[0])).await.unwrap();
                let b = kv.get(format!("{stem}{}", ends[1])).await.unwrap();
                assert_eq!(a, b, "round {round}: half of {stem}");
            }
        }
        kv.shutdown().await;
        eprintln!(
            "round {round}: killed after {} answers; all found",
            answered.len()
        );
    }
    assert!(started.elapsed() < Duration::from_secs(60));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The child's half: writes 1 KB values until a write fails, then shows what calls get.
#[tokio::test]
async fn child_full_disk() {
    let Some(path) = std::env::var_os(CHILD) else {
        return;
    };
    let kv = KvHandle::builder()
        .durable(PathBuf::from(path))
        .await
        .unwrap();
    println!();
    let big = "x".repeat(1000);
    for i in 0.. {
        match kv.set(format!("k{i}"), &big).await {
            Ok(()) => println!("ok k{i}"),
            Err(KvError::Durable {
                kind: DurableErrorKind::Commit,
                ..
            }) => {
                println!("failed k{i}");
                break;
            }
            Err(other) => panic!("{other}"),
        }
    }
    match kv.get("k0").await {
        Err(KvError::Durable {
            kind: DurableErrorKind::Commit,
            ..
        }) => println!("refused get"),
        other => println!("get gave {other:?}"),
    }
    match kv.set("after", 1).await {
        Err(KvError::Durable {
            kind: DurableErrorKind::Commit,
            ..
        }) => println!("refused set"),
        other => println!("set gave {other:?}"),
    }
    kv.shutdown().await;
    println!("done");
}

#[tokio::test]
async fn a_full_disk_fails_the_write_and_refuses_calls_after_it() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let dir = temp_dir("full");
    let path = dir.join("kv.db");
    let exe = std::env::current_exe().unwrap();
    // 400 blocks of 512 bytes: the file and its log may not grow past 200 KB.
    let output = Command::new("sh")
        .arg("-c")
        .arg(r#"trap '' XFSZ; ulimit -f 400; exec "$0" child_full_disk --exact --nocapture --test-threads=1"#)
        .arg(&exe)
        .env(CHILD, &path)
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let ok: Vec<&str> = lines
        .iter()
        .filter_map(|line| line.strip_prefix("ok "))
        .collect();
    let failed = lines
        .iter()
        .find_map(|line| line.strip_prefix("failed "))
        .unwrap_or_else(|| panic!("no write failed: {stdout}"));
    assert!(!ok.is_empty(), "{stdout}");
    assert!(lines.contains(&"refused get"), "{stdout}");
    assert!(lines.contains(&"refused set"), "{stdout}");
    assert!(lines.contains(&"done"), "{stdout}");

    // Reopened without the limit: every answered write, and not the failed one.
    let kv = KvHandle::builder().durable(&path).await.unwrap();
    for key in &ok {
        assert_eq!(
            kv.get(*key).await.unwrap().as_deref(),
            Some(&json!("x".repeat(1000))),
            "{key}"
        );
    }
    assert_eq!(kv.get(failed).await.unwrap(), None);
    assert_eq!(kv.get("after").await.unwrap(), None);
    assert_eq!(
        kv.scan_prefix("").await.unwrap().len(),
        ok.len(),
        "{stdout} {:?}",
        kv.scan_prefix("").await.unwrap()
    );
    kv.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The child's half: a pop waits on an empty list, a push of `x` and `y` serves it, and the
/// process aborts as soon as the pop is answered, before anything else can reach the disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_pop() {
    let Some(path) = std::env::var_os(CHILD) else {
        return;
    };
    let kv = KvHandle::builder()
        .durable(PathBuf::from(path))
        .await
        .unwrap();
    let waiter = {
        let kv = kv.clone();
        tokio::spawn(async move {
            let popped = kv
                .list_pop_front("jobs", 1)
                .wait(Duration::from_secs(30))
                .await
                .unwrap();
            println!("\npopped {popped:?}");
            std::process::abort();
        })
    };
    // The pop is parked once it counts as a watcher.
    let parked = Instant::now();
    while kv.stats().await.unwrap().watchers == 0 {
        assert!(
            parked.elapsed() < Duration::from_secs(10),
            "the pop never parked"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let _ = kv.list_push("jobs", [json!("x"), json!("y")]).await;
    let _ = waiter.await;
}

#[tokio::test]
async fn an_answered_blocking_pop_is_on_disk() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let dir = temp_dir("pop");
    for round in 0..5 {
        let path = dir.join(format!("kv{round}.db"));
        let output = child("child_pop", &path).output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            stdout.lines().any(|line| line == r#"popped [String("x")]"#),
            "round {round}: {stdout}"
        );
        let kv = KvHandle::builder().durable(&path).await.unwrap();
        // The pop's removal was committed (with the push it answered): `x` is not handed out
        // again.
        assert_eq!(
            kv.get("jobs").await.unwrap().as_deref(),
            Some(&json!(["y"])),
            "round {round}"
        );
        kv.shutdown().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}
