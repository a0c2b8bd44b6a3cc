//! The backends the conformance suite runs on, behind one trait: what a test needs to say a
//! rule of `docs/rules.md` holds on each, given that one runs on a paused clock and the other on
//! real time.

#![allow(dead_code)] // each backend uses its own part

use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use ephemeral_kv::{KvBuilder, KvHandle, Ttl};

/// What a conformance test needs from a backend.
pub trait Backend {
    /// A handle on a fresh, empty namespace, built from `builder`.
    async fn build(&self, builder: KvBuilder) -> KvHandle;

    /// How long one unit of test time is: TTLs in tests are whole units.
    fn unit(&self) -> Duration;

    /// Lets `units` of test time pass.
    async fn pass(&self, units: u32);

    /// The prefix every handle of this backend's tests carries (the Redis namespace), as it shows
    /// in error messages.
    fn prefix(&self) -> &str;

    /// Whether the backend has change feeds (`watch`): both have.
    fn has_watch(&self) -> bool;

    /// Whether an expiry is a change event (`WatchEvent::Expired`): in-process only; Redis
    /// expires keys out of the scripts' sight (`docs/redis-feed.md`).
    fn reports_expirations(&self) -> bool;

    /// Another handle on the same store as `first`, built separately: on Redis a handle of its
    /// own (its own owner task, connection and change feed, as another process would have) with
    /// the same builder prefix; in-process, where a store lives in one process, a clone.
    async fn second(&self, first: &KvHandle) -> KvHandle;

    /// What `purge_expired` returns after `expired` entries ran out.
    fn purged(&self, expired: usize) -> usize;

    /// Asserts that `ttl` is what a key given `units` of TTL, `after` units ago, has left: exactly
    /// on tokio's paused clock, within the real time a test takes on Redis.
    fn assert_ttl(&self, ttl: Ttl, units: u32, after: u32);

    /// The store of `kv` (the last one this backend built) after a restart, if the backend has
    /// one: a durable store's last handle dropped and its file opened again at once, with default
    /// settings. `None` (the default): the backend keeps nothing across a restart, or is a server
    /// that lives on regardless; the restart tests then have nothing to check.
    async fn restart(&self, kv: KvHandle) -> Option<KvHandle> {
        drop(kv);
        None
    }

    /// A handle with default settings on a fresh namespace.
    async fn kv(&self) -> KvHandle {
        self.build(KvHandle::builder()).await
    }

    /// `n` units of test time.
    fn units(&self, n: u32) -> Duration {
        self.unit() * n
    }

    /// The full key of `key`, as errors name it.
    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix())
    }
}

/// The in-process store on tokio's paused clock: time moves only when a test moves it.
pub struct Local;

impl Backend for Local {
    async fn build(&self, builder: KvBuilder) -> KvHandle {
        builder.spawn()
    }

    fn unit(&self) -> Duration {
        Duration::from_secs(1)
    }

    async fn pass(&self, units: u32) {
        tokio::time::advance(self.units(units)).await;
    }

    fn prefix(&self) -> &str {
        ""
    }

    fn has_watch(&self) -> bool {
        true
    }

    fn reports_expirations(&self) -> bool {
        true
    }

    async fn second(&self, first: &KvHandle) -> KvHandle {
        first.clone()
    }

    fn purged(&self, expired: usize) -> usize {
        expired
    }

    fn assert_ttl(&self, ttl: Ttl, units: u32, after: u32) {
        assert_eq!(ttl, Ttl::Expires(self.units(units - after)));
    }
}

/// The in-process store journaled to a SQLite file of the test's own (one per handle built), on
/// tokio's paused clock like [`Local`]. `Interval` durability: under `EveryBatch` a caller waits
/// for a commit on the journal thread, and meanwhile the paused clock would jump to the next timer.
#[cfg(feature = "durable")]
pub struct Durable {
    dir: std::path::PathBuf,
    files: AtomicUsize,
    /// The file of the last store built, which [`Backend::restart`] opens again.
    last: std::sync::Mutex<Option<std::path::PathBuf>>,
}

