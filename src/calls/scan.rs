//! The calls over many keys with a limit: [`PurgeExpired`] and [`ScanPrefix`].

use super::pending::{Pending, Request};
use crate::command;
use crate::error::KvError;
use crate::mailbox::{relative_key, Mailbox};

/// The limit of [`KvHandle::purge_expired`](crate::KvHandle::purge_expired) when none is given, as in the reference.
///
/// ```
/// assert_eq!(ephemeral_kv::DEFAULT_PURGE_LIMIT, 1000);
/// ```
pub const DEFAULT_PURGE_LIMIT: usize = 1000;

/// A pending [`KvHandle::purge_expired`](crate::KvHandle::purge_expired). Await it to get how many entries were removed.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ephemeral_kv::KvError> {
/// let kv = ephemeral_kv::KvHandle::spawn();
/// assert_eq!(kv.purge_expired().await?, 0);
/// # Ok(())
/// # }
/// ```
pub type PurgeExpired<'a> = Pending<'a, PurgeExpiredArgs>;

/// The arguments of [`PurgeExpired`]: the command itself.
#[derive(Debug)]
pub struct PurgeExpiredArgs(command::PurgeExpired);

impl PurgeExpiredArgs {
    pub(crate) fn new() -> Self {
        PurgeExpiredArgs(command::PurgeExpired {
            limit: DEFAULT_PURGE_LIMIT,
        })
    }
}

impl Request for PurgeExpiredArgs {
    type Op = command::PurgeExpired;
    type Output = usize;
    type Shape = ();

    fn command(self) -> Result<(command::PurgeExpired, ()), KvError> {
        Ok((self.0, ()))
    }

    fn output((): (), removed: usize, _: &Mailbox) -> Result<usize, KvError> {
        Ok(removed)
    }
}

impl PurgeExpired<'_> {
    /// The most entries to remove in this call (default 1000).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// assert_eq!(kv.purge_expired().limit(500).await?, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn limit(self, limit: usize) -> Self {
        self.with(|args| args.0.limit = limit)
    }
}

/// A pending [`KvHandle::scan_prefix`](crate::KvHandle::scan_prefix). Await it to get the keys.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ephemeral_kv::KvError> {
/// let kv = ephemeral_kv::KvHandle::spawn();
/// kv.set("run:1:b", 0).await?;
/// kv.set("run:1:a", 0).await?;
/// assert_eq!(kv.scan_prefix("run:1:").await?, vec!["run:1:a", "run:1:b"]);
/// # Ok(())
/// # }
/// ```
pub type ScanPrefix<'a> = Pending<'a, ScanPrefixArgs>;

/// The arguments of [`ScanPrefix`]: the command itself.
#[derive(Debug)]
pub struct ScanPrefixArgs(command::ScanPrefix);

impl ScanPrefixArgs {
    pub(crate) fn new(prefix: String) -> Self {
        ScanPrefixArgs(command::ScanPrefix {
            prefix,
            limit: usize::MAX,
        })
    }
}

impl Request for ScanPrefixArgs {
    type Op = command::ScanPrefix;
    type Output = Vec<String>;
    type Shape = ();

    fn command(self) -> Result<(command::ScanPrefix, ()), KvError> {
        Ok((self.0, ()))
    }

    fn output((): (), keys: Vec<String>, mailbox: &Mailbox) -> Result<Vec<String>, KvError> {
        // Keys come back full; strip the handle's prefix here, off the owner task.
        let strip = mailbox.prefix().len();
        Ok(keys
            .into_iter()
            .map(|key| relative_key(key, strip))
            .collect())
    }
}

impl ScanPrefix<'_> {
    /// The most keys to return: the first `limit` in sorted order (default: all).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// kv.mset([("job:3", 0), ("job:1", 0), ("job:2", 0)]).await?;
    /// assert_eq!(kv.scan_prefix("job:").limit(2).await?, vec!["job:1", "job:2"]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn limit(self, limit: usize) -> Self {
        self.with(|args| args.0.limit = limit)
    }
}
