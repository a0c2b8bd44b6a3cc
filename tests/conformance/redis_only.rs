//! What only the Redis backend has to prove, beyond the rules of `docs/rules.md` that the rest of
//! this suite runs on it: separate handles (as separate processes would build them) share one
//! store (rules 16 and 15/18/19 across clients), the server can die and come back, optimistic
//! calls give up under sustained contention (rules 18 and 19 on Redis, see `docs/redis.md`), as
//! does a transaction that reads a new key on every run, and foreign data never panics: text that
//! is not JSON stays in place when `get_del` or `list_pop_all` cannot decode it (rules 5 and 20),
//! `compare_and_set` compares foreign text as JSON (rule 17), and text is read up to `MAX_DEPTH`
//! levels and refused, unparsed, past it. Built with `--features redis`, against a `redis-server`
//! of each test's own; says "skipped" when there is none.
//!
//! Real time is used here (Redis runs on its own clock); waits are kept short.

use std::future::IntoFuture;
use std::time::Duration;

use ephemeral_kv::{BackendErrorKind, KvError, KvHandle};
use serde_json::json;
use tokio::time::timeout;

use crate::support::races;
use crate::support::redis_server::{available, RedisServer};

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
            Err(error @ KvError::Backend { .. }) => {
                // A server that is down is a lost connection or a timeout, never a refusal, and
                // the redis client's error is kept as the cause.
                assert!(error.is_connection() || error.is_timeout(), "{error:?}");
                assert!(std::error::Error::source(&error).is_some(), "{error:?}");
            }
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

/// A RESP3 connection is refused before anything is sent: the connection manager would reconnect
/// it silently between `WATCH` and `EXEC`, and an optimistic call would then overwrite another
/// client's write instead of retrying.
#[tokio::test]
async fn a_resp3_url_is_refused_with_a_clear_error() {
    let Some(server) = RedisServer::start("a_resp3_url_is_refused_with_a_clear_error").await else {
        return;
    };
    let refused = KvHandle::builder()
        .redis(format!("{}/?protocol=resp3", server.url()))
        .await;
    match refused {
        Err(KvError::Backend { message, .. }) => assert!(message.contains("RESP3"), "{message}"),
        other => panic!("expected a Backend error, got {other:?}"),
    }
    let kv = connect(&server, "resp2:").await; // the same server over RESP2 works
    kv.set("k", 1).await.unwrap();
    assert_eq!(kv.get("k").await.unwrap().as_deref(), Some(&json!(1)));
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
    let no_server = result.unwrap_err();
    assert!(
        no_server.is_connection() || no_server.is_timeout(),
        "{no_server:?}"
    );
    let bad = KvHandle::builder().redis("not a url").await;
    assert!(
        matches!(&bad, Err(KvError::Backend { message, .. }) if message.contains("invalid Redis URL"))
    );
    assert_eq!(
        bad.unwrap_err().backend_kind(),
        Some(BackendErrorKind::Config)
    );
}