#[cfg(feature = "durable")]
impl Durable {
    /// A fresh directory for one test's files, removed when the backend is dropped.
    pub fn new() -> Durable {
        static TESTS: AtomicUsize = AtomicUsize::new(0);
        let n = TESTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ekv-conformance-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the test's directory");
        Durable {
            dir,
            files: AtomicUsize::new(0),
            last: std::sync::Mutex::new(None),
        }
    }

    /// Opens the store at `path` with `builder`'s settings.
    async fn open(&self, builder: KvBuilder, path: std::path::PathBuf) -> KvHandle {
        *self.last.lock().unwrap() = Some(path.clone());
        builder
            .durability(ephemeral_kv::Durability::Interval(Duration::from_millis(
                10,
            )))
            .durable(path)
            .await
            .expect("open the test's durable store")
    }
}

#[cfg(feature = "durable")]
impl Drop for Durable {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(feature = "durable")]
impl Backend for Durable {
    async fn build(&self, builder: KvBuilder) -> KvHandle {
        let n = self
            .files
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.open(builder, self.dir.join(format!("{n}.db"))).await
    }

    async fn restart(&self, kv: KvHandle) -> Option<KvHandle> {
        // Dropped, not shut down: a reopen waits for the owner task to close the file.
        drop(kv);
        let path = self.last.lock().unwrap().clone()?;
        Some(self.open(KvHandle::builder(), path).await)
    }

    fn unit(&self) -> Duration {
        Local.unit()
    }

    async fn pass(&self, units: u32) {
        Local.pass(units).await;
    }

    fn prefix(&self) -> &str {
        ""
    }

    fn has_watch(&self) -> bool {
        true
    }

    fn reports_expirations(&self) -> bool {
        true
    }

    async fn second(&self, first: &KvHandle) -> KvHandle {
        // One process owns a durable file: the second handle is a clone, as in-process.
        first.clone()
    }

    fn purged(&self, expired: usize) -> usize {
        expired
    }

    fn assert_ttl(&self, ttl: Ttl, units: u32, after: u32) {
        Local.assert_ttl(ttl, units, after);
    }
}

/// A Redis server of the test's own. Redis expires keys on its own clock, so these tests wait in
/// real time: this is the one place the crate's tests do, and units are short (100 ms) to keep
/// the whole Redis half to a few seconds.
pub struct Redis {
    server: crate::support::redis_server::RedisServer,
    namespaces: AtomicUsize,
    prefix: String,
}

impl Redis {
    /// Starts the server, or prints why the test is skipped.
    pub async fn start(test: &str) -> Option<Redis> {
        let server = crate::support::redis_server::RedisServer::start(test).await?;
        Some(Redis {
            server,
            namespaces: AtomicUsize::new(0),
            prefix: "conformance:".to_owned(),
        })
    }
}

#[cfg(feature = "redis")]
impl Backend for Redis {
    async fn build(&self, builder: KvBuilder) -> KvHandle {
        // Every handle of a test shares the server; the first gets the plain prefix so that
        // error messages are predictable, later ones their own namespace.
        let n = self
            .namespaces
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let prefix = match n {
            0 => self.prefix.clone(),
            n => format!("{}{n}:", self.prefix),
        };
        builder
            .prefix(prefix)
            .redis(self.server.url())
            .await
            .expect("connect to the test's redis-server")
    }

    fn unit(&self) -> Duration {
        Duration::from_millis(100)
    }

    async fn pass(&self, units: u32) {
        tokio::time::sleep(self.units(units)).await;
    }

    fn prefix(&self) -> &str {
        &self.prefix
    }

    fn has_watch(&self) -> bool {
        true
    }

    fn reports_expirations(&self) -> bool {
        false
    }

