//! The Redis-backed handle's throughput beside `redis-benchmark` and the in-process handle.
//!
//! Run it with `cargo run --release --features redis --example redis_report` (needs
//! `redis-server` and `redis-benchmark` on PATH: `apt-get install -y redis-server`).
//!
//! It starts its own `redis-server` on a free loopback port, then measures, on the same machine:
//! - the Redis-backed `KvHandle` driven by 256 tasks, 90% `get` / 10% `set` on 1000 keys;
//! - `redis-benchmark -P 16 -q -t get,set -n 200000` against the same server (50 clients,
//!   16 commands per round trip: about the best a client can get from this server);
//! - the in-process `KvHandle` under the same load as the first.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ephemeral_kv::{KvError, KvHandle};

/// Tasks calling at once.
const TASKS: usize = 256;
/// Calls per task.
const CALLS: usize = 2_000;
/// Distinct keys the calls spread over.
const KEYS: usize = 1_000;

/// The `redis-server` child, killed on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::main]
async fn main() -> Result<(), KvError> {
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
    let redis_handle = throughput(&kv).await?;
    println!("  KvHandle over Redis:   {:>10.0} calls/s", redis_handle);

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