#[tokio::test]
async fn optimistic_calls_give_up_under_sustained_contention() {
    let Some(server) =
        RedisServer::start("optimistic_calls_give_up_under_sustained_contention").await
    else {
        return;
    };
    if !available(
        "redis-cli",
        "optimistic_calls_give_up_under_sustained_contention",
    ) {
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
    if !available("redis-cli", "foreign_data_gives_errors_not_panics") {
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
    fn message<T: std::fmt::Debug>(result: Result<T, KvError>) -> String {
        match result {
            Err(KvError::Backend { message, .. }) => message,
            other => panic!("expected a Backend error, got {other:?}"),
        }
    }
    assert_eq!(
        message(kv.get("text").await),
        "key `text` holds text that is not JSON: expected ident at line 1 column 2"
    );
    // The server's own refusal, naming the key it was about (rule 13).
    let wrong_kind = "\"WRONGTYPE\": Operation against a key holding the wrong kind of value";
    assert_eq!(
        message(kv.get("hash").await),
        format!("redis refused the command on key `hash`: {wrong_kind}")
    );
    // Callers can tell the two apart without reading the message.
    let kind = |result: Result<Option<std::sync::Arc<serde_json::Value>>, KvError>| {
        result.unwrap_err().backend_kind()
    };
    assert_eq!(kind(kv.get("text").await), Some(BackendErrorKind::Data));
    assert_eq!(kind(kv.get("hash").await), Some(BackendErrorKind::Refused));
    assert!(kv.get("hash").await.unwrap_err().is_refused());
    assert!(matches!(
        kv.list_append_unique("text", [json!({"id": 1})]).await,
        Err(KvError::WrongType {
            found: "text that is not JSON",
            ..
        })
    ));
    assert!(message(kv.incr("hash", 1).await).starts_with(&format!(
        "redis refused the command on key `hash`: {wrong_kind}"
    )));
    // `list_pop_all` decodes the value before it removes it: text that does not decode is an
    // error, and is left in place.
    assert_eq!(
        message(kv.list_pop_all("text").await),
        "key `text` holds text that is not JSON: expected ident at line 1 column 2"
    );
    assert!(kv.exists("text").await.unwrap());
    // The store keeps serving.
    kv.set("fine", 1).await.unwrap();
    assert_eq!(kv.get("fine").await.unwrap().as_deref(), Some(&json!(1)));
}

/// Runs `redis-cli` against `server` with `args` (and `stdin`, for `-x`), and returns what it
/// printed, without the trailing newline.
fn redis_cli(server: &RedisServer, args: &[&str], stdin: Option<&[u8]>) -> String {
    use std::io::Write;
    let port = server.url().rsplit(':').next().unwrap().to_owned();
    let mut child = std::process::Command::new("redis-cli")
        .args(["-p", &port])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        input.write_all(bytes).unwrap();
    }
    drop(input);
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "redis-cli {args:?} failed");
    String::from_utf8(output.stdout)
        .unwrap()
        .trim_end_matches('\n')
        .to_owned()
}

/// A server and `redis-cli` to write foreign data with, or `None` (the test is skipped).
async fn server_with_cli(test: &str) -> Option<RedisServer> {
    let server = RedisServer::start(test).await?;
    if !available("redis-cli", test) {
        return None;
    }
    Some(server)
}

/// `get_del` and `list_pop_all` decode the value before they remove it (rules 5 and 20): text
/// that is not JSON is an error, and is still there afterwards, byte for byte.
#[tokio::test]
async fn get_del_and_list_pop_all_leave_text_that_is_not_json_in_place() {
    let Some(server) =
        server_with_cli("get_del_and_list_pop_all_leave_text_that_is_not_json_in_place").await
    else {
        return;
    };
    redis_cli(&server, &["SET", "text", "not json {"], None);
    redis_cli(&server, &["SET", "list", "[1, 2,"], None);
    let kv = connect(&server, "").await;
    for _ in 0..2 {
        match kv.get_del("text").await {
            Err(KvError::Backend { message, .. }) => {
                assert!(
                    message.contains("key `text` holds text that is not JSON"),
                    "{message}"
                )
            }
            other => panic!("expected a backend error, got {other:?}"),
        }
        assert!(matches!(
            kv.list_pop_all("list").await,
            Err(KvError::Backend { message, .. }) if message.contains("key `list`")
        ));
        assert!(matches!(
            kv.list_pop_all("text").await,
            Err(KvError::Backend { .. })
        ));
    }
    assert_eq!(redis_cli(&server, &["GET", "text"], None), "not json {");
    assert_eq!(redis_cli(&server, &["GET", "list"], None), "[1, 2,");
    assert!(kv.exists("text").await.unwrap());
    assert!(kv.exists("list").await.unwrap());
    // JSON written by another client is taken as usual.
    redis_cli(&server, &["SET", "fine", "[1, 2]"], None);
    assert_eq!(
        kv.list_pop_all("fine").await.unwrap(),
        vec![json!(1), json!(2)]
    );
    redis_cli(&server, &["SET", "fine", "{\"a\": 1}"], None);
    assert_eq!(kv.get_del("fine").await.unwrap(), Some(json!({"a": 1})));
    assert_eq!(redis_cli(&server, &["EXISTS", "fine"], None), "0");
}

