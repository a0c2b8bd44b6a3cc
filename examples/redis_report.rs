//! The Redis-backed handle's throughput beside `redis-benchmark` and the in-process handle.
//!
//! Run it with `cargo run --release --features redis --example redis_report` (needs
//! `redis-server` and `redis-benchmark` on PATH: `apt-get install -y redis-server`).
//!
//! It starts its own `redis-server` on a free loopback port, then measures, on the same machine:
//! - the Redis-backed `KvHandle` driven by 256 tasks, 90% `get` / 10% `set` on 1000 keys;
//! - `redis-benchmark -P 16 -q -t get,set -n 200000` against the same server (50 clients,
//!   16 commands per round trip: about the best a client can get from this server);
//! - the in-process `KvHandle` under the same load as the first;
//! - lists used as a work queue, on a 2,000-item list, beside the raw `redis` crate's commands on
//!   the same server in the same run: `list_push` of one job x2000 vs `RPUSH`;
//!   `list_append_unique` of one job x2000 vs `RPUSH` + `LRANGE 0 -1` (one pipeline: append, then
//!   read the whole list, as `list_append_unique` answers with it); 4 workers, each on a handle
//!   of its own, taking one job at a time with `list_pop_front` until the list is empty vs `LPOP`
//!   on 4 connections (time per job, and how many calls failed).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ephemeral_kv::{KvError, KvHandle};
use serde_json::{json, Value};

/// Tasks calling at once.
const TASKS: usize = 256;
/// Calls per task.
const CALLS: usize = 2_000;
/// Distinct keys the calls spread over.
const KEYS: usize = 1_000;
/// Jobs in the list of the list section.
const LIST: usize = 2_000;
/// Workers taking jobs, each on a handle (or a connection) of its own.
const WORKERS: usize = 4;

/// A boxed error: the list section also calls the `redis` crate directly.
type Error = Box<dyn std::error::Error + Send + Sync>;

/// The `redis-server` child, killed on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free loopback port");
    let _server = Server(
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server on PATH (apt-get install -y redis-server)"),
    );
    let url = format!("redis://127.0.0.1:{port}");
    let kv = loop {
        match KvHandle::builder().prefix("bench:").redis(&url).await {
            Ok(kv) => break kv,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };

    println!("ephemeral-kv, {TASKS} tasks x {CALLS} calls, 90% get / 10% set, {KEYS} keys");
    let client = redis::Client::open(url.as_str())?;
    let mut raw = client.get_multiplexed_async_connection().await?;
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut raw)
        .await?;
    let redis_handle = throughput(&kv).await?;
    println!("  KvHandle over Redis:   {:>10.0} calls/s", redis_handle);
    print!("  ");
    server_time(&mut raw).await?;

    let output = Command::new("redis-benchmark")
        .args([
            "-p",
            &port.to_string(),
            "-P",
            "16",
            "-q",
            "-t",
            "get,set",
            "-n",
            "200000",
        ])
        .output()
        .expect("redis-benchmark on PATH (apt-get install -y redis-server)");
    let text = String::from_utf8_lossy(&output.stdout);
    let mut best = Vec::new();
    for line in text
        .split(['\r', '\n'])
        .filter(|line| line.contains("requests per second"))
    {
        // "GET: 1234567.89 requests per second, p50=..." (the last report of each test)
        let line = line.trim();
        if let Some((name, rest)) = line.split_once(':') {
            let rate: f64 = rest
                .split_whitespace()
                .next()
                .unwrap_or("0")
                .parse()
                .unwrap_or(0.0);
            best.retain(|(n, _): &(String, f64)| n != name);
            best.push((name.to_owned(), rate));
        }
    }
    for (name, rate) in &best {
        println!("  redis-benchmark -P 16 {name}: {rate:>10.0} requests/s");
    }
    if let Some(get) = best
        .iter()
        .find(|(name, _)| name == "GET")
        .map(|(_, rate)| *rate)
    {
        println!(
            "  KvHandle over Redis / redis-benchmark GET: {:.0}%",
            100.0 * redis_handle / get
        );
    }

    let local = KvHandle::builder().prefix("bench:").spawn();
    let in_process = throughput(&local).await?;
    println!("  KvHandle in-process:   {:>10.0} calls/s", in_process);

    lists(&kv, &url).await
}

/// One job of the list section: a small object, as a work queue holds.
fn job(n: usize) -> Value {
    json!({"id": n, "task": "resize", "width": 640, "height": 480})
}

/// Microseconds per call since `start`, over `calls` calls.
fn per_call(start: Instant, calls: usize) -> f64 {
    start.elapsed().as_secs_f64() * 1e6 / calls as f64
}

