//! What only the Redis backend has to prove, beyond the rules of `docs/rules.md` that the rest of
//! this suite runs on it: separate handles (as separate processes would build them) share one
//! store (rules 16 and 15/18/19 across clients), the server can die and come back, optimistic
//! calls give up under sustained contention (rules 18 and 19 on Redis, see `docs/redis.md`), as
//! does a transaction that reads a new key on every run, and foreign data never panics: text that
//! is not JSON stays in place when `get_del` or `list_pop_all` cannot decode it (rules 5 and 20),
//! `compare_and_set` compares foreign text as JSON values (rule 17), and text is read up to `MAX_DEPTH`
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
    // included (the server lost them: `Function not found`, reload, retry).
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
    // A Redis type the layout never writes is refused by the script, naming the key (rule 13).
    let foreign = "key `hash` holds a Redis hash, which ephemeral-kv never writes";
    assert_eq!(message(kv.get("hash").await), foreign);
    // Data errors, both: the store holds something this crate cannot read, not a refusal.
    let kind = |result: Result<Option<std::sync::Arc<serde_json::Value>>, KvError>| {
        result.unwrap_err().backend_kind()
    };
    assert_eq!(kind(kv.get("text").await), Some(BackendErrorKind::Data));
    assert_eq!(kind(kv.get("hash").await), Some(BackendErrorKind::Data));
    assert!(!kv.get("hash").await.unwrap_err().is_refused());
    assert_eq!(
        message(kv.mget(["fine", "hash"]).await),
        foreign,
        "mget names the key"
    );
    assert!(matches!(
        kv.list_append_unique("text", [json!({"id": 1})]).await,
        Err(KvError::WrongType {
            found: "text that is not JSON",
            ..
        })
    ));
    assert_eq!(message(kv.incr("hash", 1).await), foreign);
    for result in [
        kv.list_push("hash", [1]).await.map(drop),
        kv.list_pop_front("hash", 1).await.map(drop),
        kv.get_del("hash").await.map(drop),
        kv.compare_and_set("hash", Some(json!(1)), 2)
            .await
            .map(drop),
    ] {
        assert_eq!(message(result), foreign);
    }
    assert_eq!(redis_cli_at(&port, &["HGET", "hash", "f"]), "v", "kept");
    // `list_pop_all` checks the value before it removes it (the script's strict checker):
    // text that is not JSON is an error, and is left in place.
    assert_eq!(
        message(kv.list_pop_all("text").await),
        "key `text` holds text that is not JSON: the value: unexpected character at byte 1"
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

/// `redis-cli -p port args..`: what it printed, without the trailing newline.
fn redis_cli_at(port: &str, args: &[&str]) -> String {
    let output = std::process::Command::new("redis-cli")
        .args(["-p", port])
        .args(args)
        .output()
        .unwrap();
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

/// Rule 17 on text written by another client: on Redis `compare_and_set` compares JSON values,
/// as in-process. The script swaps when the stored text is serde_json's compact text of
/// `expected` (one round trip), else answers with the stored text; equal JSON spelt otherwise by
/// another client (spaces, key order) is then sent again with that text as the expectation.
/// Unequal values, and text that is not JSON, never match, are kept, and are no error.
#[tokio::test]
async fn compare_and_set_compares_foreign_text_as_json() {
    let Some(server) = server_with_cli("compare_and_set_compares_foreign_text_as_json").await
    else {
        return;
    };
    redis_cli(&server, &["SET", "k", "{\"b\": 1,  \"a\": [2, 3]}"], None);
    let kv = connect(&server, "").await;
    // Another value, spelt the other client's way: no match, kept byte for byte.
    assert!(!kv
        .compare_and_set("k", Some(json!({"a": [2], "b": 1})), "no")
        .await
        .unwrap());
    assert_eq!(
        redis_cli(&server, &["GET", "k"], None),
        "{\"b\": 1,  \"a\": [2, 3]}"
    );
    // The same value, spelt otherwise: it matches, and the swap keeps the key's TTL.
    redis_cli(&server, &["PEXPIRE", "k", "600000"], None);
    assert!(kv
        .compare_and_set("k", Some(json!({"a": [2, 3], "b": 1})), "swapped")
        .await
        .unwrap());
    assert_eq!(redis_cli(&server, &["GET", "k"], None), "\"swapped\"");
    let left: u64 = redis_cli(&server, &["PTTL", "k"], None).parse().unwrap();
    assert!(left > 590_000 && left <= 600_000, "{left}");
    // The spelling this crate writes matches, whoever wrote it.
    redis_cli(&server, &["SET", "k", "{\"a\":2,\"b\":1}"], None);
    assert!(kv
        .compare_and_set("k", Some(json!({"b": 1, "a": 2})), "swapped")
        .await
        .unwrap());
    assert_eq!(
        kv.get("k").await.unwrap().as_deref(),
        Some(&json!("swapped"))
    );
    // A list pushed by another client, item by item, matches its joined text.
    redis_cli(&server, &["RPUSH", "l", "1", "{\"id\":2}"], None);
    assert!(kv
        .compare_and_set("l", Some(json!([1, {"id": 2}])), [3])
        .await
        .unwrap());
    assert_eq!(redis_cli(&server, &["LRANGE", "l", "0", "-1"], None), "3");
    // Text that is not JSON never matches: no error, and the text stays.
    redis_cli(&server, &["SET", "text", "not json"], None);
    assert!(!kv
        .compare_and_set("text", Some(json!("not json")), 1)
        .await
        .unwrap());
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

/// Rule 27 across processes, as a work queue: 4 workers, each on a handle of its own (as 4
/// processes would build them), take one job at a time from one shared inbox until it is empty.
/// `list_pop_front` is one script on Redis, done by the server in one step: every job is taken
/// exactly once, and no call fails (no retries, no `Contended`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_workers_on_separate_handles_take_every_job_exactly_once_without_errors() {
    let Some(server) = RedisServer::start("four_workers_take_every_job_exactly_once").await else {
        return;
    };
    const JOBS: i64 = 800;
    let producer = connect(&server, "queue:").await;
    for job in 0..JOBS {
        producer
            .list_push("inbox", [json!({"job": job})])
            .await
            .unwrap();
    }
    let mut workers = Vec::new();
    for _ in 0..4 {
        let kv = connect(&server, "queue:").await;
        workers.push(tokio::spawn(async move {
            let mut taken = Vec::new();
            loop {
                let jobs = kv.list_pop_front("inbox", 1).await.expect("no error");
                if jobs.is_empty() {
                    return taken;
                }
                assert_eq!(jobs.len(), 1);
                taken.push(jobs[0]["job"].as_i64().unwrap());
            }
        }));
    }
    let mut taken = Vec::new();
    let mut per_worker = Vec::new();
    for worker in workers {
        let jobs = worker.await.unwrap();
        per_worker.push(jobs.len());
        taken.extend(jobs);
    }
    taken.sort_unstable();
    assert_eq!(
        taken,
        (0..JOBS).collect::<Vec<_>>(),
        "every job exactly once"
    );
    assert!(
        !producer.exists("inbox").await.unwrap(),
        "the emptied list is gone"
    );
    assert_eq!(per_worker.len(), 4);
}

/// The same work queue while the server is killed and restarted (empty: the test's servers never
/// save), judged as Jepsen would: a call that failed with a connection error may or may not have
/// happened, so only acknowledged calls count. No job is ever taken twice; every job whose push
/// was sent after the restart is taken; calls fail only with connection errors or timeouts while
/// the server is down, and the handles work again afterwards. Jobs pushed before the restart and
/// not yet taken are lost with the server's memory (no persistence), which is not the queue's doing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_work_queue_across_a_server_restart_takes_no_job_twice_and_loses_none_acknowledged() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let Some(mut server) = RedisServer::start("a_work_queue_across_a_server_restart").await else {
        return;
    };
    const JOBS: i64 = 600;
    let restarted = Arc::new(AtomicBool::new(false));
    let producing = Arc::new(AtomicBool::new(true));
    let producer = {
        let kv = connect(&server, "queue:").await;
        let restarted = restarted.clone();
        let producing = producing.clone();
        tokio::spawn(async move {
            // The jobs whose push was sent after the restart and acknowledged: they must be taken.
            let mut must_be_taken = Vec::new();
            let mut failed = 0;
            for job in 0..JOBS {
                let after_restart = restarted.load(Ordering::SeqCst);
                let push = kv.list_push("inbox", [json!({"job": job})]).into_future();
                match timeout(NO_HANG, push).await.expect("list_push hung") {
                    Ok(_) if after_restart => must_be_taken.push(job),
                    Ok(_) => {}
                    Err(error) => {
                        assert!(error.is_connection() || error.is_timeout(), "{error:?}");
                        failed += 1;
                    }
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            producing.store(false, Ordering::SeqCst);
            (must_be_taken, failed)
        })
    };
    let mut workers = Vec::new();
    for _ in 0..4 {
        let kv = connect(&server, "queue:").await;
        let producing = producing.clone();
        workers.push(tokio::spawn(async move {
            let (mut taken, mut failed) = (Vec::new(), 0);
            loop {
                let done = !producing.load(Ordering::SeqCst);
                let pop = kv.list_pop_front("inbox", 1).into_future();
                match timeout(NO_HANG, pop).await.expect("list_pop_front hung") {
                    Ok(jobs) if jobs.is_empty() && done => return (taken, failed),
                    Ok(jobs) if jobs.is_empty() => {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    Ok(jobs) => taken.extend(jobs.iter().map(|job| job["job"].as_i64().unwrap())),
                    Err(error) => {
                        assert!(error.is_connection() || error.is_timeout(), "{error:?}");
                        failed += 1;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    server.restart().await;
    restarted.store(true, Ordering::SeqCst);
    let (must_be_taken, push_failures) = producer.await.unwrap();
    let mut taken = Vec::new();
    let mut pop_failures = 0;
    for worker in workers {
        let (jobs, failed) = worker.await.unwrap();
        taken.extend(jobs);
        pop_failures += failed;
    }
    let mut sorted = taken.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), taken.len(), "a job was taken twice");
    let missing: Vec<i64> = must_be_taken
        .iter()
        .filter(|job| sorted.binary_search(job).is_err())
        .copied()
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged jobs never taken: {missing:?}"
    );
    assert!(
        must_be_taken.len() > JOBS as usize / 4,
        "the run went on after the restart ({} jobs)",
        must_be_taken.len()
    );
    println!(
        "{} taken, {} acknowledged after the restart, {push_failures} pushes and \
         {pop_failures} pops failed with connection errors",
        taken.len(),
        must_be_taken.len()
    );
}

/// The layout is shared with other clients (`docs/redis.md`, "The data layout"): a job pushed with
/// `list_push` is one element of a Redis list, which `redis-cli LPOP` takes as that job's JSON; a
/// job `RPUSH`ed by `redis-cli` is taken by `list_pop_front`; `get` reads the whole list.
#[tokio::test]
async fn other_clients_share_the_work_queue_through_redis_list_commands() {
    let Some(server) = server_with_cli("other_clients_share_the_work_queue").await else {
        return;
    };
    let kv = connect(&server, "app:").await;
    let job = json!({"job": 7, "big": 9_007_199_254_740_993u64, "tags": [], "o": {}});
    kv.list_push("inbox", [job.clone(), json!("second")])
        .await
        .unwrap();
    let popped = redis_cli(&server, &["LPOP", "app:inbox"], None);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&popped).unwrap(),
        job,
        "exactly the job, big integers and empty containers included"
    );
    redis_cli(&server, &["RPUSH", "app:inbox", "{\"job\":8}"], None);
    assert_eq!(
        kv.get("inbox").await.unwrap().as_deref(),
        Some(&json!(["second", {"job": 8}]))
    );
    assert_eq!(
        kv.list_pop_front("inbox", 5).await.unwrap(),
        vec![json!("second"), json!({"job": 8})]
    );
    assert_eq!(redis_cli(&server, &["EXISTS", "app:inbox"], None), "0");
    // An element another client pushed that is not one JSON value is refused, and kept.
    redis_cli(&server, &["RPUSH", "app:inbox", "1,2"], None);
    assert!(matches!(
        kv.list_pop_front("inbox", 1).await,
        Err(KvError::Backend { kind: BackendErrorKind::Data, message, .. })
            if message.contains("key `app:inbox`")
    ));
    assert_eq!(redis_cli(&server, &["LLEN", "app:inbox"], None), "1");
}

/// The release before native lists stored a list as one JSON string. Such data is read as the
/// list it is, turned into a native list by the first list write (items byte for byte), and text
/// that only looks like a list is refused and kept, never misread.
#[tokio::test]
async fn lists_written_by_the_previous_release_are_read_or_refused_never_misread() {
    let Some(server) = server_with_cli("lists_written_by_the_previous_release").await else {
        return;
    };
    let kv = connect(&server, "").await;
    let old = "[{\"id\":1,\"s\":\"a,]\"}, 18446744073709551615, [2,3]]";
    for key in ["read", "pushed", "popped", "unique"] {
        redis_cli(&server, &["SET", key, old], None);
    }
    let list = json!([{"id": 1, "s": "a,]"}, 18446744073709551615u64, [2, 3]]);
    assert_eq!(kv.get("read").await.unwrap().as_deref(), Some(&list));
    assert_eq!(kv.mget(["read"]).await.unwrap()[0].as_deref(), Some(&list));
    assert_eq!(kv.list_push("pushed", [4]).await.unwrap(), 4);
    assert_eq!(redis_cli(&server, &["TYPE", "pushed"], None), "list");
    assert_eq!(
        redis_cli(&server, &["LINDEX", "pushed", "0"], None),
        "{\"id\":1,\"s\":\"a,]\"}"
    );
    redis_cli(&server, &["PEXPIRE", "popped", "60000"], None);
    assert_eq!(
        kv.list_pop_front("popped", 1).await.unwrap(),
        vec![json!({"id": 1, "s": "a,]"})]
    );
    assert!(matches!(
        kv.ttl("popped").await.unwrap(),
        ephemeral_kv::Ttl::Expires(_)
    ));
    assert_eq!(
        kv.list_append_unique("unique", [json!({"id": 1}), json!({"id": 2})])
            .await
            .unwrap()
            .len(),
        4
    );
    assert_eq!(
        kv.list_pop_all("read").await.unwrap(),
        list.as_array().unwrap().clone()
    );
    // Text that starts like a list but is not JSON: refused by every call, kept as it was.
    redis_cli(&server, &["SET", "broken", "[1, 2,"], None);
    assert!(matches!(
        kv.get("broken").await,
        Err(KvError::Backend { .. })
    ));
    for result in [
        kv.list_push("broken", [3]).await.map(drop),
        kv.list_pop_front("broken", 1).await.map(drop),
        kv.list_append_unique("broken", [json!({"id": 1})])
            .await
            .map(drop),
    ] {
        assert!(
            matches!(
                result,
                Err(KvError::WrongType {
                    found: "text that is not JSON",
                    ..
                })
            ),
            "{result:?}"
        );
    }
    assert_eq!(redis_cli(&server, &["GET", "broken"], None), "[1, 2,");
}

/// A server that loses its functions (a restart without persistence, or `FUNCTION FLUSH` by
/// another client) answers `Function not found`; every path reloads the library and the call goes
/// through: a pipelined script, one inside `MULTI` (`list_append_unique`), `update`'s read, and a
/// transaction that only writes.
#[tokio::test]
async fn calls_reload_scripts_the_server_lost() {
    let Some(server) = server_with_cli("calls_reload_scripts_the_server_lost").await else {
        return;
    };
    let kv = connect(&server, "s:").await;
    let flush = || redis_cli(&server, &["FUNCTION", "FLUSH"], None);
    flush();
    let list = kv
        .list_append_unique("l", [json!({"id": 1})])
        .await
        .unwrap();
    assert_eq!(list, vec![json!({"id": 1})]);
    flush();
    assert_eq!(kv.list_push("l", [2]).await.unwrap(), 2);
    flush();
    assert_eq!(
        kv.get("l").await.unwrap().as_deref(),
        Some(&json!([{"id": 1}, 2]))
    );
    flush();
    assert_eq!(
        kv.update("n", |_| Some(json!(1))).await.unwrap().as_deref(),
        Some(&json!(1))
    );
    flush();
    kv.transaction(|txn| txn.set("t", [1, 2])).await.unwrap();
    assert_eq!(kv.get("t").await.unwrap().as_deref(), Some(&json!([1, 2])));
}