/// Rule 17 on text written by another client: `compare_and_set` compares JSON values, not text,
/// so other spacing and field order still match, and a value that differs still does not.
#[tokio::test]
async fn compare_and_set_compares_foreign_text_as_json() {
    let Some(server) = server_with_cli("compare_and_set_compares_foreign_text_as_json").await
    else {
        return;
    };
    redis_cli(&server, &["SET", "k", "{\"b\": 1,  \"a\": 2}"], None);
    let kv = connect(&server, "").await;
    assert!(!kv
        .compare_and_set("k", Some(json!({"a": 2, "b": 2})), "no")
        .await
        .unwrap());
    assert_eq!(
        redis_cli(&server, &["GET", "k"], None),
        "{\"b\": 1,  \"a\": 2}"
    );
    assert!(kv
        .compare_and_set("k", Some(json!({"a": 2, "b": 1})), "swapped")
        .await
        .unwrap());
    assert_eq!(
        kv.get("k").await.unwrap().as_deref(),
        Some(&json!("swapped"))
    );
    // Text that is not JSON never matches: an error, and the text stays.
    redis_cli(&server, &["SET", "text", "not json"], None);
    assert!(matches!(
        kv.compare_and_set("text", Some(json!("not json")), 1).await,
        Err(KvError::Backend { .. })
    ));
    assert_eq!(redis_cli(&server, &["GET", "text"], None), "not json");
}

/// Rule 19 on Redis: a closure that reads a key it has not read before on every run (here, one
/// named after a counter it keeps) would fetch forever; the transaction gives up with `Contended`,
/// writes nothing, and the handle keeps serving.
#[tokio::test]
async fn a_transaction_that_reads_a_new_key_on_every_run_gives_up_with_contended() {
    let Some(server) =
        RedisServer::start("a_transaction_that_reads_a_new_key_on_every_run_gives_up").await
    else {
        return;
    };
    let kv = connect(&server, "app:").await;
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = runs.clone();
    let result = timeout(
        NO_HANG,
        kv.transaction(move |txn| {
            let run = counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let seen = txn.get(format!("key:{run}")).cloned();
            txn.set("written", 1);
            seen
        }),
    )
    .await
    .expect("the transaction did not give up");
    match result {
        Err(KvError::Contended { op, key, attempts }) => {
            assert_eq!((op, key.as_str(), attempts), ("transaction", "app:", 64));
        }
        other => panic!("expected Contended, got {other:?}"),
    }
    assert_eq!(runs.load(std::sync::atomic::Ordering::Relaxed), 64);
    assert_eq!(kv.get("written").await.unwrap(), None);
    // The handle keeps serving, transactions included.
    kv.set("k", 1).await.unwrap();
    assert_eq!(kv.get("k").await.unwrap().as_deref(), Some(&json!(1)));
    let read = kv
        .transaction(|txn| {
            txn.set("written", 2);
            txn.get("k").cloned()
        })
        .await
        .unwrap();
    assert_eq!(read, Some(json!(1)));
    assert_eq!(kv.get("written").await.unwrap().as_deref(), Some(&json!(2)));
}

/// Text written by another client is read up to `MAX_DEPTH` levels (one more than serde_json's own
/// limit) and refused past it, without parsing: text nested 100,000 levels deep is an error, not a
/// crash.
#[tokio::test]
async fn foreign_text_reads_up_to_max_depth_and_deeper_text_is_refused_unparsed() {
    let Some(server) =
        server_with_cli("foreign_text_reads_up_to_max_depth_and_deeper_text_is_refused").await
    else {
        return;
    };
    let nested_text = |levels: usize| format!("{}1{}", "[".repeat(levels), "]".repeat(levels));
    let deepest = nested_text(ephemeral_kv::MAX_DEPTH);
    redis_cli(&server, &["-x", "SET", "deepest"], Some(deepest.as_bytes()));
    redis_cli(
        &server,
        &["-x", "SET", "deeper"],
        Some(nested_text(ephemeral_kv::MAX_DEPTH + 1).as_bytes()),
    );
    redis_cli(
        &server,
        &["-x", "SET", "abyss"],
        Some(nested_text(100_000).as_bytes()),
    );
    let kv = connect(&server, "").await;
    let mut expected = json!(1);
    for _ in 0..ephemeral_kv::MAX_DEPTH {
        expected = serde_json::Value::Array(vec![expected]);
    }
    assert_eq!(kv.get("deepest").await.unwrap().as_deref(), Some(&expected));
    for key in ["deeper", "abyss"] {
        match kv.get(key).await {
            Err(KvError::Backend { message, .. }) => assert_eq!(
                message,
                format!("key `{key}` holds JSON nested deeper than 128 levels")
            ),
            other => panic!("expected a backend error, got {other:?}"),
        }
        assert!(matches!(
            kv.get_del(key).await,
            Err(KvError::Backend { .. })
        ));
        assert!(kv.exists(key).await.unwrap());
    }
    kv.set("fine", 1).await.unwrap();
    assert_eq!(kv.get("fine").await.unwrap().as_deref(), Some(&json!(1)));
}
