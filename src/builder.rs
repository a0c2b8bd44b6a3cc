//! [`KvBuilder`]: a store's settings, and the choice of executor that runs it.
//!
//! [`spawn`](KvBuilder::spawn) starts the in-process executor ([`local`](crate::local));
//! `redis(url)` (feature `redis`) connects the Redis one. Either way the result is the same
//! [`KvHandle`]: the caller side reaches an executor only through the mailbox its `spawn` or
//! `connect` returns.

use crate::closure::StoreId;
use crate::command::MAX_CAPACITY;
#[cfg(any(feature = "redis", feature = "durable"))]
use crate::error::KvError;
use crate::eviction::Eviction;
use crate::handle::KvHandle;
use crate::local;
use crate::mailbox::Mailbox;
#[cfg(feature = "redis")]
use crate::redis;

/// Starting a store.
impl KvHandle {
    /// Starts a store with default settings (no prefix, active expiry on) and returns a handle to
    /// it.
    ///
    /// # Panics
    /// Like [`tokio::spawn`], panics when called outside a tokio runtime.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// assert!(!kv.is_closed());
    /// # }
    /// ```
    #[track_caller]
    pub fn spawn() -> KvHandle {
        KvBuilder::new().spawn()
    }

    /// Returns a [`KvBuilder`] to configure a store before starting it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let kv = ephemeral_kv::KvHandle::builder().prefix("app:").active_expiry(true).spawn();
    /// assert_eq!(kv.prefix(), "app:");
    /// # }
    /// ```
    pub fn builder() -> KvBuilder {
        KvBuilder::new()
    }
}

/// The default number of commands that may wait in the mailbox before callers wait for room.
const DEFAULT_MAILBOX_CAPACITY: usize = 1024;

/// Configures a store before starting it. Made by [`KvHandle::builder`].
///
/// [`spawn`](KvBuilder::spawn) starts the store in this process; with the `redis` cargo feature,
/// `redis(url)` runs it on a Redis server instead (`docs/redis.md` lists what differs there).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let kv = ephemeral_kv::KvBuilder::new()
///     .prefix("app:")
///     .active_expiry(false)
///     .mailbox_capacity(256)
///     .spawn();
/// assert_eq!(kv.prefix(), "app:");
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `spawn` (or `redis`) is called"]
pub struct KvBuilder {
    prefix: String,
    active_expiry: bool,
    mailbox_capacity: usize,
    max_entries: Option<usize>,
    eviction: Eviction,
    capacity: usize,
    /// TLS settings for [`redis`](KvBuilder::redis) (its `Debug` prints no certificate or key).
    #[cfg(feature = "redis")]
    redis_client: redis::client::ClientSettings,
    #[cfg(feature = "durable")]
    durability: crate::durability::Durability,
}

impl Default for KvBuilder {
    fn default() -> Self {
        KvBuilder::new()
    }
}

impl KvBuilder {
    /// Default settings: no prefix, active expiry on, a mailbox of 1024 commands, no bound on the
    /// number of entries.
    ///
    /// ```
    /// let builder = ephemeral_kv::KvBuilder::new();
    /// # let _ = builder;
    /// ```
    pub fn new() -> KvBuilder {
        KvBuilder {
            prefix: String::new(),
            active_expiry: true,
            mailbox_capacity: DEFAULT_MAILBOX_CAPACITY,
            max_entries: None,
            eviction: Eviction::Refuse,
            capacity: 0,
            #[cfg(feature = "redis")]
            redis_client: redis::client::ClientSettings::default(),
            #[cfg(feature = "durable")]
            durability: crate::durability::Durability::EveryBatch,
        }
    }

