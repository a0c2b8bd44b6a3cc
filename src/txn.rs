//! [`Txn`]: the view a [`KvHandle::transaction`](crate::KvHandle::transaction) closure works on.
//!
//! The closure never touches the store. It reads through a `Txn` (its own staged writes first, then
//! the store's live values) and its writes are only recorded. The store applies the recorded writes
//! after the closure returns, all in a row on the owner task; if the closure panics or calls
//! [`Txn::abort`], they are dropped. That is what makes a transaction all-or-nothing even when user
//! code fails halfway.
//!
//! Where reads come from is a [`Source`], which each executor provides: the in-process store
//! itself, or (for the Redis executor) the values fetched so far, noting every key read that was
//! not fetched yet so that the executor can fetch it and run the closure again. So this module,
//! like the command enum that carries its closures, knows no executor.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::KvError;
use crate::ttl::check_ttl;
use crate::value::{decode, to_json};

/// A write a transaction recorded, to apply on commit. Keys are full (prefixed).
#[derive(Debug)]
pub(crate) enum Op {
    Set {
        key: String,
        value: Arc<Value>,
    },
    Delete {
        key: String,
    },
    /// A new TTL, counted from the instant the transaction's writes are applied.
    Expire {
        key: String,
        ttl: Duration,
    },
}

/// Where a [`Txn`] reads the values it has not written itself.
pub(crate) trait Source {
    /// The live value at the full `key` at instant `now`, with its deadline (`None`: never
    /// expires), or `None` if the key is missing or expired.
    fn read(&self, key: &str, now: Instant) -> Option<(&Arc<Value>, Option<Instant>)>;
}

/// What a transaction sees of one key it has written: `None` for deleted.
type Staged = Option<(Arc<Value>, Option<Instant>)>;

/// Reads and staged writes over several keys, inside a
/// [`KvHandle::transaction`](crate::KvHandle::transaction) closure.
///
/// Keys are relative to the handle's prefix, as in every call. Reads see the transaction's own
/// earlier writes. Writes take effect, all together, only when the closure returns; no other call
/// runs in between, so nothing can change under the transaction. Expired keys are invisible here
/// too.
///
/// ```
/// use serde_json::json;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ephemeral_kv::KvError> {
/// let kv = ephemeral_kv::KvHandle::spawn();
/// kv.set("from", 10).await?;
/// let moved = kv
///     .transaction(|txn| {
///         let from = txn.get("from").and_then(|v| v.as_i64()).unwrap_or(0);
///         txn.set("from", 0);
///         txn.set("to", from);
///         from
///     })
///     .await?;
/// assert_eq!(moved, 10);
/// let [from, to] = <[_; 2]>::try_from(kv.mget(["from", "to"]).await?).unwrap();
/// assert_eq!((from.as_deref(), to.as_deref()), (Some(&json!(0)), Some(&json!(10))));
/// # Ok(())
/// # }
/// ```
pub struct Txn<'a> {
    reads: &'a dyn Source,
    prefix: &'a str,
    now: Instant,
    staged: HashMap<String, Staged>,
    ops: Vec<Op>,
    aborted: bool,
    /// The first value [`Txn::set`] could not serialize: the transaction then fails with it, and
    /// applies nothing.
    failed: Option<KvError>,
}

impl fmt::Debug for Txn<'_> {
    // Not derived: that would print the whole store.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Txn")
            .field("prefix", &self.prefix)
            .field("staged_writes", &self.ops.len())
            .field("aborted", &self.aborted)
            .field("failed", &self.failed.is_some())
            .finish_non_exhaustive()
    }
}

impl<'a> Txn<'a> {
    pub(crate) fn new(reads: &'a dyn Source, prefix: &'a str, now: Instant) -> Self {
        Txn {
            reads,
            prefix,
            now,
            staged: HashMap::new(),
            ops: Vec::new(),
            aborted: false,
            failed: None,
        }
    }

    /// The value at `key` as this transaction sees it: its own writes first, then the store.
    ///
    /// ```
    /// use serde_json::json;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// let seen = kv.transaction(|txn| {
    ///     let before = txn.get("k").cloned();
    ///     txn.set("k", 1);
    ///     (before, txn.get("k").cloned())
    /// }).await?;
    /// assert_eq!(seen, (None, Some(json!(1))));
    /// # Ok(())
    /// # }
    /// ```
    pub fn get(&self, key: impl AsRef<str>) -> Option<&Value> {
        let key = self.full_key(key);
        self.view(&key).map(|(value, _)| &**value)
    }

