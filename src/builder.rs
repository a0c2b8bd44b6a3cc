//! [`KvBuilder`]: a store's settings, and the choice of executor that runs it.
//!
//! [`spawn`](KvBuilder::spawn) starts the in-process executor ([`local`](crate::local));
//! `redis(url)` (feature `redis`) connects the Redis one. Either way the result is the same
//! [`KvHandle`]: the caller side reaches an executor only through the mailbox its `spawn` or
//! `connect` returns.

use crate::closure::StoreId;
#[cfg(feature = "redis")]
use crate::error::KvError;
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
        // `KvBuilder::default()` would be the same (it calls `new`): the one mutant of this
        // function that cargo-mutants reports as missed is equivalent.
        KvBuilder::new()
    }
}

/// The default number of commands that may wait in the mailbox before callers wait for room.
const DEFAULT_MAILBOX_CAPACITY: usize = 1024;

/// The largest mailbox a builder makes: a million waiting commands is already more than a store
/// for small values should queue, and tokio's channel refuses sizes near `usize::MAX`.
const MAX_MAILBOX_CAPACITY: usize = 1 << 20;

/// Configures a store before starting it. Made by [`KvHandle::builder`].
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
}

impl Default for KvBuilder {
    fn default() -> Self {
        KvBuilder::new()
    }
}

impl KvBuilder {
    /// Default settings: no prefix, active expiry on, a mailbox of 1024 commands.
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
        }
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
        self.mailbox_capacity = capacity.clamp(1, MAX_MAILBOX_CAPACITY);
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
        let sender = local::spawn(local::Config {
            active_expiry: self.active_expiry,
            mailbox_capacity: self.mailbox_capacity,
            store,
        });
        KvHandle::new(Mailbox::new(sender, self.prefix, store))
    }

    /// Connects to the Redis server at `url` (such as `"redis://127.0.0.1:6379"`) and returns a
    /// handle whose calls run there: the same [`KvHandle`], with the same calls, as
    /// [`spawn`](KvBuilder::spawn) gives, shared by every process that connects to the same server
    /// with the same [`prefix`](KvBuilder::prefix). Only with the `redis` cargo feature.
    ///
    /// The prefix namespaces the Redis keys: key `k` of a handle with prefix `app:` is the Redis
    /// key `app:k`. Values are stored as compact JSON text, TTLs in milliseconds.
    ///
    /// One server (or a Redis-compatible one, 6.2 or newer); Redis Cluster is not supported (the
    /// scripts for `mset` with a TTL touch several keys, which a cluster only allows within one
    /// hash slot).
    ///
    /// # What differs from the in-process store
    /// - Calls cost a network round trip; concurrent calls share one (the owner task sends each
    ///   batch as one pipeline).
    /// - Every call can fail with [`KvError::Backend`] when the server is unreachable or slow
    ///   (after about two seconds); the handle reconnects on its own when the server is back.
    /// - [`update`](KvHandle::update) and [`transaction`](KvHandle::transaction) are optimistic:
    ///   their closure may run more than once, and after 16 conflicts in a row they give up with
    ///   [`KvError::Contended`].
    /// - [`watch`](KvHandle::watch) returns [`KvError::Unsupported`].
    ///   [`wait_for`](KvHandle::wait_for) works by polling: it resolves within about 20 ms of the
    ///   write, from any client.
    /// - [`purge_expired`](KvHandle::purge_expired) returns `0` (Redis removes expired keys
    ///   itself); [`stats`](KvHandle::stats) fills `entries` (the keys under the builder's
    ///   prefix), `commands` (handled by this handle's owner task) and `watchers` (pending
    ///   `wait_for` calls); the rest is 0.
    /// - TTLs run on the server's clock, not tokio's: pausing tokio's time does not expire keys.
    /// - [`list_push`](KvHandle::list_push) and [`list_pop_front`](KvHandle::list_pop_front) are
    ///   optimistic rewrites of the whole list, like `update`.
    /// - The builder's [`active_expiry`](KvBuilder::active_expiry) has no effect.
    ///
    /// # Errors
    /// [`KvError::Backend`] if the URL is invalid, the server cannot be reached, or it refuses to
    /// load the scripts (Redis 6.2 or newer is needed).
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
        let sender = redis::connect(
            url.as_ref(),
            self.prefix.clone(),
            self.mailbox_capacity,
            store,
        )
        .await?;
        Ok(KvHandle::new(Mailbox::new(sender, self.prefix, store)))
    }
}
