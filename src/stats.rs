//! [`Stats`]: what the store holds, for monitoring and tests.

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
}
