//! The Redis Cluster and TLS numbers of `docs/redis-deploy.md`: the `KvHandle` over a 6-node Redis
//! Cluster and over TLS, each beside the same handle over one plaintext server, and beside
//! `redis-benchmark` against the same servers.
//!
//! Run it with `cargo run --release --features redis-tls --example redis_cluster_report` (needs
//! `redis-server`, `redis-cli` and `redis-benchmark` on PATH: `apt-get install -y redis-server`).
//!
//! It starts, on free loopback ports, with the test suite's own helpers (`tests/support/`): one
//! plaintext `redis-server`, one TLS-only `redis-server` (a certificate of its own CA), and a
//! 6-node cluster (3 primaries, 3 replicas). Then, on each, 256 tasks make 90% `get` / 10% `set`
//! calls on 1000 keys: over one server; over the cluster with keys spread over the slots (prefix
//! `bench:`) and all under one hash tag (prefix `{bench}:`, so one primary serves them all); over
//! TLS. Beside each, `redis-benchmark -P 16 -q -t get,set` (50 clients, 16 commands per round
//! trip) against the same server, `--cluster` for the cluster, `--tls` for TLS.

#[path = "../tests/support/mod.rs"]
#[allow(unused_macros, unused_imports, missing_docs)]
mod support;

use std::process::Command;
use std::time::Instant;

use ephemeral_kv::{KvError, KvHandle};
use support::redis_cluster::RedisCluster;
use support::redis_server::RedisServer;
use support::redis_tls::{ClientAuth, ServerCert, TlsServer};

/// Tasks calling at once.
const TASKS: usize = 256;
/// Calls per task.
const CALLS: usize = 1_000;
/// Distinct keys the calls spread over.
const KEYS: usize = 1_000;
/// Requests per `redis-benchmark` test.
const REQUESTS: &str = "200000";

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let test = "redis_cluster_report";
    let server = RedisServer::start(test).await.ok_or("no redis-server")?;
    let tls = TlsServer::start(test, ServerCert::Good, ClientAuth::Optional)
        .await
        .ok_or("no redis-server")?;
    let cluster = RedisCluster::start(test).await.ok_or("no redis-server")?;
    let ca = std::env::temp_dir().join(format!("ekv-report-ca-{}.pem", std::process::id()));
    std::fs::write(&ca, tls.ca.pem())?;

    println!("ephemeral-kv, {TASKS} tasks x {CALLS} calls, 90% get / 10% set, {KEYS} keys");
    let one = KvHandle::builder()
        .prefix("bench:")
        .redis(server.url())
        .await?;
    let spread = KvHandle::builder()
        .prefix("bench:")
        .redis_cluster(cluster.urls())
        .await?;
    let tagged = KvHandle::builder()
        .prefix("{bench}:")
        .redis_cluster(cluster.urls())
        .await?;
    let over_tls = KvHandle::builder()
        .prefix("bench:")
        .redis_ca_certificate(tls.ca.pem())
        .redis(tls.url())
        .await?;

    let port = |url: String| url.rsplit(':').next().unwrap_or_default().to_owned();
    let one_rate = throughput(&one).await?;
    let spread_rate = throughput(&spread).await?;
    let tagged_rate = throughput(&tagged).await?;
    let tls_rate = throughput(&over_tls).await?;
    let bench_one = benchmark(&["-p", &port(server.url())])?;
    let bench_cluster = benchmark(&["--cluster", "-p", &port(cluster.url())])?;
    let ca_path = ca.to_string_lossy().into_owned();
    let bench_tls = benchmark(&["-p", &port(tls.url()), "--tls", "--cacert", &ca_path])?;
    let _ = std::fs::remove_file(&ca);

    let row = |name: &str, rate: f64, bench: (f64, f64)| {
        println!(
            "  {name:<34} {rate:>9.0} calls/s   {:>4.2}x one server   redis-benchmark GET {:>9.0} SET {:>9.0}",
            rate / one_rate,
            bench.0,
            bench.1
        );
    };
    row("one server", one_rate, bench_one);
    row(
        "cluster, keys spread over slots",
        spread_rate,
        bench_cluster,
    );
    row("cluster, one hash tag", tagged_rate, bench_cluster);
    row("one server over TLS", tls_rate, bench_tls);
    println!(
        "  (redis-benchmark: -P 16 -n {REQUESTS}, 50 clients; --cluster spreads its keys over the \
         primaries; the hash-tag row has no redis-benchmark twin)"
    );
    Ok(())
}

/// `redis-benchmark -h 127.0.0.1 <args> -P 16 -q -t get,set -n REQUESTS`: (GET, SET) requests/s.
fn benchmark(args: &[&str]) -> Result<(f64, f64), Error> {
    let output = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1"])
        .args(args)
        .args(["-P", "16", "-q", "-t", "get,set", "-n", REQUESTS])
        .output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let rate = |name: &str| -> f64 {
        text.rsplit(['\r', '\n'])
            .filter_map(|line| line.trim().strip_prefix(name))
            .find_map(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0)
    };
    Ok((rate("GET:"), rate("SET:")))
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
