//! The writing calls with options: [`Set`], [`SetIfAbsent`], [`CompareAndSet`], [`Mset`] and
//! [`Incr`].

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::pending::{Pending, Request};
use crate::command;
use crate::error::KvError;
use crate::mailbox::Mailbox;
use crate::ttl::check_ttl;
use crate::value::{check_depth, to_json};

/// What the single-key writing calls carry until sent: the key, the value as serialized when the
/// call was made (or why it did not serialize), and the TTL given so far.
#[derive(Debug)]
struct Write {
    key: String,
    value: Result<Value, KvError>,
    ttl: Option<Duration>,
}

impl Write {
    fn new<T: Serialize>(key: String, value: T) -> Self {
        let value = to_json(&key, value);
        Write {
            key,
            value,
            ttl: None,
        }
    }

    /// The parts of the command, or the first thing wrong with them: a value that did not
    /// serialize, then a zero TTL.
    fn checked(self) -> Result<(String, Value, Option<Duration>), KvError> {
        let value = self.value?;
        check_ttl(&self.key, self.ttl)?;
        Ok((self.key, value, self.ttl))
    }
}

/// A pending [`KvHandle::set`](crate::KvHandle::set). Await it to write.
///
/// ```
/// use std::time::Duration;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ephemeral_kv::KvError> {
/// let kv = ephemeral_kv::KvHandle::spawn();
/// let call: ephemeral_kv::Set<'_> = kv.set("k", 1);
/// call.ttl(Duration::from_secs(5)).await?;
/// # Ok(())
/// # }
/// ```
pub type Set<'a> = Pending<'a, SetArgs>;

/// The arguments of [`Set`].
#[derive(Debug)]
pub struct SetArgs(Write);

impl SetArgs {
    pub(crate) fn new<T: Serialize>(key: String, value: T) -> Self {
        SetArgs(Write::new(key, value))
    }
}

impl Request for SetArgs {
    type Op = command::Set;
    type Output = ();
    type Shape = ();

    fn command(self) -> Result<(command::Set, ()), KvError> {
        let (key, value, ttl) = self.0.checked()?;
        Ok((command::Set { key, value, ttl }, ()))
    }

    fn output((): (), (): (), _: &Mailbox) -> Result<(), KvError> {
        Ok(())
    }
}

impl Set<'_> {
    /// Makes the key expire `ttl` from now (the reference's `ttl_s`). Must be greater than zero.
    ///
    /// ```
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// kv.set("user_id", 42).ttl(Duration::from_secs(600)).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn ttl(self, ttl: Duration) -> Self {
        self.with(|args| args.0.ttl = Some(ttl))
    }
}

/// A pending [`KvHandle::set_if_absent`](crate::KvHandle::set_if_absent). Await it to learn whether the value was stored.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ephemeral_kv::KvError> {
/// let kv = ephemeral_kv::KvHandle::spawn();
/// assert!(kv.set_if_absent("lock", "worker-1").await?);
/// assert!(!kv.set_if_absent("lock", "worker-2").await?);
/// # Ok(())
/// # }
/// ```
pub type SetIfAbsent<'a> = Pending<'a, SetIfAbsentArgs>;

/// The arguments of [`SetIfAbsent`].
#[derive(Debug)]
pub struct SetIfAbsentArgs(Write);

impl SetIfAbsentArgs {
    pub(crate) fn new<T: Serialize>(key: String, value: T) -> Self {
        SetIfAbsentArgs(Write::new(key, value))
    }
}

impl Request for SetIfAbsentArgs {
    type Op = command::SetIfAbsent;
    type Output = bool;
    type Shape = ();

    fn command(self) -> Result<(command::SetIfAbsent, ()), KvError> {
        let (key, value, ttl) = self.0.checked()?;
        Ok((command::SetIfAbsent { key, value, ttl }, ()))
    }

    fn output((): (), stored: bool, _: &Mailbox) -> Result<bool, KvError> {
        Ok(stored)
    }
}

impl SetIfAbsent<'_> {
    /// Makes the key, if this call stores it, expire `ttl` from now: a lease that frees itself if
    /// its holder dies. Must be greater than zero.
    ///
    /// ```
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// assert!(kv.set_if_absent("lock", "w1").ttl(Duration::from_secs(30)).await?);
    /// tokio::time::advance(Duration::from_secs(30)).await;
    /// assert!(kv.set_if_absent("lock", "w2").ttl(Duration::from_secs(30)).await?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn ttl(self, ttl: Duration) -> Self {
        self.with(|args| args.0.ttl = Some(ttl))
    }
}

