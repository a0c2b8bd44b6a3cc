//! What only the Redis backend has to prove, beyond the rules of `docs/rules.md` that the rest of
//! this suite runs on it: separate handles (as separate processes would build them) share one
//! store (rules 16 and 15/18/19 across clients), the server can die and come back, optimistic
//! calls give up under sustained contention (rules 18 and 19 on Redis, see `docs/redis.md`), and
//! foreign data never panics. Built with `--features redis`, against a `redis-server` of each
//! test's own; says "skipped" when there is none.
//!
//! Real time is used here (Redis runs on its own clock); waits are kept short.

use std::future::IntoFuture;
use std::time::Duration;

use ephemeral_kv::{KvError, KvHandle};
use serde_json::json;
use tokio::time::timeout;

use crate::support::races;
use crate::support::redis_server::{on_path, RedisServer};

/// Long enough for any call on a healthy or dead server (the handle gives up after about two
/// seconds); a call that takes longer hangs.
const NO_HANG: Duration = Duration::from_secs(5);

async fn connect(server: &RedisServer, prefix: &str) -> KvHandle {
    KvHandle::builder()
        .prefix(prefix)
        .redis(server.url())
        .await
        .expect("connect to the test's redis-server")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handles_built_separately_share_one_store() {
    let Some(server) = RedisServer::start("two_handles_built_separately_share_one_store").await
    else {
        return;
    };
    let a = connect(&server, "app:").await;
    let b = connect(&server, "app:").await;
    let elsewhere = connect(&server, "other:").await;

    // Leases exclude each other across handles, and free themselves.
    assert!(a
        .set_if_absent("lock:job", "a")
        .ttl(Duration::from_millis(300))
        .await
        .unwrap());
    assert!(!b.set_if_absent("lock:job", "b").await.unwrap());
    assert!(elsewhere.set_if_absent("lock:job", "x").await.unwrap()); // another namespace
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(b.set_if_absent("lock:job", "b").await.unwrap());

    // Many workers on both handles race for one lease: exactly one wins.
    let mut racers = Vec::new();
    for worker in 0..32 {
        let kv = if worker % 2 == 0 {
            a.clone()
        } else {
            b.clone()
        };
        racers.push(tokio::spawn(async move {
            kv.set_if_absent("lock:race", worker).await.unwrap()
        }));
    }
    let mut winners = 0;
    for racer in racers {
        winners += usize::from(racer.await.unwrap());
    }
    assert_eq!(winners, 1);

    // Inbox items pushed through both handles are popped exactly once, and no increment is
    // lost, optimistic ones included.
    races::inbox_and_counters(&[a, b], 8, 25).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_dies_gives_errors_and_the_handle_recovers() {
    let Some(mut server) =
        RedisServer::start("a_server_that_dies_gives_errors_and_the_handle_recovers").await
    else {
        return;
    };
    let kv = connect(&server, "fault:").await;
    kv.set("k", 1).await.unwrap();
    assert_eq!(kv.incr("n", 1).await.unwrap(), 1);

    // Load running while the server dies: every call ends, with a value or an error.
    let mut load = Vec::new();
    for worker in 0..16 {
        let kv = kv.clone();
        load.push(tokio::spawn(async move {
            let mut errors = 0;
            for i in 0..40 {
                let call = kv.set(format!("w{worker}:{i}"), i).into_future();
                match timeout(NO_HANG, call).await.expect("a call hung") {
                    Ok(()) => {}
                    Err(KvError::Backend { .. }) => errors += 1,
                    Err(other) => panic!("unexpected error: {other}"),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            errors
        }));
    }
    tokio::time::sleep(Duration::from_millis(30)).await;
    server.kill();

    // While it is down, every kind of call fails with a clear error, and none hangs.
    let down = [
        timeout(NO_HANG, kv.get("k"))
            .await
            .expect("get hung")
            .map(drop),
        timeout(NO_HANG, kv.incr("n", 1).into_future())
            .await
            .expect("incr hung")
            .map(drop),
        timeout(NO_HANG, kv.update("k", |_| Some(json!(2))))
            .await
            .expect("update hung")
            .map(drop),
        timeout(NO_HANG, kv.transaction(|txn| txn.set("k", 3)))
            .await
            .expect("transaction hung"),
        timeout(NO_HANG, kv.scan_prefix("").into_future())
            .await
            .expect("scan hung")
            .map(drop),
    ];
    for result in down {
        match result {
            Err(KvError::Backend { message }) => assert!(!message.is_empty()),
            other => panic!("expected a backend error, got {other:?}"),
        }
    }
    let mut errors = 0;
    for task in load {
        errors += task.await.unwrap();
    }
    assert!(errors > 0, "the load saw the server die");

    // Back on the same port (empty: it never saves), the same handle works again, scripts
    // included (the server lost them: NOSCRIPT, reload, retry).
    server.restart().await;
    let mut recovered = false;
    for _ in 0..50 {
        if let Ok(Ok(())) = timeout(NO_HANG, kv.set("k", 5).into_future()).await {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(recovered, "the handle did not recover after the restart");
    assert_eq!(kv.get("k").await.unwrap().as_deref(), Some(&json!(5)));
    assert_eq!(kv.incr("n", 1).await.unwrap(), 1);
    let list = kv
        .list_append_unique("l", [json!({"id": 1})])
        .await
        .unwrap();
    assert_eq!(list, vec![json!({"id": 1})]);
    assert_eq!(
        kv.update("k", |_| Some(json!(6))).await.unwrap().as_deref(),
        Some(&json!(6))
    );
}

#[tokio::test]
async fn connecting_to_no_server_is_a_clear_error() {
    let Some(mut server) = RedisServer::start("connecting_to_no_server_is_a_clear_error").await
    else {
        return;
    };
    let url = server.url();
    server.kill();
    let result = timeout(NO_HANG, KvHandle::builder().redis(&url))
        .await
        .expect("connect hung");
    assert!(matches!(result, Err(KvError::Backend { .. })));
    let bad = KvHandle::builder().redis("not a url").await;
    assert!(
        matches!(bad, Err(KvError::Backend { message }) if message.contains("invalid Redis URL"))
    );
}

#[tokio::test]
async fn optimistic_calls_give_up_under_sustained_contention() {
    let Some(server) =
        RedisServer::start("optimistic_calls_give_up_under_sustained_contention").await
    else {
        return;
    };
    if !on_path("redis-cli") {
        println!("skipped: redis-cli not on PATH");
        return;
    }
    let kv = connect(&server, "").await;
    kv.set("hot", 0).await.unwrap();
    // Every run of the closure changes the key behind the transaction's back (another client,
    // synchronously), so every EXEC is refused.
    let port = server.url().rsplit(':').next().unwrap().to_owned();
    let meddle = move || {
        let status = std::process::Command::new("redis-cli")
            .args(["-p", &port, "INCR", "hot"])
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
    };
    let update_meddle = meddle.clone();
    let result = kv
        .update("hot", move |cur| {
            update_meddle();
            cur.cloned()
        })
        .await;
    assert!(matches!(
        result,
        Err(KvError::Contended {
            op: "update",
            attempts: 16,
            ..
        })
    ));
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = runs.clone();
    let result = kv
        .transaction(move |txn| {
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if txn.get("hot").is_some() {
                meddle();
            }
            txn.set("other", 1);
        })
        .await;
    assert!(matches!(
        result,
        Err(KvError::Contended {
            op: "transaction",
            attempts: 16,
            ..
        })
    ));
    // Each attempt: one run to learn the keys, one with them fetched.
    assert_eq!(runs.load(std::sync::atomic::Ordering::Relaxed), 32);
    assert_eq!(kv.get("other").await.unwrap(), None);
    assert_eq!(kv.get("hot").await.unwrap().as_deref(), Some(&json!(32)));
}

#[tokio::test]
async fn foreign_data_gives_errors_not_panics() {
    let Some(server) = RedisServer::start("foreign_data_gives_errors_not_panics").await else {
        return;
    };
    if !on_path("redis-cli") {
        println!("skipped: redis-cli not on PATH");
        return;
    }
    let port = server.url().rsplit(':').next().unwrap().to_owned();
    let cli = |args: &[&str]| {
        let status = std::process::Command::new("redis-cli")
            .args(["-p", &port])
            .args(args)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
    };
    cli(&["SET", "text", "not json"]);
    cli(&["HSET", "hash", "f", "v"]);
    let kv = connect(&server, "").await;
    assert!(matches!(kv.get("text").await, Err(KvError::Backend { .. })));
    assert!(matches!(kv.get("hash").await, Err(KvError::Backend { .. })));
    assert!(matches!(
        kv.list_append_unique("text", [json!({"id": 1})]).await,
        Err(KvError::WrongType {
            found: "text that is not JSON",
            ..
        })
    ));
    assert!(matches!(
        kv.incr("hash", 1).await,
        Err(KvError::Backend { .. })
    ));
    // `list_pop_all` decodes the value before it removes it: text that does not decode is an
    // error, and is left in place.
    assert!(matches!(
        kv.list_pop_all("text").await,
        Err(KvError::Backend { .. })
    ));
    assert!(kv.exists("text").await.unwrap());
    // The store keeps serving.
    kv.set("fine", 1).await.unwrap();
    assert_eq!(kv.get("fine").await.unwrap().as_deref(), Some(&json!(1)));
}