    async fn second(&self, first: &KvHandle) -> KvHandle {
        KvHandle::builder()
            .prefix(first.prefix())
            .redis(self.server.url())
            .await
            .expect("connect to the test's redis-server")
    }

    fn purged(&self, _expired: usize) -> usize {
        0 // Redis removes expired keys itself
    }

    fn assert_ttl(&self, ttl: Ttl, units: u32, after: u32) {
        real_time_ttl(self.unit(), ttl, units, after);
    }
}

/// The 6-node Redis Cluster of `support::redis_cluster`, shared by the tests of one
/// `conformance!` list, which run on it one after the other (`main.rs`), each under a prefix of
/// its own: with a hash tag (`{c<n>}:`, every key of the test in one slot: the whole suite), or
/// without (`c<n>:`, keys spread over the slots: the single-key rules; a test over several keys
/// may be refused there, as `docs/redis-deploy.md` says). Real time, as [`Redis`], in units of
/// 200 ms: a call on the cluster takes longer, and its 7 servers share the machine.
#[cfg(feature = "redis")]
pub struct Cluster<'a> {
    cluster: &'a crate::support::redis_cluster::RedisCluster,
    namespaces: AtomicUsize,
    prefix: String,
}

#[cfg(feature = "redis")]
impl<'a> Cluster<'a> {
    /// The backend of the `n`th test of a list.
    pub fn new(
        cluster: &'a crate::support::redis_cluster::RedisCluster,
        n: usize,
        tagged: bool,
    ) -> Cluster<'a> {
        let prefix = if tagged {
            format!("{{c{n}}}:")
        } else {
            format!("c{n}:")
        };
        Cluster {
            cluster,
            namespaces: AtomicUsize::new(0),
            prefix,
        }
    }

    async fn connect(&self, builder: KvBuilder) -> KvHandle {
        let connect = builder.redis_cluster(self.cluster.urls());
        tokio::time::timeout(Duration::from_secs(10), connect)
            .await
            .expect("connecting to the test's cluster hung")
            .expect("connect to the test's cluster")
    }
}

#[cfg(feature = "redis")]
impl Backend for Cluster<'_> {
    async fn build(&self, builder: KvBuilder) -> KvHandle {
        let n = self
            .namespaces
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let prefix = match n {
            0 => self.prefix.clone(),
            n => format!("{}{n}:", self.prefix),
        };
        self.connect(builder.prefix(prefix)).await
    }

    fn unit(&self) -> Duration {
        Duration::from_millis(200)
    }

    async fn pass(&self, units: u32) {
        tokio::time::sleep(self.units(units)).await;
    }

    fn prefix(&self) -> &str {
        &self.prefix
    }

    fn has_watch(&self) -> bool {
        // Without a tag `watch` is refused with advice, which the untagged run expects.
        true
    }

    fn reports_expirations(&self) -> bool {
        false
    }

    async fn second(&self, first: &KvHandle) -> KvHandle {
        self.connect(KvHandle::builder().prefix(first.prefix()))
            .await
    }

    fn purged(&self, _expired: usize) -> usize {
        0 // Redis removes expired keys itself
    }

    fn assert_ttl(&self, ttl: Ttl, units: u32, after: u32) {
        real_time_ttl(self.unit(), ttl, units, after);
    }
}

/// [`Backend::assert_ttl`] on a server's own clock, in units of `unit`.
fn real_time_ttl(unit: Duration, ttl: Ttl, units: u32, after: u32) {
    let most = unit * (units - after);
    // Time spent on the calls of the test itself: up to a whole unit, for a loaded machine.
    // The tests that tell "kept" from "renewed" differ by two units, so this still tells.
    let least = most.saturating_sub(unit);
    match ttl {
        Ttl::Expires(left) => assert!(
            left <= most && left >= least,
            "expected about {most:?} left, got {left:?}"
        ),
        other => panic!("expected about {most:?} left, got {other:?}"),
    }
}
