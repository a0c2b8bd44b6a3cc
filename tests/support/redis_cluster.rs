//! A Redis Cluster of the test's own: 6 `redis-server --cluster-enabled yes` nodes on loopback
//! (3 primaries, each with 1 replica), joined by `redis-cli --cluster create`, with a node timeout
//! of 1 s so that a failover takes a few seconds: [`RedisCluster::start`],
//! [`RedisCluster::kill_primary`] (a failover) and [`RedisCluster::move_slot`] (a resharding), for
//! the Cluster executor's tests in `tests/redis_production.rs` and `tests/conformance/`.
//!
//! Each node also listens on its port + 10000 (the cluster bus), so ports are picked with both
//! free, and both below Linux's ephemeral range (so below 55536 as Redis needs). Every node is
//! killed by its pid when the cluster is dropped.

use std::collections::HashSet;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use super::redis_process::{cli_with, redis_cli, ScratchDir, ServerProcess};
use super::redis_server::available;
use super::redis_tls::Ca;

/// How many nodes: 3 primaries and a replica for each.
pub const NODES: usize = 6;

/// The cluster's node timeout (`cluster-node-timeout`), in milliseconds: how long a primary may
/// be unreachable before its replica takes over.
pub const NODE_TIMEOUT_MS: u64 = 1000;

/// A node's role, from `CLUSTER NODES`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Whether it is a primary (`master`) rather than a replica.
    pub primary: bool,
    /// Whether the cluster sees it as failed (`fail` or `fail?`).
    pub failed: bool,
}

/// A running 6-node cluster.
pub struct RedisCluster {
    nodes: Vec<ServerProcess>,
    /// The CA file of a TLS-only cluster ([`RedisCluster::start_tls`]), which `redis-cli` trusts.
    tls: Option<String>,
    _dir: ScratchDir,
}

impl RedisCluster {
    /// Starts the nodes, creates the cluster and waits until every node says `cluster_state:ok`;
    /// or says why not (no `redis-server` or `redis-cli` on PATH) and returns `None`.
    pub async fn start(test: &str) -> Option<RedisCluster> {
        RedisCluster::launch(test, None).await
    }

    /// As [`start`](RedisCluster::start), but TLS only: every node listens on its TLS port alone
    /// (`--port 0`), with a certificate for `127.0.0.1` signed by `ca`, and the cluster bus and
    /// replication run over TLS too (`--tls-cluster yes`, `--tls-replication yes`); clients need
    /// `rediss://` URLs ([`urls`](RedisCluster::urls)) and `ca`'s certificate.
    pub async fn start_tls(test: &str, ca: &Ca) -> Option<RedisCluster> {
        RedisCluster::launch(test, Some(ca)).await
    }

