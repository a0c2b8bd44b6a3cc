//! [`Stats`]: what the store holds and how it has been used, for monitoring and tests.

/// A snapshot of the store, taken by [`KvHandle::stats`](crate::KvHandle::stats) in one command.
///
/// Counts are of entries held in memory, which includes expired entries not yet removed (with
/// active expiry on, those are removed soon after their deadline). The struct is
/// `#[non_exhaustive]`: more counters may be added.
///
/// ```
/// use std::time::Duration;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ephemeral_kv::KvError> {
/// let kv = ephemeral_kv::KvHandle::spawn();
/// kv.set("a", 1).await?;
/// kv.set("b", 2).ttl(Duration::from_secs(60)).await?;
/// let stats = kv.stats().await?;
/// assert_eq!((stats.entries, stats.expiring), (2, 1));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Entries held, live or expired-but-not-yet-removed.
    pub entries: usize,
    /// Entries that have a deadline (the size of the expiry index).
    pub expiring: usize,
    /// Key lookups that found a live value, since the store started. Every command that reads a
    /// key before acting on it (`get`, `mget`, `expire`, `incr`, `compare_and_set`, ...) counts one
    /// lookup per key; writes that replace a key unseen (`set`, `mset`) count none.
    pub hits: u64,
    /// Key lookups that found the key missing or expired, since the store started.
    pub misses: u64,
    /// Entries removed because their TTL ran out (lazily, by a purge or by active expiry), since
    /// the store started.
    pub expirations: u64,
    /// Live entries the store removed to make room for new keys, since the store started: only a
    /// store bounded by [`KvBuilder::max_entries`](crate::KvBuilder::max_entries) with
    /// [`Eviction::VolatileTtl`](crate::Eviction::VolatileTtl) evicts. Expired entries removed to
    /// make room count as [`expirations`](Stats::expirations), not here. Always 0 on Redis, which
    /// evicts by its own `maxmemory-policy`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ephemeral_kv::{Eviction, KvHandle};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = KvHandle::builder().max_entries(2).eviction(Eviction::VolatileTtl).spawn();
    /// kv.set("a", 1).ttl(Duration::from_secs(10)).await?;
    /// kv.set("b", 2).ttl(Duration::from_secs(20)).await?;
    /// kv.mset([("c", 3), ("d", 4)]).await?; // two new keys: "a" and "b" make room
    /// let stats = kv.stats().await?;
    /// assert_eq!((stats.entries, stats.evictions, stats.expirations), (2, 2, 0));
    /// # Ok(())
    /// # }
    /// ```
    pub evictions: u64,
    /// Commands the owner task has applied, since the store started (this `stats` call included).
    pub commands: u64,
    /// Commands waiting in the owner task's mailbox when this `stats` call joined it (all of them
    /// ahead of it): how far behind the owner task is. Near 0 when the store keeps up; near the
    /// mailbox capacity when callers outrun it and wait for room.
    pub mailbox_depth: usize,
    /// Watch streams and pending `wait_for` calls the owner task is serving.
    pub watchers: usize,
}
