//! [`Eviction`]: what a bounded store does when it is full. Set on the builder, read by the
//! in-process store as it is.

/// What the in-process store does when a call would add a key to a store already holding
/// [`max_entries`](crate::KvBuilder::max_entries) entries, none of them expired. Set with
/// [`KvBuilder::eviction`](crate::KvBuilder::eviction); the default is [`Refuse`](Eviction::Refuse).
///
/// Either way expired entries go first (they are dead anyway), the call changes nothing if it is
/// refused, and overwriting a key the store holds never needs room. The enum is
/// `#[non_exhaustive]`: more policies may be added.
///
/// ```
/// use ephemeral_kv::Eviction;
/// assert_eq!(Eviction::default(), Eviction::Refuse);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Eviction {
    /// Never remove a live key to make room: the call fails with
    /// [`KvError::Full`](crate::KvError::Full) and changes nothing (Redis `noeviction`). The
    /// caller decides what to give up.
    ///
    /// ```
    /// use ephemeral_kv::{Eviction, KvError, KvHandle};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), KvError> {
    /// let kv = KvHandle::builder().max_entries(1).eviction(Eviction::Refuse).spawn();
    /// kv.set("a", 1).await?;
    /// let refused = kv.set("b", 2).await;
    /// assert!(matches!(refused, Err(KvError::Full { max_entries: 1, .. })));
    /// assert_eq!(kv.get("a").await?.as_deref(), Some(&serde_json::json!(1)));
    /// assert_eq!(kv.get("b").await?, None);
    /// # Ok(())
    /// # }
    /// ```
    #[default]
    Refuse,
    /// Evict the live keys closest to expiry, as many as the call needs (Redis `volatile-ttl`,
    /// exact here rather than sampled). Keys without a TTL are never evicted, nor is a key the
    /// call itself writes; when that leaves too few keys to evict, the call fails with
    /// [`KvError::Full`](crate::KvError::Full) and changes nothing. Each eviction is counted in
    /// [`Stats::evictions`](crate::Stats::evictions) and reported to watchers as
    /// [`WatchEvent::Evicted`](crate::WatchEvent::Evicted).
    ///
    /// ```
    /// use std::time::Duration;
    /// use ephemeral_kv::{Eviction, KvError, KvHandle};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), KvError> {
    /// let kv = KvHandle::builder().max_entries(2).eviction(Eviction::VolatileTtl).spawn();
    /// kv.set("config", 1).await?; // no TTL: never evicted
    /// kv.set("session:a", 2).ttl(Duration::from_secs(60)).await?;
    /// kv.set("session:b", 3).ttl(Duration::from_secs(600)).await?; // evicts session:a
    /// assert_eq!(kv.get("session:a").await?, None);
    /// assert_eq!(kv.stats().await?.evictions, 1);
    ///
    /// // Only keys without a TTL left: nothing may be evicted, so the call is refused.
    /// kv.persist("session:b").await?;
    /// assert!(matches!(kv.set("session:c", 4).await, Err(KvError::Full { .. })));
    /// # Ok(())
    /// # }
    /// ```
    VolatileTtl,
}
