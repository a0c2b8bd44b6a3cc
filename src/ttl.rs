//! [`Ttl`]: how long a key has left, as told by [`KvHandle::ttl`](crate::KvHandle::ttl).

use std::time::Duration;

use crate::error::KvError;

/// How long a key has left to live.
///
/// The three cases a bare `Option<Duration>` would blur are kept apart: a key that is not there, a
/// key that never expires, and a key with time left.
///
/// ```
/// use std::time::Duration;
/// use ephemeral_kv::Ttl;
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), ephemeral_kv::KvError> {
/// let kv = ephemeral_kv::KvHandle::spawn();
/// kv.set("forever", 1).await?;
/// kv.set("lease", 1).ttl(Duration::from_secs(30)).await?;
/// assert_eq!(kv.ttl("missing").await?, Ttl::Missing);
/// assert_eq!(kv.ttl("forever").await?, Ttl::NoExpiry);
/// assert_eq!(kv.ttl("lease").await?, Ttl::Expires(Duration::from_secs(30)));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ttl {
    /// The key is missing or expired.
    Missing,
    /// The key is live and never expires.
    NoExpiry,
    /// The key is live and expires after this long (never zero: a key is expired at its deadline).
    Expires(Duration),
}

/// Refuses a zero TTL, naming `key`: a key that expires the instant it is written is almost always
/// a bug. Every call that takes a TTL checks it here, before anything is sent.
pub(crate) fn check_ttl(key: &str, ttl: Option<Duration>) -> Result<(), KvError> {
    match ttl {
        Some(ttl) if ttl.is_zero() => Err(KvError::InvalidTtl {
            key: key.to_owned(),
            ttl,
        }),
        _ => Ok(()),
    }
}