    async fn launch(test: &str, ca: Option<&Ca>) -> Option<RedisCluster> {
        if !available("redis-server", test) || !available("redis-cli", test) {
            return None;
        }
        let dir = ScratchDir::new("cluster");
        let tls = ca.map(|ca| {
            let issued = ca.issue(&["127.0.0.1", "localhost"], false);
            (
                dir.write("node.crt", &issued.cert_pem),
                dir.write("node.key", &issued.key_pem),
                dir.write("ca.crt", ca.pem()),
            )
        });
        let mut nodes = Vec::with_capacity(NODES);
        for port in cluster_ports(NODES) {
            let listen: Vec<String> = match &tls {
                None => vec!["--port".to_owned(), port.to_string()],
                Some((cert, key, ca)) => [
                    "--port",
                    "0",
                    "--tls-port",
                    &port.to_string(),
                    "--tls-cluster",
                    "yes",
                    "--tls-replication",
                    "yes",
                    "--tls-cert-file",
                    cert,
                    "--tls-key-file",
                    key,
                    "--tls-ca-cert-file",
                    ca,
                    "--tls-auth-clients",
                    "optional",
                ]
                .map(str::to_owned)
                .to_vec(),
            };
            let args = [
                "--cluster-enabled".to_owned(),
                "yes".to_owned(),
                "--cluster-config-file".to_owned(),
                format!("nodes-{port}.conf"),
                "--cluster-node-timeout".to_owned(),
                NODE_TIMEOUT_MS.to_string(),
            ];
            let args: Vec<String> = listen.into_iter().chain(args).collect();
            nodes.push(ServerProcess::start(dir.path(), port, &args).await);
        }
        let addresses: Vec<String> = nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port()))
            .collect();
        let tls = tls.map(|(_, _, ca)| ca);
        let mut create = tls_args(&tls);
        create.extend(["--cluster".to_owned(), "create".to_owned()]);
        create.extend(addresses);
        create.extend(["--cluster-replicas", "1", "--cluster-yes"].map(str::to_owned));
        let output = tokio::task::spawn_blocking(move || {
            let create: Vec<&str> = create.iter().map(String::as_str).collect();
            redis_cli(&create)
        })
        .await
        .unwrap();
        let cluster = RedisCluster {
            nodes,
            tls,
            _dir: dir,
        };
        assert!(
            output.status.success()
                && String::from_utf8_lossy(&output.stdout).contains("All 16384 slots covered"),
            "redis-cli --cluster create failed:\n{}\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            cluster.logs()
        );
        cluster.wait_until_ok(Duration::from_secs(20)).await;
        cluster
            .wait_until_replicas_synced(Duration::from_secs(20))
            .await;
        Some(cluster)
    }

    /// Waits until every replica's link to its primary is up (`master_link_status:up`): a replica
    /// that never synced is not eligible to take over. Panics after `within`.
    pub async fn wait_until_replicas_synced(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let running: HashSet<u16> = self.ports().into_iter().collect();
            let pending: Vec<u16> = self
                .topology()
                .into_iter()
                .filter(|node| !node.primary && running.contains(&node.port))
                .map(|node| node.port)
                .filter(|&port| {
                    !self
                        .cli(port, &["INFO", "replication"])
                        .contains("master_link_status:up")
                })
                .collect();
            if pending.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "replicas {pending:?} did not sync with their primaries within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The ports of the nodes that run (killed ones left out).
    pub fn ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|node| !node.is_killed())
            .map(ServerProcess::port)
            .collect()
    }

    /// A URL of one running node, `redis://127.0.0.1:<port>` (a cluster client discovers the
    /// others from it).
    pub fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme(), self.ports()[0])
    }

    /// `rediss` for a TLS-only cluster, else `redis`.
    fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        }
    }

    /// `redis-cli -p <port> <args>`'s standard output, trimmed (over TLS for a TLS cluster);
    /// panics when it fails.
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        let options = tls_args(&self.tls);
        let options: Vec<&str> = options.iter().map(String::as_str).collect();
        cli_with(&options, port, args)
    }

    /// The URLs of every running node.
    pub fn urls(&self) -> Vec<String> {
        self.ports()
            .into_iter()
            .map(|port| format!("{}://127.0.0.1:{port}", self.scheme()))
            .collect()
    }

    /// The nodes as the first running node sees them (`CLUSTER NODES`), killed ones included
    /// while the cluster remembers them.
    pub fn topology(&self) -> Vec<Node> {
        let port = self.ports()[0];
        self.cli(port, &["CLUSTER", "NODES"])
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let address = fields.get(1)?; // 127.0.0.1:PORT@BUS
                let port = address.split(['@', ',']).next()?.rsplit(':').next()?;
                let flags = fields.get(2)?;
                Some(Node {
                    port: port.parse().ok()?,
                    primary: flags.split(',').any(|flag| flag == "master"),
                    failed: flags
                        .split(',')
                        .any(|flag| flag == "fail" || flag == "fail?"),
                })
            })
            .collect()
    }

    /// The ports of the running primaries.
    pub fn primaries(&self) -> Vec<u16> {
        let running: HashSet<u16> = self.ports().into_iter().collect();
        self.topology()
            .into_iter()
            .filter(|node| node.primary && !node.failed && running.contains(&node.port))
            .map(|node| node.port)
            .collect()
    }

    /// Kills one primary by its pid (the first in `CLUSTER NODES` order), then waits until one of
    /// its replicas has taken over and every running node says `cluster_state:ok` again. Returns
    /// the killed primary's port and the port of the node that took over. Panics when the
    /// failover takes longer than `within`.
    pub async fn kill_primary(&mut self, within: Duration) -> (u16, u16) {
        let before: HashSet<u16> = self.primaries().into_iter().collect();
        let victim = *self
            .primaries()
            .first()
            .expect("the cluster has no running primary");
        let node = self
            .nodes
            .iter_mut()
            .find(|node| node.port() == victim)
            .expect("a primary this cluster did not start");
        node.kill();
        let deadline = Instant::now() + within;
        loop {
            let now: HashSet<u16> = self.primaries().into_iter().collect();
            if let Some(&promoted) = now.difference(&before).next() {
                if now.len() == before.len() && self.all_ok() {
                    return (victim, promoted);
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "no replica took over from primary {victim} within {within:?}: {:?}\n{}",
                    self.topology(),
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The port of the primary that serves `key`'s slot.
    pub fn owner(&self, key: &str) -> u16 {
        let slot = self.cli(self.ports()[0], &["CLUSTER", "KEYSLOT", key]);
        let slots = self.cli(self.ports()[0], &["CLUSTER", "SLOTS"]);
        // redis-cli prints each range as lines: first, last, then host, port, id of the primary.
        let lines: Vec<&str> = slots.lines().collect();
        let slot: u32 = slot.parse().expect("CLUSTER KEYSLOT");
        for at in 0..lines.len().saturating_sub(3) {
            let (Ok(first), Ok(last)) = (lines[at].parse::<u32>(), lines[at + 1].parse::<u32>())
            else {
                continue;
            };
            if first <= slot && slot <= last && lines[at + 2].starts_with("127.0.0.1") {
                return lines[at + 3].parse().expect("a port in CLUSTER SLOTS");
            }
        }
        panic!("no primary serves slot {slot}: {slots}");
    }

    /// Moves the slot of `key`, with its keys, from its primary to another one (`CLUSTER SETSLOT
    /// .. IMPORTING/MIGRATING`, `MIGRATE`, `SETSLOT .. NODE` on every node), as a resharding
    /// does; returns the new owner's port.
    pub fn move_slot(&self, key: &str) -> u16 {
        let from = self.owner(key);
        let to = *self
            .primaries()
            .iter()
            .find(|&&port| port != from)
            .expect("a second primary");
        let slot = self.cli(from, &["CLUSTER", "KEYSLOT", key]);
        let id = |port: u16| self.cli(port, &["CLUSTER", "MYID"]);
        let (from_id, to_id) = (id(from), id(to));
        assert_eq!(
            self.cli(to, &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &from_id]),
            "OK"
        );
        assert_eq!(
            self.cli(from, &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &to_id]),
            "OK"
        );
        let keys = self.cli(from, &["CLUSTER", "GETKEYSINSLOT", &slot, "1000"]);
        let to_port = to.to_string();
        for key in keys.lines().filter(|key| !key.is_empty()) {
            let moved = self.cli(from, &["MIGRATE", "127.0.0.1", &to_port, key, "0", "5000"]);
            assert_eq!(moved, "OK", "MIGRATE {key}");
        }
        // On the primaries (replicas refuse SETSLOT and learn it from them), the new owner first.
        let others = self
            .primaries()
            .into_iter()
            .filter(|&p| p != to && p != from);
        for port in [to, from].into_iter().chain(others) {
            let set = self.cli(port, &["CLUSTER", "SETSLOT", &slot, "NODE", &to_id]);
            assert_eq!(set, "OK", "SETSLOT on {port}");
        }
        to
    }

    /// The end of every node's log, for a failure's message.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|node| format!("-- node {}:\n{}", node.port(), node.log_tail()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Whether every running node says `cluster_state:ok`.
    pub fn all_ok(&self) -> bool {
        self.ports().into_iter().all(|port| {
            self.cli(port, &["CLUSTER", "INFO"])
                .contains("cluster_state:ok")
        })
    }

    /// Waits until [`all_ok`](RedisCluster::all_ok), or panics after `within`.
    pub async fn wait_until_ok(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.all_ok() {
            assert!(
                Instant::now() < deadline,
                "the cluster did not reach cluster_state:ok within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// `redis-cli`'s TLS options for a cluster whose CA file is `ca`, or none.
fn tls_args(ca: &Option<String>) -> Vec<String> {
    match ca {
        Some(ca) => vec!["--tls".to_owned(), "--cacert".to_owned(), ca.clone()],
        None => Vec::new(),
    }
}

/// `n` ports below 55536 that are free, and whose cluster-bus ports (+ 10000) are free too.
fn cluster_ports(n: usize) -> Vec<u16> {
    // Below 32768 with the bus ports, out of Linux's ephemeral range (32768-60999), so that no
    // outgoing connection takes a port between the check and the server's bind; from a spot that
    // differs between processes, so concurrent test binaries rarely probe the same ports.
    const LOW: u16 = 20000;
    const HIGH: u16 = 32767 - 10000;
    let seed = std::process::id() as u64
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.subsec_nanos() as u64);
    let mut port = LOW + (seed % u64::from(HIGH - LOW)) as u16;
    let free = |port: u16| TcpListener::bind(("127.0.0.1", port)).is_ok();
    let mut ports = Vec::with_capacity(n);
    while ports.len() < n {
        if free(port) && free(port + 10000) {
            ports.push(port);
        }
        port = if port >= HIGH { LOW } else { port + 1 };
    }
    ports
}