/// The list section: each `KvHandle` list call beside the raw commands that do the same on the
/// same server, one caller at a time (so each figure is a call's cost, round trip included),
/// then 4 workers emptying a shared list. Prints one Markdown table.
async fn lists(kv: &KvHandle, url: &str) -> Result<(), Error> {
    let client = redis::Client::open(url)?;
    let mut raw = client.get_multiplexed_async_connection().await?;
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut raw)
        .await?;
    println!();
    println!("lists, {LIST} jobs, one caller at a time unless said (us per call)");
    println!("| what | KvHandle over Redis | raw redis | ratio | target |");
    println!("|---|---|---|---|---|");
    let row = |what: &str, handle: f64, raw: f64, raw_name: &str, target: f64| {
        let ratio = handle / raw;
        let met = if ratio <= target { "met" } else { "missed" };
        println!(
            "| {what} | {handle:.1} | {raw:.1} ({raw_name}) | {ratio:.2}x | <= {target}x: {met} |"
        );
    };

    let start = Instant::now();
    for n in 0..LIST {
        kv.list_push("push", [job(n)]).await?;
    }
    let handle = per_call(start, LIST);
    let start = Instant::now();
    for n in 0..LIST {
        let _: usize = redis::cmd("RPUSH")
            .arg("raw:push")
            .arg(job(n).to_string())
            .query_async(&mut raw)
            .await?;
    }
    row(
        "`list_push` of one job",
        handle,
        per_call(start, LIST),
        "`RPUSH`",
        2.0,
    );

    let start = Instant::now();
    for n in 0..LIST {
        kv.list_append_unique("unique", [job(n)]).await?;
    }
    let handle = per_call(start, LIST);
    let start = Instant::now();
    for n in 0..LIST {
        let (_, _all): (usize, Vec<Vec<u8>>) = redis::pipe()
            .cmd("RPUSH")
            .arg("raw:unique")
            .arg(job(n).to_string())
            .cmd("LRANGE")
            .arg("raw:unique")
            .arg(0)
            .arg(-1)
            .query_async(&mut raw)
            .await?;
    }
    row(
        "`list_append_unique` of one job",
        handle,
        per_call(start, LIST),
        "`RPUSH` + `LRANGE 0 -1`",
        2.0,
    );

    // 4 workers on handles of their own, as 4 processes would have.
    kv.list_push("inbox", (0..LIST).map(job)).await?;
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        workers.push(KvHandle::builder().prefix("bench:").redis(url).await?);
    }
    let start = Instant::now();
    let tasks: Vec<_> = workers
        .into_iter()
        .map(|kv| {
            tokio::spawn(async move {
                let (mut taken, mut errors) = (0usize, 0usize);
                loop {
                    match kv.list_pop_front("inbox", 1).await {
                        Ok(jobs) if jobs.is_empty() => return (taken, errors),
                        Ok(jobs) => taken += jobs.len(),
                        Err(_) => errors += 1,
                    }
                }
            })
        })
        .collect();
    let (taken, handle_errors) = totals(tasks).await?;
    let handle = per_call(start, LIST);
    assert_eq!(taken, LIST, "every job taken once");

    let jobs: Vec<String> = (0..LIST).map(|n| job(n).to_string()).collect();
    let _: usize = redis::cmd("RPUSH")
        .arg("raw:inbox")
        .arg(&jobs)
        .query_async(&mut raw)
        .await?;
    let mut connections = Vec::new();
    for _ in 0..WORKERS {
        connections.push(client.get_multiplexed_async_connection().await?);
    }
    let start = Instant::now();
    let tasks: Vec<_> = connections
        .into_iter()
        .map(|mut connection| {
            tokio::spawn(async move {
                let (mut taken, mut errors) = (0usize, 0usize);
                loop {
                    let popped: Result<Option<Vec<u8>>, _> = redis::cmd("LPOP")
                        .arg("raw:inbox")
                        .query_async(&mut connection)
                        .await;
                    match popped {
                        Ok(None) => return (taken, errors),
                        Ok(Some(_)) => taken += 1,
                        Err(_) => errors += 1,
                    }
                }
            })
        })
        .collect();
    let (taken, errors) = totals(tasks).await?;
    let raw_time = per_call(start, LIST);
    assert_eq!(taken, LIST, "every job taken once");
    row(
        &format!("{WORKERS} workers `list_pop_front(.., 1)` until empty, per job ({handle_errors} errors)"),
        handle,
        raw_time,
        &format!("`LPOP`, {WORKERS} connections, {errors} errors"),
        2.0,
    );
    // What the server itself spent per command over the list section (`INFO commandstats`):
    // the scripts' share of the figures above.
    server_time(&mut raw).await?;
    Ok(())
}

/// Prints what the server spent per command since the last `CONFIG RESETSTAT` (`INFO
/// commandstats`), then resets the counters.
async fn server_time(raw: &mut redis::aio::MultiplexedConnection) -> Result<(), Error> {
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(raw)
        .await?;
    let per_call: Vec<String> = stats
        .lines()
        .filter_map(|line| {
            let (name, fields) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let field = |f: &str| fields.split(',').find_map(|x| x.strip_prefix(f));
            let (calls, us) = (field("calls=")?, field("usec_per_call=")?);
            (!name.starts_with("config") && !name.starts_with("info"))
                .then(|| format!("{name} {us} us (x{calls})"))
        })
        .collect();
    println!("server time per command: {}", per_call.join(", "));
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(raw)
        .await?;
    Ok(())
}

/// Calls per second from `TASKS` tasks, 90% `get` / 10% `set`.
async fn throughput(kv: &KvHandle) -> Result<f64, KvError> {
    for key in 0..KEYS {
        kv.set(format!("k{key}"), key).await?;
    }
    let start = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let kv = kv.clone();
            tokio::spawn(async move {
                for call in 0..CALLS {
                    let key = format!("k{}", (task * 7919 + call * 104_729) % KEYS);
                    if call % 10 == 0 {
                        kv.set(key, call).await?;
                    } else {
                        kv.get(key).await?;
                    }
                }
                Ok::<_, KvError>(())
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a task panicked")?;
    }
    Ok((TASKS * CALLS) as f64 / start.elapsed().as_secs_f64())
}

/// The jobs taken and the calls failed by all the workers.
async fn totals(
    tasks: Vec<tokio::task::JoinHandle<(usize, usize)>>,
) -> Result<(usize, usize), Error> {
    let (mut taken, mut errors) = (0, 0);
    for task in tasks {
        let (t, e) = task.await?;
        taken += t;
        errors += e;
    }
    Ok((taken, errors))
}