    /// The value at `key` deserialized into `T`, as this transaction sees it (its own writes
    /// first), or `None` if it is missing.
    ///
    /// # Errors
    /// [`KvError::Deserialize`] if the value does not fit `T`. Returning it from the closure is up
    /// to the closure; the transaction itself goes on.
    ///
    /// ```
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Serialize, Deserialize, Debug, PartialEq)]
    /// struct Account { balance: i64 }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// kv.mset([("acct:a", Account { balance: 100 }), ("acct:b", Account { balance: 0 })]).await?;
    /// let moved = kv
    ///     .transaction(|txn| -> Result<i64, ephemeral_kv::KvError> {
    ///         let mut a: Account = txn.get_as("acct:a")?.unwrap_or(Account { balance: 0 });
    ///         let mut b: Account = txn.get_as("acct:b")?.unwrap_or(Account { balance: 0 });
    ///         a.balance -= 30;
    ///         b.balance += 30;
    ///         txn.set("acct:a", &a);
    ///         txn.set("acct:b", &b);
    ///         Ok(30)
    ///     })
    ///     .await??;
    /// assert_eq!(moved, 30);
    /// assert_eq!(kv.get_as::<Account>("acct:b").await?, Some(Account { balance: 30 }));
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_as<T: DeserializeOwned>(&self, key: impl AsRef<str>) -> Result<Option<T>, KvError> {
        let key = self.full_key(key);
        let Some((value, _)) = self.view(&key) else {
            return Ok(None);
        };
        decode(&key, value).map(Some)
    }

    /// Stages `value` at `key`, replacing any value and TTL (like [`KvHandle::set`](crate::KvHandle::set)
    /// without a TTL; follow with [`Txn::expire`] to give it one). Any `Serialize` value will do,
    /// as with `KvHandle::set`.
    ///
    /// A value that fails to serialize fails the whole transaction: the call returns
    /// [`KvError::Serialize`] naming the key, and none of the staged writes are applied.
    ///
    /// ```
    /// use serde_json::json;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// kv.transaction(|txn| txn.set("greeting", "hi")).await?;
    /// assert_eq!(kv.get("greeting").await?.as_deref(), Some(&json!("hi")));
    /// # Ok(())
    /// # }
    /// ```
    pub fn set<T: Serialize>(&mut self, key: impl AsRef<str>, value: T) {
        let key = self.full_key(key);
        let value = match to_json(&key, value) {
            Ok(value) => Arc::new(value),
            Err(error) => {
                self.failed.get_or_insert(error);
                return;
            }
        };
        self.staged
            .insert(key.clone(), Some((Arc::clone(&value), None)));
        self.ops.push(Op::Set { key, value });
    }

    /// Stages the removal of `key`. Returns whether it was there to remove.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// kv.set("k", 1).await?;
    /// assert_eq!(kv.transaction(|txn| (txn.delete("k"), txn.delete("k"))).await?, (true, false));
    /// assert_eq!(kv.exists("k").await?, false);
    /// # Ok(())
    /// # }
    /// ```
    pub fn delete(&mut self, key: impl AsRef<str>) -> bool {
        let key = self.full_key(key);
        if self.view(&key).is_none() {
            return false;
        }
        self.staged.insert(key.clone(), None);
        self.ops.push(Op::Delete { key });
        true
    }

    /// Stages a new TTL for `key`, counted from the instant the transaction runs. Returns whether
    /// the key was there to get it (a missing key is not created).
    ///
    /// # Errors
    /// [`KvError::InvalidTtl`] for a zero TTL; nothing is staged, and the closure may go on.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ephemeral_kv::Ttl;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// let staged = kv.transaction(|txn| {
    ///     txn.set("lease", "me");
    ///     txn.expire("lease", Duration::from_secs(5))
    /// }).await?;
    /// assert_eq!(staged?, true);
    /// assert_eq!(kv.ttl("lease").await?, Ttl::Expires(Duration::from_secs(5)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn expire(&mut self, key: impl AsRef<str>, ttl: Duration) -> Result<bool, KvError> {
        let key = self.full_key(key);
        check_ttl(&key, Some(ttl))?;
        let Some((value, _)) = self.view(&key) else {
            return Ok(false);
        };
        let value = Arc::clone(value);
        let deadline = self.now.checked_add(ttl);
        self.staged.insert(key.clone(), Some((value, deadline)));
        self.ops.push(Op::Expire { key, ttl });
        Ok(true)
    }

    /// Drops every write staged so far and any made after: the transaction will change nothing.
    /// The closure's return value is still handed back.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// kv.set("balance", 5).await?;
    /// let done = kv.transaction(|txn| {
    ///     let balance = txn.get("balance").and_then(|v| v.as_i64()).unwrap_or(0);
    ///     txn.set("balance", balance - 8);
    ///     if balance < 8 {
    ///         txn.abort();
    ///         return false;
    ///     }
    ///     true
    /// }).await?;
    /// assert!(!done);
    /// assert_eq!(kv.get_as::<i64>("balance").await?, Some(5));
    /// # Ok(())
    /// # }
    /// ```
    pub fn abort(&mut self) {
        self.aborted = true;
    }

    /// The writes to apply: none if the closure aborted, or the error of a value that did not
    /// serialize (then none are applied either).
    pub(crate) fn into_ops(self) -> Result<Vec<Op>, KvError> {
        match self.failed {
            Some(error) => Err(error),
            None if self.aborted => Ok(Vec::new()),
            None => Ok(self.ops),
        }
    }

    fn full_key(&self, key: impl AsRef<str>) -> String {
        format!("{}{}", self.prefix, key.as_ref())
    }

    /// The key as this transaction sees it: staged state first, then the store's live entry (or
    /// the fetched value; the deadline of a fetched value is not known, and not needed).
    fn view(&self, key: &str) -> Option<(&Arc<Value>, Option<Instant>)> {
        if let Some(staged) = self.staged.get(key) {
            return staged.as_ref().map(|(value, deadline)| (value, *deadline));
        }
        self.reads.read(key, self.now)
    }
}