/// A pending [`KvHandle::compare_and_set`](crate::KvHandle::compare_and_set). Await it to learn whether the swap happened.
///
/// ```
/// use serde_json::json;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ephemeral_kv::KvError> {
/// let kv = ephemeral_kv::KvHandle::spawn();
/// assert!(kv.compare_and_set("state", None, "idle").await?);
/// assert!(kv.compare_and_set("state", Some(json!("idle")), "busy").await?);
/// assert!(!kv.compare_and_set("state", Some(json!("idle")), "busy").await?);
/// # Ok(())
/// # }
/// ```
pub type CompareAndSet<'a> = Pending<'a, CompareAndSetArgs>;

/// The arguments of [`CompareAndSet`].
#[derive(Debug)]
pub struct CompareAndSetArgs {
    /// The expected value, checked like a written one.
    expected: Result<Option<Value>, KvError>,
    write: Write,
}

impl CompareAndSetArgs {
    pub(crate) fn new<T: Serialize>(key: String, expected: Option<Value>, new: T) -> Self {
        let expected = expected
            .map(|expected| check_depth(&key, expected))
            .transpose();
        CompareAndSetArgs {
            expected,
            write: Write::new(key, new),
        }
    }
}

impl Request for CompareAndSetArgs {
    type Op = command::CompareAndSet;
    type Output = bool;
    type Shape = ();

    fn command(self) -> Result<(command::CompareAndSet, ()), KvError> {
        let expected = self.expected?;
        let (key, new, ttl) = self.write.checked()?;
        let command = command::CompareAndSet {
            key,
            expected,
            new,
            ttl,
        };
        Ok((command, ()))
    }

    fn output((): (), swapped: bool, _: &Mailbox) -> Result<bool, KvError> {
        Ok(swapped)
    }
}

impl CompareAndSet<'_> {
    /// If the swap happens, the key expires `ttl` from now (instead of keeping its TTL). Swapping a
    /// lease for itself with a TTL renews it, but only while the caller still holds it. Must be
    /// greater than zero.
    ///
    /// ```
    /// use std::time::Duration;
    /// use serde_json::json;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// let lease = Duration::from_secs(10);
    /// kv.set_if_absent("lock", "w1").ttl(lease).await?;
    /// tokio::time::advance(Duration::from_secs(8)).await;
    /// let renewed = kv.compare_and_set("lock", Some(json!("w1")), "w1").ttl(lease).await?;
    /// assert!(renewed);
    /// tokio::time::advance(Duration::from_secs(8)).await;
    /// assert_eq!(kv.get("lock").await?.as_deref(), Some(&json!("w1")));
    /// # Ok(())
    /// # }
    /// ```
    pub fn ttl(self, ttl: Duration) -> Self {
        self.with(|args| args.write.ttl = Some(ttl))
    }
}

/// A pending [`KvHandle::mset`](crate::KvHandle::mset). Await it to write every pair at once.
///
/// ```
/// use serde_json::json;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ephemeral_kv::KvError> {
/// let kv = ephemeral_kv::KvHandle::spawn();
/// kv.mset([("a", json!(1)), ("b", json!(2))]).await?;
/// # Ok(())
/// # }
/// ```
pub type Mset<'a> = Pending<'a, MsetArgs>;

/// The arguments of [`Mset`].
#[derive(Debug)]
pub struct MsetArgs {
    entries: Result<Vec<(String, Value)>, KvError>,
    ttl: Option<Duration>,
}

impl MsetArgs {
    pub(crate) fn new<V: Serialize>(entries: impl Iterator<Item = (String, V)>) -> Self {
        let entries: Result<Vec<_>, _> = entries
            .map(|(key, value)| to_json(&key, value).map(|value| (key, value)))
            .collect();
        MsetArgs { entries, ttl: None }
    }
}

impl Request for MsetArgs {
    type Op = command::Mset;
    type Output = ();
    type Shape = ();

