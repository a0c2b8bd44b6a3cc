//! [`Durability`]: when a durable store answers a write. Set on the builder, read by the journal
//! of the in-process store (feature `durable`).

use std::time::Duration;

/// When a store opened with [`KvBuilder::durable`](crate::KvBuilder::durable) answers a write,
/// relative to committing it to its SQLite file. Set with
/// [`KvBuilder::durability`](crate::KvBuilder::durability).
///
/// The default is [`EveryBatch`](Durability::EveryBatch): a store asked to be durable should not
/// lose a write it said OK to, so the faster promise is the one to opt into. Either way commits
/// are grouped (one SQLite transaction for many commands), made on a journal thread, never on the
/// owner task, and a command is never half on disk.
///
/// ```
/// use ephemeral_kv::Durability;
/// assert_eq!(Durability::default(), Durability::EveryBatch);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Durability {
    /// A call that changed something (a write, a pop, a closure) is answered only once its
    /// change is committed (and synced) to the file: an OK survives a crash or a power cut. A
    /// waiting `list_pop_front` served by a push is answered after its removal is committed too.
    /// Every command that came while the previous commit ran shares the next one, and so do
    /// the next writes of the callers that commit answered (the store lets them run before it
    /// starts the next commit), so many concurrent writers cost one sync per commit, not per
    /// write. Reads are answered at once.
    ///
    /// ```no_run
    /// use ephemeral_kv::{Durability, KvHandle};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = KvHandle::builder().durability(Durability::EveryBatch).durable("kv.db").await?;
    /// kv.set("a", 1).await?; // on disk once this returns
    /// # Ok(())
    /// # }
    /// ```
    #[default]
    EveryBatch,
    /// Every call is answered at once, as by the in-memory store; the changes are committed at
    /// most once per the given time, each key's latest state once, so a write is on disk within
    /// that time plus one commit's. A crash loses at most that much of acknowledged writes, never
    /// part of a command.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use ephemeral_kv::{Durability, KvHandle};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = KvHandle::builder()
    ///     .durability(Durability::Interval(Duration::from_millis(100)))
    ///     .durable("kv.db")
    ///     .await?;
    /// kv.set("a", 1).await?; // on disk within 100 ms
    /// # Ok(())
    /// # }
    /// ```
    Interval(Duration),
}