    /// Sizes the in-process store's table for `n` entries up front (default 0: it grows as keys
    /// come). The table still grows past `n`, a few entries moved per insert, never in one pause;
    /// sizing it spares even that, and it is never shrunk below `n`. Memory: about 60 bytes per
    /// entry of table, allocated at once. Ignored by `redis(url)`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::builder().capacity(100_000).spawn();
    /// kv.set("a", 1).await?;
    /// assert_eq!(kv.stats().await?.entries, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn capacity(mut self, n: usize) -> KvBuilder {
        self.capacity = n;
        self
    }

    /// A prefix put before every key of the returned handle (and of handles made from it by
    /// [`KvHandle::with_prefix`]), for namespacing.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let kv = ephemeral_kv::KvHandle::builder().prefix("app:").spawn();
    /// assert_eq!(kv.with_prefix("run:").prefix(), "app:run:");
    /// # }
    /// ```
    pub fn prefix(mut self, prefix: impl Into<String>) -> KvBuilder {
        self.prefix = prefix.into();
        self
    }

    /// Whether the owner task removes expired entries on its own, soon after their deadline
    /// (default `true`). It does so in slices of a few hundred entries between batches of commands,
    /// so a mass expiry never starves callers.
    ///
    /// With `false`, expired entries are removed only when a call touches them or by
    /// [`KvHandle::purge_expired`], as in the reference; they are invisible either way.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let kv = ephemeral_kv::KvHandle::builder().active_expiry(false).spawn();
    /// # let _ = kv;
    /// # }
    /// ```
    pub fn active_expiry(mut self, on: bool) -> KvBuilder {
        self.active_expiry = on;
        self
    }

    /// How many commands may wait in the owner task's mailbox before callers wait for room
    /// (default 1024; 0 is taken as 1, and anything above 2^20 as 2^20). A bounded mailbox gives
    /// backpressure instead of unbounded memory growth when callers outrun the owner task.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let kv = ephemeral_kv::KvHandle::builder().mailbox_capacity(16).spawn();
    /// let huge = ephemeral_kv::KvHandle::builder().mailbox_capacity(usize::MAX).spawn();
    /// assert_eq!(huge.stats().await.unwrap().mailbox_depth, 0);
    /// # let _ = kv;
    /// # }
    /// ```
    pub fn mailbox_capacity(mut self, capacity: usize) -> KvBuilder {
        self.mailbox_capacity = capacity.clamp(1, MAX_CAPACITY);
        self
    }

    /// The most entries the in-process store may hold (default: no limit), to bound its memory
    /// as Redis's `maxmemory` does. Entries are counted as [`Stats::entries`](crate::Stats)
    /// counts them: live ones and expired ones not yet removed.
    ///
    /// Only a call that would add a key needs room: `set`, `mset`, `set_if_absent`,
    /// `compare_and_set`, `incr` and `update` creating a key, a `transaction` that leaves more
    /// keys than it found, and `list_append_unique` or `list_push` starting a list. Overwriting,
    /// changing or deleting a key the store holds never does. When such a call finds the store
    /// full:
    /// 1. expired entries are removed first, earliest deadline first, as many as the call needs:
    ///    they are dead anyway (counted in [`Stats::expirations`](crate::Stats::expirations) and
    ///    reported to watchers as [`WatchEvent::Expired`](crate::WatchEvent::Expired), like any
    ///    expiry);
    /// 2. if the store is still full, the [`eviction`](KvBuilder::eviction) policy decides:
    ///    [`Eviction::Refuse`] (the default) fails the call with
    ///    [`KvError::Full`](crate::KvError::Full); [`Eviction::VolatileTtl`] evicts the live keys
    ///    closest to expiry.
    ///
    /// # Guarantees
    /// - The store never holds more than `n` entries after a command.
    /// - A refused call changes no key: the room a call needs is counted before anything is
    ///   written, so an `mset` or a `transaction` that would overflow is refused whole, never
    ///   applied in part.
    /// - Without a limit, the store pays one branch per write for this setting.
    ///
    /// `0` refuses every new key.
    ///
    /// # On Redis
    /// No effect: a Redis server bounds its own memory with `maxmemory` and picks what to evict
    /// with `maxmemory-policy` (`volatile-ttl` is the policy [`Eviction::VolatileTtl`] follows),
    /// configured on the server. There a write refused for memory fails with
    /// [`KvError::Backend`](crate::KvError::Backend).
    ///
    /// ```
    /// use std::time::Duration;
    /// use ephemeral_kv::{KvError, KvHandle};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), KvError> {
    /// let kv = KvHandle::builder().max_entries(2).spawn();
    /// kv.set("a", 1).await?;
    /// kv.set("b", 2).await?;
    /// kv.set("a", 10).await?; // overwriting needs no room
    /// let refused = kv.set("c", 3).await;
    /// assert!(matches!(refused, Err(KvError::Full { ref key, max_entries: 2 }) if key == "c"));
    /// let refused = kv.mset([("b", 20), ("c", 30)]).await; // one new key too many: all refused
    /// assert!(matches!(refused, Err(KvError::Full { .. })));
    /// assert_eq!(kv.get("b").await?.as_deref(), Some(&serde_json::json!(2)));
    /// kv.delete("b").await?;
    /// kv.set("c", 3).await?; // room again
    /// assert_eq!(kv.stats().await?.entries, 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn max_entries(mut self, n: usize) -> KvBuilder {
        self.max_entries = Some(n);
        self
    }

    /// What the in-process store does when a new key finds it holding
    /// [`max_entries`](KvBuilder::max_entries) live entries (default [`Eviction::Refuse`]). No
    /// effect without `max_entries`, nor on Redis (set the server's `maxmemory-policy` there).
    ///
    /// ```
    /// use std::time::Duration;
    /// use ephemeral_kv::{Eviction, KvHandle};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = KvHandle::builder().max_entries(1).eviction(Eviction::VolatileTtl).spawn();
    /// kv.set("old", 1).ttl(Duration::from_secs(60)).await?;
    /// kv.set("new", 2).await?; // evicts "old", the key closest to expiry
    /// assert_eq!(kv.get("old").await?, None);
    /// assert_eq!(kv.stats().await?.evictions, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn eviction(mut self, policy: Eviction) -> KvBuilder {
        self.eviction = policy;
        self
    }

    /// Starts the owner task on the current tokio runtime and returns the first handle.
    ///
    /// # Panics
    /// Like [`tokio::spawn`], panics when called outside a tokio runtime.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let kv = ephemeral_kv::KvBuilder::new().spawn();
    /// # let _ = kv;
    /// # }
    /// ```
    #[track_caller]
    pub fn spawn(self) -> KvHandle {
        let store = StoreId::new();
        let sender = local::spawn(self.local_config(store));
        KvHandle::new(Mailbox::new(sender, self.prefix, store))
    }

    /// The in-process store's settings.
    fn local_config(&self, store: StoreId) -> local::Config {
        local::Config {
            active_expiry: self.active_expiry,
            mailbox_capacity: self.mailbox_capacity,
            store,
            capacity: self.capacity,
            bound: self.max_entries.map(|max_entries| local::Bound {
                max_entries,
                eviction: self.eviction,
            }),
        }
    }

    /// When a [`durable`](KvBuilder::durable) store answers a write (default
    /// [`Durability::EveryBatch`](crate::Durability::EveryBatch): once it is on disk). No effect
    /// on [`spawn`](KvBuilder::spawn) or `redis(url)`. Only with the `durable` cargo feature.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ephemeral_kv::{Durability, KvHandle};
    /// let builder = KvHandle::builder().durability(Durability::Interval(Duration::from_millis(100)));
    /// # let _ = builder;
    /// ```
    #[cfg(feature = "durable")]
    pub fn durability(mut self, durability: crate::durability::Durability) -> KvBuilder {
        self.durability = durability;
        self
    }

    /// Starts the in-process store, as [`spawn`](KvBuilder::spawn) does, journaled to the SQLite
    /// file at `path` (created if missing): the next `durable` on that file starts with every
    /// live key as it was, values, lists and TTLs. Only with the `durable` cargo feature
    /// (`ephemeral-kv = { version = "0.1", features = ["durable"] }`).
    ///
    /// Every call is served from memory by the same owner task, under the same rules; the
    /// changes are committed to the file by a journal thread, off the owner task, each key's
    /// latest state once per commit, and [`durability`](KvBuilder::durability) says whether a
    /// write is answered before or after its commit (under `EveryBatch`, a waiting
    /// `list_pop_front` served by a push is answered after its removal is committed, like any
    /// write; reads are answered at once). A read may see a write whose commit is still in
    /// flight: such a write is lost only by a crash, and then its caller never got an OK (under
    /// `EveryBatch`). A TTL is kept as a wall-clock deadline: a key that expired while no store
    /// had the file is not loaded. `docs/durability.md` in the repository has the schema and the
    /// details.
    ///
    /// One store has the file at a time. While any handle of a store is alive, a second
    /// `durable` on its file, in this process or another, is refused at once (`Locked`).
    /// [`KvHandle::shutdown`](crate::KvHandle::shutdown) returns once every change is committed
    /// and the file is closed, so that any opener finds it free. Dropping the last handle (every
    /// clone and prefixed handle) commits and closes it too, on the owner task, without making
    /// the dropper wait: a `durable` on that file in this process meanwhile waits for the close
    /// (up to 10 s, on a blocking thread) rather than being refused; another process may be
    /// refused as `Locked` until it is done. Reading the file takes about a second per million
    /// keys, on a blocking thread.
    ///
    /// # Errors
    /// [`KvError::Durable`], with its [`kind`](crate::DurableErrorKind):
    /// `Locked` (another store, in this process or another, has the file), `NotOurs` (not a
    /// SQLite file, or another program's), `NewerFormat`, `Corrupt`, `Open` (cannot be
    /// opened or created), `TooManyKeys` (more live keys than
    /// [`max_entries`](KvBuilder::max_entries)). The file is never changed by a refused open.
    ///
    /// # Panics
    /// Like [`tokio::spawn`], panics when called outside a tokio runtime.
    ///
    /// ```
    /// use std::time::Duration;
    /// use serde_json::json;
    /// use ephemeral_kv::{KvHandle, Ttl};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// # let dir = std::env::temp_dir().join(format!("ekv-doc-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir).unwrap();
    /// let path = dir.join("kv.db");
    /// # let _ = std::fs::remove_file(&path);
    /// let kv = KvHandle::builder().durable(&path).await?;
    /// kv.set("user_id", 42).ttl(Duration::from_secs(600)).await?;
    /// kv.list_push("jobs", [json!("a"), json!("b")]).await?;
    /// kv.shutdown().await; // closes the file
    ///
    /// let kv = KvHandle::builder().durable(&path).await?; // as it was
    /// assert_eq!(kv.get("user_id").await?.as_deref(), Some(&json!(42)));
    /// assert!(matches!(kv.ttl("user_id").await?, Ttl::Expires(left) if left <= Duration::from_secs(600)));
    /// assert_eq!(kv.list_pop_all("jobs").await?, vec![json!("a"), json!("b")]);
    /// drop(kv); // the last handle: the owner task closes the file...
    ///
    /// let kv = KvHandle::builder().durable(&path).await?; // ...which this open waits for
    /// assert_eq!(kv.get("jobs").await?, None);
    /// # kv.shutdown().await;
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "durable")]
    pub async fn durable(self, path: impl AsRef<std::path::Path>) -> Result<KvHandle, KvError> {
        use crate::error::DurableErrorKind;
        let path = path.as_ref().to_path_buf();
        let durability = self.durability;
        let opening = path.clone();
        let max_entries = self.max_entries;
        let (journal, loaded) = tokio::task::spawn_blocking(move || {
            local::journal::open(&opening, durability, max_entries)
        })
        .await
        .map_err(|error| KvError::Durable {
            path: path.clone(),
            kind: DurableErrorKind::Open,
            message: "the thread reading the file failed".into(),
            source: Some(std::sync::Arc::new(error)),
        })??;
        // TTLs become deadlines on tokio's clock here, on the runtime (paused in tests).
        let now = tokio::time::Instant::now();
        let loaded: Vec<_> = loaded
            .into_iter()
            .map(|(key, value, left)| (key, value, left.and_then(|left| now.checked_add(left))))
            .collect();
        let store = StoreId::new();
        let mut config = self.local_config(store);
        // The table is sized for what the file holds, so loading it never grows the table.
        config.capacity = config.capacity.max(loaded.len());
        let sender = local::spawn_durable(config, journal, loaded);
        Ok(KvHandle::new(Mailbox::new(sender, self.prefix, store)))
    }

    /// Connects to the Redis server at `url` (such as `"redis://127.0.0.1:6379"`) and returns a
    /// handle whose calls run there: the same [`KvHandle`], with the same calls, as
    /// [`spawn`](KvBuilder::spawn) gives, shared by every process that connects to the same server
    /// with the same [`prefix`](KvBuilder::prefix). Only with the `redis` cargo feature.
    ///
    /// The prefix namespaces the Redis keys: key `k` of a handle with prefix `app:` is the Redis
    /// key `app:k`. Values are stored as compact JSON text, TTLs in milliseconds.
    ///
    /// One server (or a Redis-compatible one, 6.2 or newer); for a Redis Cluster, use
    /// [`redis_cluster`](KvBuilder::redis_cluster).
    ///
    /// # URLs, credentials and TLS
    /// `redis://[user:password@]host:port[/db]`; an ACL user may be confined to the prefix's keys
    /// (`docs/redis-deploy.md` gives the exact ACL line). With the `redis-tls` cargo feature,
    /// `rediss://` connects over TLS (rustls, with the system's root certificates), and
    /// [`redis_ca_certificate`](KvBuilder::redis_ca_certificate) and
    /// [`redis_client_certificate`](KvBuilder::redis_client_certificate) add a CA of one's own and
    /// a client certificate. A certificate problem fails here, with a message that says which.
    ///
    /// # What differs from the in-process store
    /// Calls cost a network round trip and can fail with [`KvError::Backend`]; `update` and
    /// `transaction` are optimistic (their closure may run again); `watch`, `wait_for` and the
    /// blocking pop are pushed by a change stream on the server, which does not report expiries.
    /// `docs/redis.md` in the repository lists every difference.
    ///
    /// # Errors
    /// [`KvError::Backend`] if the URL is invalid or asks for RESP3 (`protocol=resp3`: under it a
    /// reconnection between `WATCH` and `EXEC` would go unnoticed), the server cannot be reached,
    /// or it refuses to load the scripts (Redis 6.2 or newer is needed).
    ///
    /// # Panics
    /// Like [`tokio::spawn`], panics when called outside a tokio runtime.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use serde_json::json;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::builder()
    ///     .prefix("app:")
    ///     .redis("redis://127.0.0.1:6379")
    ///     .await?;
    /// kv.set("user_id", 42).ttl(Duration::from_secs(600)).await?;
    /// assert_eq!(kv.get("user_id").await?.as_deref(), Some(&json!(42)));
    /// // A lease that another process, on the same server and prefix, cannot take meanwhile.
    /// assert!(kv.set_if_absent("lock:job:7", "worker-1").ttl(Duration::from_secs(30)).await?);
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "redis")]
    pub async fn redis(self, url: impl AsRef<str>) -> Result<KvHandle, KvError> {
        let store = StoreId::new();
        let connect = redis::connect(
            url.as_ref(),
            self.prefix.clone(),
            self.mailbox_capacity,
            store,
        );
        let sender = redis::client::with_settings(self.redis_client.clone(), connect).await?;
        Ok(KvHandle::new(Mailbox::new(sender, self.prefix, store)))
    }

    /// Connects to the Redis Cluster that the seed node URLs `urls` belong to (any of its
    /// nodes; the others are found from them) and returns a handle whose calls run there: the
    /// same [`KvHandle`] as [`redis`](KvBuilder::redis) gives, with the same URLs, credentials,
    /// ACL users and TLS settings. Only with the `redis` cargo feature.
    ///
    /// # Hash tags: the way to use a cluster
    /// A cluster spreads keys over 16384 hash slots, and a Redis command or script may only
    /// touch keys of one slot. Give the handle a prefix with a **hash tag**, such as
    /// `{tenant-7}:`: Redis then hashes only the tag, every key of the handle is in one slot, and
    /// every call keeps the guarantees it has on one server (`mset` and `transaction` atomic,
    /// `mget` one snapshot, `watch`, `wait_for` and the blocking pop pushed by the change
    /// stream). Spread the load over the cluster with many such prefixes (one per tenant, say).
    ///
    /// Without a tag, keys spread over the slots. Every call that names one key works;
    /// `mget` and `scan_prefix` work across slots, reading each key atomically but not all in
    /// one snapshot; `mset` and `transaction` over keys of two slots are refused with
    /// [`KvError::InvalidArgument`] naming two of them, before anything is written; `watch`,
    /// `wait_for` and `list_pop_front(..).wait(..)` are refused with
    /// [`KvError::InvalidArgument`] saying to use a tag.
    ///
    /// # Failover
    /// A call in flight when a primary fails ends with a value or a [`KvError::Backend`] (which
    /// may or may not have been applied), and none is applied twice, so an `incr` answered once
    /// added once; once a replica has taken over, the calls succeed again. Replication is
    /// asynchronous: a write answered just before a primary fails can be lost
    /// (`docs/redis-deploy.md` in the repository).
    ///
    /// # Errors
    /// [`KvError::Backend`] as for [`redis`](KvBuilder::redis), and of kind
    /// [`Config`](crate::BackendErrorKind::Config) for no URL, or URLs that mix `redis://` and
    /// `rediss://`.
    ///
    /// # Panics
    /// Like [`tokio::spawn`], panics when called outside a tokio runtime.
    ///
    /// ```no_run
    /// use serde_json::json;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::builder()
    ///     .prefix("{tenant-7}:")
    ///     .redis_cluster(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"])
    ///     .await?;
    /// kv.mset([("a", 1), ("b", 2)]).await?; // one slot: atomic, as on one server
    /// assert_eq!(kv.get("a").await?.as_deref(), Some(&json!(1)));
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "redis")]
    pub async fn redis_cluster<I>(self, urls: I) -> Result<KvHandle, KvError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let store = StoreId::new();
        let urls = urls
            .into_iter()
            .map(|url| url.as_ref().to_owned())
            .collect();
        let connect =
            redis::connect_cluster(urls, self.prefix.clone(), self.mailbox_capacity, store);
        let sender = redis::client::with_settings(self.redis_client.clone(), connect).await?;
        Ok(KvHandle::new(Mailbox::new(sender, self.prefix, store)))
    }

    /// Trusts `pem`, one or more CA certificates in PEM form (`-----BEGIN CERTIFICATE-----`),
    /// beside the system's root certificates, for a `rediss://` [`redis`](KvBuilder::redis) URL:
    /// the usual setting for a server whose certificate a private CA signed. May be called more
    /// than once; each call adds. Only with the `redis-tls` cargo feature.
    ///
    /// The certificate is checked at [`redis`](KvBuilder::redis), which fails with
    /// [`KvError::Backend`] of kind [`Config`](crate::BackendErrorKind::Config) when `pem` holds
    /// no certificate, when the URL is not `rediss://`, and when the server's certificate does not
    /// verify: an unknown issuer, another host name than the URL's, or an expired certificate,
    /// each said in the message.
    ///
    /// ```
    /// use ephemeral_kv::{BackendErrorKind, KvHandle};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // Typically `std::fs::read("/etc/redis/tls/ca.crt")?`.
    /// let ca = "not a certificate";
    /// let refused = KvHandle::builder()
    ///     .redis_ca_certificate(ca)
    ///     .redis("rediss://127.0.0.1:6380")
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(refused.backend_kind(), Some(BackendErrorKind::Config));
    /// assert!(refused.to_string().contains("redis_ca_certificate: no `-----BEGIN CERTIFICATE-----`"));
    /// # }
    /// ```
    #[cfg(feature = "redis-tls")]
    pub fn redis_ca_certificate(mut self, pem: impl Into<Vec<u8>>) -> KvBuilder {
        self.redis_client.ca_certificates.push(pem.into());
        self
    }

    /// Presents `cert_pem` (the client's certificate, then any intermediate ones, in PEM form)
    /// with its private key `key_pem` (PEM: PKCS#8, PKCS#1 or SEC1) to a `rediss://` server that
    /// asks for one: mutual TLS, for a server run with `tls-auth-clients yes`. A later call
    /// replaces an earlier one. Only with the `redis-tls` cargo feature.
    ///
    /// The key material is never printed (the builder's `Debug` redacts it). A server that wants
    /// a certificate and gets none, or refuses the one given, fails [`redis`](KvBuilder::redis)
    /// with [`KvError::Backend`] of kind [`Config`](crate::BackendErrorKind::Config) saying so.
    ///
    /// ```
    /// use ephemeral_kv::{BackendErrorKind, KvHandle};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // Typically `std::fs::read(..)` of the files the server's operator issued.
    /// let (cert, key) = (b"-----BEGIN CERTIFICATE-----...".to_vec(), b"...".to_vec());
    /// let builder = KvHandle::builder().prefix("app:").redis_client_certificate(cert, key);
    /// assert!(!format!("{builder:?}").contains("BEGIN CERTIFICATE"));
    /// // TLS settings need a TLS URL.
    /// let refused = builder.redis("redis://127.0.0.1:6379").await.unwrap_err();
    /// assert_eq!(refused.backend_kind(), Some(BackendErrorKind::Config));
    /// assert!(refused.to_string().contains("need a `rediss://` URL"));
    /// # }
    /// ```
    #[cfg(feature = "redis-tls")]
    pub fn redis_client_certificate(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> KvBuilder {
        self.redis_client.client_certificate = Some((cert_pem.into(), key_pem.into()));
        self
    }
}