    fn command(self) -> Result<(command::Mset, ()), KvError> {
        let entries = self.entries?;
        // A TTL error names the first key, or the empty key for an empty batch.
        let first_key = entries.first().map_or("", |(key, _)| key.as_str());
        check_ttl(first_key, self.ttl)?;
        let ttl = self.ttl;
        Ok((command::Mset { entries, ttl }, ()))
    }

    fn output((): (), (): (), _: &Mailbox) -> Result<(), KvError> {
        Ok(())
    }
}

impl Mset<'_> {
    /// Makes every key of the batch expire `ttl` from now (the reference's `ttl_s`). Must be
    /// greater than zero.
    ///
    /// ```
    /// use std::time::Duration;
    /// use serde_json::json;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// kv.mset([("session", json!("abc")), ("count", json!(42))])
    ///     .ttl(Duration::from_secs(60))
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn ttl(self, ttl: Duration) -> Self {
        self.with(|args| args.ttl = Some(ttl))
    }
}

/// A pending [`KvHandle::incr`](crate::KvHandle::incr). Await it to get the counter's new value.
///
/// ```
/// use std::time::Duration;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ephemeral_kv::KvError> {
/// let kv = ephemeral_kv::KvHandle::spawn();
/// assert_eq!(kv.incr("hits", 1).ttl(Duration::from_secs(60)).await?, 1);
/// assert_eq!(kv.incr("hits", 5).await?, 6);
/// # Ok(())
/// # }
/// ```
pub type Incr<'a> = Pending<'a, IncrArgs>;

/// The arguments of [`Incr`]: the command itself, checked when sent.
#[derive(Debug)]
pub struct IncrArgs(command::Incr);

impl IncrArgs {
    pub(crate) fn new(key: String, by: i64) -> Self {
        IncrArgs(command::Incr { key, by, ttl: None })
    }
}

impl Request for IncrArgs {
    type Op = command::Incr;
    type Output = i64;
    type Shape = ();

    fn command(self) -> Result<(command::Incr, ()), KvError> {
        check_ttl(&self.0.key, self.0.ttl)?;
        Ok((self.0, ()))
    }

    fn output((): (), value: i64, _: &Mailbox) -> Result<i64, KvError> {
        Ok(value)
    }
}

impl Incr<'_> {
    /// The TTL the counter gets **if this call creates it**. A counter that already exists keeps
    /// its TTL (or lack of one), which is what a fixed-window rate limiter needs: the window starts
    /// with the first hit and is not pushed back by later ones. Must be greater than zero.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ephemeral_kv::Ttl;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// kv.incr("window", 1).ttl(Duration::from_secs(60)).await?;
    /// tokio::time::advance(Duration::from_secs(10)).await;
    /// kv.incr("window", 1).ttl(Duration::from_secs(60)).await?;
    /// assert_eq!(kv.ttl("window").await?, Ttl::Expires(Duration::from_secs(50)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn ttl(self, ttl: Duration) -> Self {
        self.with(|args| args.0.ttl = Some(ttl))
    }
}

/// [`KvHandle::expire`](crate::KvHandle::expire): the command, its TTL checked when sent.
#[derive(Debug)]
pub(crate) struct ExpireArgs(pub(crate) command::Expire);

impl Request for ExpireArgs {
    type Op = command::Expire;
    type Output = bool;
    type Shape = ();

    fn command(self) -> Result<(command::Expire, ()), KvError> {
        check_ttl(&self.0.key, Some(self.0.ttl))?;
        Ok((self.0, ()))
    }

    fn output((): (), applied: bool, _: &Mailbox) -> Result<bool, KvError> {
        Ok(applied)
    }
}

/// [`KvHandle::get_del`](crate::KvHandle::get_del): the command, its answer moved out of its
/// `Arc`.
#[derive(Debug)]
pub(crate) struct GetDelArgs(pub(crate) command::GetDel);

impl Request for GetDelArgs {
    type Op = command::GetDel;
    type Output = Option<Value>;
    type Shape = ();

    fn command(self) -> Result<(command::GetDel, ()), KvError> {
        Ok((self.0, ()))
    }

    fn output((): (), value: Option<Arc<Value>>, _: &Mailbox) -> Result<Option<Value>, KvError> {
        // The store has let go of it: it moves out, copied only if a reader still shares it.
        Ok(value.map(Arc::unwrap_or_clone))
    }
}
