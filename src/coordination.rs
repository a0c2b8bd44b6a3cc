//! The coordination calls of [`KvHandle`]: counters, leases, compare-and-set, atomic closures,
//! key queries, scans and change feeds.
//!
//! Each is one command that the owner task applies whole, so each read-modify-write is atomic by
//! construction: no other call can slip between its read and its write. The rules live in the
//! store (`store/coordination.rs`); this file only builds the commands and shapes the answers.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use serde_json::Value;

use crate::calls::{CompareAndSet, Incr, ScanPrefix, SetIfAbsent};
use crate::command::Command;
use crate::error::KvError;
use crate::handle::KvHandle;
use crate::store::{TxnFn, UpdateFn};
use crate::ttl::Ttl;
use crate::txn::Txn;
use crate::watch::Watch;

/// Removes the first `strip` bytes (a handle's prefix) from a full key. Keys that come back from
/// the store always start with that prefix; the fallback only keeps this total.
pub(crate) fn relative_key(key: String, strip: usize) -> String {
    match key.get(strip..) {
        Some(relative) => relative.to_owned(),
        None => key,
    }
}

impl KvHandle {
    /// Adds `by` (which may be negative) to the integer at `key` and returns the new value. A
    /// missing or expired key counts as 0.
    ///
    /// [`Incr::ttl`] sets a TTL only when this call creates the key; an existing counter keeps its
    /// TTL (or lack of one).
    ///
    /// # Errors
    /// [`KvError::WrongType`] if the key holds anything but an integer that fits `i64`,
    /// [`KvError::Overflow`] if the sum would leave `i64`'s range, [`KvError::InvalidTtl`] for a
    /// zero TTL, [`KvError::Closed`]. The counter is unchanged on error.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ephemeral_kv::KvError;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// assert_eq!(kv.incr("attempts", 1).await?, 1);
    /// assert_eq!(kv.incr("attempts", -3).await?, -2);
    /// let n = kv.incr("rate:1.2.3.4", 1).ttl(Duration::from_secs(60)).await?;
    /// assert_eq!(n, 1);
    ///
    /// kv.set("name", "Ada").await?;
    /// assert!(matches!(kv.incr("name", 1).await, Err(KvError::WrongType { .. })));
    /// # Ok(())
    /// # }
    /// ```
    pub fn incr(&self, key: impl AsRef<str>, by: i64) -> Incr<'_> {
        Incr::new(self, self.key(key), by)
    }

    /// Stores `value` at `key` only if the key is missing or expired, and returns whether it did.
    /// With [`SetIfAbsent::ttl`] this is a lease: whoever stores it holds it until it is deleted or
    /// expires.
    ///
    /// # Errors
    /// [`KvError::Serialize`], [`KvError::InvalidTtl`], [`KvError::Closed`].
    ///
    /// ```
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// let got = kv.set_if_absent("lock:job:7", "worker-1").ttl(Duration::from_secs(30)).await?;
    /// assert!(got);
    /// assert!(!kv.set_if_absent("lock:job:7", "worker-2").await?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_if_absent<T: Serialize>(&self, key: impl AsRef<str>, value: T) -> SetIfAbsent<'_> {
        SetIfAbsent::new(self, self.key(key), value)
    }

    /// Stores `new` at `key` only if the key currently holds `expected` (with `None`: only if it is
    /// missing or expired), and returns whether it did.
    ///
    /// Without [`CompareAndSet::ttl`] an existing key keeps its TTL and a created one never
    /// expires.
    ///
    /// # Errors
    /// [`KvError::Serialize`], [`KvError::InvalidTtl`], [`KvError::Closed`].
    ///
    /// ```
    /// use serde_json::json;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// kv.set("state", "idle").await?;
    /// assert!(kv.compare_and_set("state", Some(json!("idle")), "busy").await?);
    /// assert!(!kv.compare_and_set("state", Some(json!("idle")), "busy").await?);
    /// assert!(!kv.compare_and_set("state", None, "idle").await?); // not absent
    /// assert_eq!(kv.get("state").await?.as_deref(), Some(&json!("busy")));
    /// # Ok(())
    /// # }
    /// ```
    pub fn compare_and_set<T: Serialize>(
        &self,
        key: impl AsRef<str>,
        expected: Option<Value>,
        new: T,
    ) -> CompareAndSet<'_> {
        CompareAndSet::new(self, self.key(key), expected, new)
    }

    /// Replaces the value at `key` with what `f` makes of it, atomically, and returns the new
    /// value. `f` gets the current value (`None` if missing or expired) and returns the new one, or
    /// `None` to delete the key. An existing key keeps its TTL; a created one never expires.
    ///
    /// `f` runs on the owner task, which serves every caller of the store: **keep it short**, and
    /// never block or wait in it. If it panics, the panic is caught, the key is left exactly as it
    /// was, the call returns [`KvError::UpdatePanicked`], and the store keeps serving.
    ///
    /// `f` is `FnMut` because of the Redis backend: in-process it runs exactly once, but on Redis
    /// (an optimistic `WATCH`/`MULTI`/`EXEC`) it runs again when another client changed the key
    /// between the read and the write, up to a bounded number of attempts. Keep it free of side
    /// effects other than its return value.
    ///
    /// # Errors
    /// [`KvError::UpdatePanicked`], [`KvError::Closed`]; on Redis also [`KvError::Backend`] and
    /// [`KvError::Contended`].
    ///
    /// ```
    /// use serde_json::json;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// let add_apple = |cur: Option<&serde_json::Value>| {
    ///     let mut cart = cur.cloned().unwrap_or(json!([]));
    ///     cart.as_array_mut()?.push(json!("apple"));
    ///     Some(cart)
    /// };
    /// let cart = kv.update("cart:9", add_apple).await?;
    /// assert_eq!(cart.as_deref(), Some(&json!(["apple"])));
    /// assert_eq!(kv.update("cart:9", |_| None).await?, None); // deletes
    /// assert_eq!(kv.exists("cart:9").await?, false);
    /// # Ok(())
    /// # }
    /// ```
    pub fn update<F>(
        &self,
        key: impl AsRef<str>,
        f: F,
    ) -> impl Future<Output = Result<Option<Arc<Value>>, KvError>> + Send + '_
    where
        F: FnMut(Option<&Value>) -> Option<Value> + Send + 'static,
    {
        let key = self.key(key);
        let f: UpdateFn = Box::new(f);
        self.call(|reply| Command::Update { key, f, reply })
    }

    /// Runs `f` over several keys at once and returns what it returns. Through its [`Txn`], `f`
    /// reads ([`Txn::get`]) and stages writes ([`Txn::set`], [`Txn::delete`], [`Txn::expire`]);
    /// when it returns, all the staged writes are applied together, and no other call runs in
    /// between. [`Txn::abort`] drops them. Keys are relative to this handle's prefix.
    ///
    /// `f` runs on the owner task, which serves every caller of the store: **keep it short**, and
    /// never block or wait in it. If it panics, the panic is caught, none of its writes are
    /// applied, the call returns [`KvError::TransactionPanicked`], and the store keeps serving.
    ///
    /// `f` is `FnMut` because of the Redis backend: in-process it runs exactly once, but on Redis
    /// it runs against the values fetched so far and again after fetching any key it read that was
    /// not fetched yet, and again from scratch when another client changed a key it read before
    /// the writes were applied (an optimistic `WATCH`/`MULTI`/`EXEC`, with a bounded number of
    /// attempts). Only the run whose writes are applied returns its value to the caller. Keep it
    /// free of side effects other than its return value and its [`Txn`] calls.
    ///
    /// # Errors
    /// [`KvError::TransactionPanicked`], [`KvError::Closed`]; on Redis also [`KvError::Backend`]
    /// and [`KvError::Contended`].
    ///
    /// ```
    /// use serde_json::json;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// kv.mset([("acct:a", 100), ("acct:b", 0)]).await?;
    /// let moved = kv
    ///     .transaction(|txn| {
    ///         let a = txn.get("acct:a").and_then(|v| v.as_i64()).unwrap_or(0);
    ///         let b = txn.get("acct:b").and_then(|v| v.as_i64()).unwrap_or(0);
    ///         let amount = a.min(30);
    ///         txn.set("acct:a", a - amount);
    ///         txn.set("acct:b", b + amount);
    ///         amount
    ///     })
    ///     .await?;
    /// assert_eq!(moved, 30);
    /// let [a, b] = <[_; 2]>::try_from(kv.mget(["acct:a", "acct:b"]).await?).unwrap();
    /// assert_eq!((a.as_deref(), b.as_deref()), (Some(&json!(70)), Some(&json!(30))));
    /// # Ok(())
    /// # }
    /// ```
    pub fn transaction<F, R>(&self, f: F) -> impl Future<Output = Result<R, KvError>> + Send + '_
    where
        F: FnMut(&mut Txn<'_>) -> R + Send + 'static,
        R: Send + 'static,
    {
        // Each run overwrites the slot; the executor stops running `f` once a run's writes are
        // applied, so what is left in it is the committed run's value.
        let slot = Arc::new(Mutex::new(None));
        let writer = Arc::clone(&slot);
        let mut f = f;
        let f: TxnFn = Box::new(move |txn: &mut Txn<'_>| {
            let result = f(txn);
            *writer.lock().unwrap_or_else(PoisonError::into_inner) = Some(result);
        });
        let prefix = self.prefix().to_owned();
        async move {
            self.call(|reply| Command::Transaction { prefix, f, reply })
                .await?;
            let result = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
            result.ok_or(KvError::Closed)
        }
    }

    /// Removes `key` and returns the value it held, atomically: of many tasks taking one key, one
    /// gets the value and the rest get `None`.
    ///
    /// # Errors
    /// [`KvError::Closed`].
    ///
    /// ```
    /// use serde_json::json;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// kv.set("job:7:result", "done").await?;
    /// assert_eq!(kv.get_del("job:7:result").await?, Some(json!("done")));
    /// assert_eq!(kv.get_del("job:7:result").await?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_del(
        &self,
        key: impl AsRef<str>,
    ) -> impl Future<Output = Result<Option<Value>, KvError>> + Send + '_ {
        let key = self.key(key);
        async move {
            let value = self.call(|reply| Command::GetDel { key, reply }).await?;
            // The store has let go of it: it moves out, copied only if a reader still shares it.
            Ok(value.map(Arc::unwrap_or_clone))
        }
    }

    /// Whether `key` holds a live value (without copying the value).
    ///
    /// # Errors
    /// [`KvError::Closed`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// kv.set("k", serde_json::Value::Null).await?;
    /// assert!(kv.exists("k").await?); // a stored null is still there
    /// assert!(!kv.exists("other").await?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn exists(
        &self,
        key: impl AsRef<str>,
    ) -> impl Future<Output = Result<bool, KvError>> + Send + '_ {
        let key = self.key(key);
        self.call(|reply| Command::Exists { key, reply })
    }

    /// How long `key` has left: [`Ttl::Missing`], [`Ttl::NoExpiry`] or [`Ttl::Expires`] with the
    /// time left on tokio's clock.
    ///
    /// # Errors
    /// [`KvError::Closed`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use ephemeral_kv::Ttl;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// kv.set("k", 1).ttl(Duration::from_secs(60)).await?;
    /// tokio::time::advance(Duration::from_secs(15)).await;
    /// assert_eq!(kv.ttl("k").await?, Ttl::Expires(Duration::from_secs(45)));
    /// assert_eq!(kv.ttl("nothing").await?, Ttl::Missing);
    /// # Ok(())
    /// # }
    /// ```
    pub fn ttl(
        &self,
        key: impl AsRef<str>,
    ) -> impl Future<Output = Result<Ttl, KvError>> + Send + '_ {
        let key = self.key(key);
        self.call(|reply| Command::Ttl { key, reply })
    }

    /// Makes a live key never expire. Returns `true` if it had a TTL that was removed, `false` if
    /// it had none or is missing or expired (an expired key is not revived).
    ///
    /// # Errors
    /// [`KvError::Closed`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use ephemeral_kv::Ttl;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// kv.set("k", 1).ttl(Duration::from_secs(60)).await?;
    /// assert!(kv.persist("k").await?);
    /// assert!(!kv.persist("k").await?);
    /// assert_eq!(kv.ttl("k").await?, Ttl::NoExpiry);
    /// # Ok(())
    /// # }
    /// ```
    pub fn persist(
        &self,
        key: impl AsRef<str>,
    ) -> impl Future<Output = Result<bool, KvError>> + Send + '_ {
        let key = self.key(key);
        self.call(|reply| Command::Persist { key, reply })
    }

    /// The live keys that start with `prefix`, sorted, relative to this handle's prefix (so they
    /// can be passed straight back to this handle). [`ScanPrefix::limit`] keeps the first few.
    ///
    /// It looks at every key in the store, so on a large store it is slow and holds up every other
    /// caller while it runs; keep it for small stores or rare use.
    ///
    /// # Errors
    /// [`KvError::Closed`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// kv.mset([("run:42:b", 1), ("run:42:a", 2), ("run:7:a", 3)]).await?;
    /// assert_eq!(kv.scan_prefix("run:42:").limit(100).await?, vec!["run:42:a", "run:42:b"]);
    /// let run = kv.with_prefix("run:42:");
    /// assert_eq!(run.scan_prefix("").await?, vec!["a", "b"]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn scan_prefix(&self, prefix: impl AsRef<str>) -> ScanPrefix<'_> {
        ScanPrefix::new(self, self.key(prefix))
    }

    /// Opens a stream of the changes to keys under `prefix` (relative to this handle's prefix):
    /// [`WatchEvent::Set`](crate::WatchEvent::Set), [`Deleted`](crate::WatchEvent::Deleted) and
    /// [`Expired`](crate::WatchEvent::Expired), in the order the owner task applied them.
    ///
    /// Awaiting the returned [`Watch`] registers the stream; every change applied after that is
    /// seen. A reader that falls behind by more than [`Watch::capacity`] events loses the oldest
    /// and is told how many with [`KvError::Lagged`]: the store never waits for it. Dropping the
    /// stream unsubscribes; the stream ends when the store stops.
    ///
    /// # Errors
    /// [`KvError::Closed`] if the store has stopped; [`KvError::Unsupported`] on Redis, which has
    /// no change feed this crate can make ordered and lossless.
    ///
    /// ```
    /// use ephemeral_kv::WatchEvent;
    /// use futures::StreamExt;
    /// use serde_json::json;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// let mut events = kv.watch("inbox:").await?;
    /// kv.set("elsewhere", 1).await?; // not under the prefix: not seen
    /// kv.set("inbox:1", "hi").await?;
    /// let event = events.next().await.transpose()?;
    /// assert_eq!(event, Some(WatchEvent::Set { key: "inbox:1".into(), value: json!("hi").into() }));
    /// # Ok(())
    /// # }
    /// ```
    pub fn watch(&self, prefix: impl AsRef<str>) -> Watch<'_> {
        Watch::new(self, self.key(prefix))
    }

    /// Waits until `key` holds a value and returns it: at once if it already does, else as soon as
    /// any call gives it one.
    ///
    /// It waits for as long as it takes; bound it with [`tokio::time::timeout`]. A wait that is
    /// dropped (by a timeout or otherwise) is forgotten by the store. On Redis the waited keys are
    /// polled, so it resolves within about 20 ms of the write (by any client).
    ///
    /// # Errors
    /// [`KvError::Closed`] if the store stops before the key gets a value; on Redis,
    /// [`KvError::Backend`] if the first read fails.
    ///
    /// ```
    /// use std::time::Duration;
    /// use serde_json::json;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// let worker = kv.clone();
    /// tokio::spawn(async move { worker.set("job:7:result", "done").await });
    /// let v = kv.wait_for("job:7:result").await?;
    /// assert_eq!(*v, json!("done"));
    ///
    /// let late = tokio::time::timeout(Duration::from_millis(10), kv.wait_for("never")).await;
    /// assert!(late.is_err()); // timed out
    /// # Ok(())
    /// # }
    /// ```
    pub fn wait_for(
        &self,
        key: impl AsRef<str>,
    ) -> impl Future<Output = Result<Arc<Value>, KvError>> + Send + '_ {
        let key = self.key(key);
        self.call(|reply| Command::WaitFor { key, reply })
    }
}
