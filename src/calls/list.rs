//! The list calls with options, [`ListAppendUnique`] and [`ListPush`], and [`List`]: the whole
//! list that `list_append_unique` answers with, shared with the store instead of copied out of it.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use serde::{Serialize, Serializer};
use serde_json::Value;

use super::pending::{Pending, Request};
use crate::command;
use crate::error::{json_type_name, KvError};
use crate::mailbox::Mailbox;
use crate::ttl::check_ttl;
use crate::value::to_json_items;

/// The id field of [`KvHandle::list_append_unique`](crate::KvHandle::list_append_unique) when none is given, as in the reference.
///
/// ```
/// use serde_json::json;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ephemeral_kv::KvError> {
/// let kv = ephemeral_kv::KvHandle::spawn();
/// let id_key = ephemeral_kv::DEFAULT_ID_KEY;
/// assert_eq!(id_key, "id");
/// let list = kv.list_append_unique("l", [json!({ id_key: 1 })]).await?;
/// assert_eq!(list, vec![json!({"id": 1})]);
/// # Ok(())
/// # }
/// ```
pub const DEFAULT_ID_KEY: &str = "id";

/// A pending [`KvHandle::list_append_unique`](crate::KvHandle::list_append_unique). Await it to append and get the whole list.
///
/// ```
/// use serde_json::json;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ephemeral_kv::KvError> {
/// let kv = ephemeral_kv::KvHandle::spawn();
/// let list = kv.list_append_unique("l", [json!({"id": 1})]).await?;
/// assert_eq!(list, vec![json!({"id": 1})]);
/// # Ok(())
/// # }
/// ```
pub type ListAppendUnique<'a> = Pending<'a, ListAppendUniqueArgs>;

/// The arguments of [`ListAppendUnique`]: the command, or why its items did not serialize.
#[derive(Debug)]
pub struct ListAppendUniqueArgs(Result<command::ListAppendUnique, KvError>);

impl ListAppendUniqueArgs {
    pub(crate) fn new<I>(key: String, items: I) -> Self
    where
        I: IntoIterator,
        I::Item: Serialize,
    {
        ListAppendUniqueArgs(
            to_json_items(&key, items).map(|items| command::ListAppendUnique {
                key,
                items,
                id_key: DEFAULT_ID_KEY.to_owned(),
                ttl: None,
            }),
        )
    }

    /// Sets an option; a call whose items did not serialize has failed already.
    fn set(&mut self, option: impl FnOnce(&mut command::ListAppendUnique)) {
        if let Ok(command) = &mut self.0 {
            option(command);
        }
    }
}

impl Request for ListAppendUniqueArgs {
    type Op = command::ListAppendUnique;
    type Output = List;
    type Shape = ();

    fn command(self) -> Result<(command::ListAppendUnique, ()), KvError> {
        let command = self.0?;
        check_items(&command.key, &command.items, &command.id_key)?;
        check_ttl(&command.key, command.ttl)?;
        Ok((command, ()))
    }

    fn output((): (), list: Arc<Value>, _: &Mailbox) -> Result<List, KvError> {
        Ok(List::new(list))
    }
}

impl ListAppendUnique<'_> {
    /// The field that identifies an item (default `"id"`).
    ///
    /// ```
    /// use serde_json::json;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// let tasks = kv
    ///     .list_append_unique("tasks", vec![json!({"task_id": 42, "desc": "Review PR"})])
    ///     .id_key("task_id")
    ///     .await?;
    /// assert_eq!(tasks.len(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn id_key(self, id_key: impl Into<String>) -> Self {
        let id_key = id_key.into();
        self.with(|args| args.set(|command| command.id_key = id_key))
    }

    /// Makes the list expire `ttl` from now (the reference's `ttl_s`). Must be greater than zero.
    /// Without it the list never expires, even if it had a TTL before.
    ///
    /// ```
    /// use std::time::Duration;
    /// use serde_json::json;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// kv.list_append_unique("l", [json!({"id": 1})]).ttl(Duration::from_secs(3600)).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn ttl(self, ttl: Duration) -> Self {
        self.with(|args| args.set(|command| command.ttl = Some(ttl)))
    }
}

/// Checks that every item is an object holding `id_key` with a scalar id, naming the first that is
/// not and saying what to do.
fn check_items(key: &str, items: &[Value], id_key: &str) -> Result<(), KvError> {
    for (index, item) in items.iter().enumerate() {
        let reason = match item {
            Value::Object(fields) => match fields.get(id_key) {
                Some(id @ (Value::Array(_) | Value::Object(_))) => format!(
                    "its `{id_key}` is {}; ids must be strings, numbers, booleans or null",
                    json_type_name(id)
                ),
                Some(_) => continue,
                None => format!(
                    "it has no `{id_key}` field (to use another field as the id, call \
                     `.id_key(\"field\")`)"
                ),
            },
            other => format!("it is {}, not a JSON object", json_type_name(other)),
        };
        return Err(KvError::InvalidItem {
            key: key.to_owned(),
            index,
            reason,
        });
    }
    Ok(())
}

/// A pending [`KvHandle::list_push`](crate::KvHandle::list_push). Await it to append and get the list's new length.
///
/// ```
/// use std::time::Duration;
/// use serde_json::json;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ephemeral_kv::KvError> {
/// let kv = ephemeral_kv::KvHandle::spawn();
/// let call: ephemeral_kv::ListPush<'_> = kv.list_push("log", [json!("started")]);
/// assert_eq!(call.max_len(100).ttl(Duration::from_secs(60)).await?, 1);
/// # Ok(())
/// # }
/// ```
pub type ListPush<'a> = Pending<'a, ListPushArgs>;

/// The arguments of [`ListPush`]: the command, or why its items did not serialize.
#[derive(Debug)]
pub struct ListPushArgs(Result<command::ListPush, KvError>);

impl ListPushArgs {
    pub(crate) fn new<I>(key: String, items: I) -> Self
    where
        I: IntoIterator,
        I::Item: Serialize,
    {
        ListPushArgs(to_json_items(&key, items).map(|items| command::ListPush {
            key,
            items,
            max_len: usize::MAX,
            ttl: None,
        }))
    }

    /// Sets an option; a call whose items did not serialize has failed already.
    fn set(&mut self, option: impl FnOnce(&mut command::ListPush)) {
        if let Ok(command) = &mut self.0 {
            option(command);
        }
    }
}

impl Request for ListPushArgs {
    type Op = command::ListPush;
    type Output = usize;
    type Shape = ();

    fn command(self) -> Result<(command::ListPush, ()), KvError> {
        let command = self.0?;
        check_ttl(&command.key, command.ttl)?;
        if command.max_len == 0 {
            return Err(KvError::InvalidArgument {
                key: command.key,
                reason: "`max_len` must be at least 1 (to empty a list, call `delete`)".to_owned(),
            });
        }
        Ok((command, ()))
    }

    fn output((): (), len: usize, _: &Mailbox) -> Result<usize, KvError> {
        Ok(len)
    }
}

impl ListPush<'_> {
    /// Keeps at most `max_len` items: after appending, the oldest are dropped from the front
    /// (Redis `RPUSH` then `LTRIM`). Without it the list grows without bound. Zero is refused
    /// with [`KvError::InvalidArgument`].
    ///
    /// ```
    /// use serde_json::json;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// kv.list_push("log", [1, 2, 3]).await?;
    /// assert_eq!(kv.list_push("log", [4]).max_len(2).await?, 2);
    /// assert_eq!(kv.list_pop_all("log").await?, vec![json!(3), json!(4)]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn max_len(self, max_len: usize) -> Self {
        self.with(|args| args.set(|command| command.max_len = max_len))
    }

    /// Gives the list this TTL, counted from now. Without it the list never expires, as with
    /// [`KvHandle::set`](crate::KvHandle::set): a push without a TTL removes one the list had.
    ///
    /// ```
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// kv.list_push("log", ["a"]).ttl(Duration::from_secs(7 * 24 * 3600)).await?;
    /// assert!(matches!(kv.ttl("log").await?, ephemeral_kv::Ttl::Expires(_)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn ttl(self, ttl: Duration) -> Self {
        self.with(|args| args.set(|command| command.ttl = Some(ttl)))
    }
}

/// A list as the store holds it, shared rather than copied: cloning it, or getting it from the
/// store, only bumps a reference count.
///
/// It reads as a slice of items (`list.len()`, `list[0]`, `list.iter()`, `for item in &list`),
/// compares equal to a `Vec<Value>` or a `[Value]` with the same items, prints as one, and
/// serializes as a JSON array. It is a snapshot: later calls on the key never change it.
///
/// To own the items, call [`List::into_vec`] (or `Vec::from(list)`): it moves them out when this
/// is the last reference to that version of the list and copies them otherwise.
///
/// Holding on to a `List` keeps that version alive: the store cannot then append in place, and
/// the next append to the key copies the list once. Drop it, or take what you need from it, before
/// the next append when the list is long.
///
/// ```
/// use ephemeral_kv::KvHandle;
/// use serde_json::json;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ephemeral_kv::KvError> {
/// let kv = KvHandle::spawn();
/// let inbox = kv
///     .list_append_unique("inbox", [json!({"id": 1, "body": "hi"})])
///     .await?;
/// assert_eq!(inbox.len(), 1);
/// assert_eq!(inbox[0]["body"], "hi");
/// assert_eq!(inbox, vec![json!({"id": 1, "body": "hi"})]);
/// let owned: Vec<serde_json::Value> = inbox.into_vec();
/// assert_eq!(owned.len(), 1);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, PartialEq)]
pub struct List {
    /// Always a `Value::Array`: the store answers list calls only with lists.
    value: Arc<Value>,
}

impl List {
    pub(crate) fn new(value: Arc<Value>) -> List {
        List { value }
    }

    /// The list as the shared JSON value the store holds (a `Value::Array`), as
    /// [`KvHandle::get`](crate::KvHandle::get) would return it.
    ///
    /// ```
    /// # use ephemeral_kv::KvHandle;
    /// # use serde_json::json;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = KvHandle::spawn();
    /// let list = kv.list_append_unique("l", [json!({"id": 1})]).await?;
    /// assert_eq!(**list.as_value(), json!([{"id": 1}]));
    /// # Ok(())
    /// # }
    /// ```
    pub fn as_value(&self) -> &Arc<Value> {
        &self.value
    }

    /// The items, owned: moved out if no one else shares this version of the list, else copied.
    ///
    /// ```
    /// # use ephemeral_kv::KvHandle;
    /// # use serde_json::json;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = KvHandle::spawn();
    /// let list = kv.list_append_unique("l", [json!({"id": 1})]).await?;
    /// let items: Vec<serde_json::Value> = list.into_vec();
    /// assert_eq!(items, vec![json!({"id": 1})]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn into_vec(self) -> Vec<Value> {
        match Arc::unwrap_or_clone(self.value) {
            Value::Array(items) => items,
            _ => Vec::new(),
        }
    }
}

impl Deref for List {
    type Target = [Value];

    fn deref(&self) -> &[Value] {
        match &*self.value {
            Value::Array(items) => items,
            _ => &[],
        }
    }
}

impl fmt::Debug for List {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for List {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(serializer)
    }
}

impl PartialEq<[Value]> for List {
    fn eq(&self, other: &[Value]) -> bool {
        **self == *other
    }
}

impl PartialEq<Vec<Value>> for List {
    fn eq(&self, other: &Vec<Value>) -> bool {
        **self == **other
    }
}

impl PartialEq<List> for Vec<Value> {
    fn eq(&self, other: &List) -> bool {
        **self == **other
    }
}

impl PartialEq<List> for [Value] {
    fn eq(&self, other: &List) -> bool {
        *self == **other
    }
}

impl From<List> for Vec<Value> {
    fn from(list: List) -> Vec<Value> {
        list.into_vec()
    }
}

impl From<List> for Arc<Value> {
    fn from(list: List) -> Arc<Value> {
        list.value
    }
}

impl<'a> IntoIterator for &'a List {
    type Item = &'a Value;
    type IntoIter = std::slice::Iter<'a, Value>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list(items: Value) -> List {
        List::new(Arc::new(items))
    }

    #[test]
    fn a_list_compares_converts_iterates_and_prints_as_its_items() {
        let items = vec![json!({"id": 1}), json!("two")];
        let shared = list(Value::Array(items.clone()));
        let other = vec![json!({"id": 1})];

        // Both directions of each impl, one assertion each (clippy folds `a == b && b == a`).
        assert!(shared == items);
        assert!(items == shared);
        assert!(shared != other);
        assert!(other != shared);
        assert!(shared == *items.as_slice() && *items.as_slice() == shared);
        assert!(shared != *other.as_slice() && *other.as_slice() != shared);

        let iterated: Vec<&Value> = (&shared).into_iter().collect();
        assert_eq!(iterated, vec![&items[0], &items[1]]);
        assert_eq!(format!("{shared:?}"), format!("{items:?}"));

        let value: Arc<Value> = shared.clone().into();
        assert_eq!(*value, Value::Array(items.clone()));
        assert!(Arc::ptr_eq(&value, shared.as_value()));
        assert_eq!(Vec::from(shared), items);
    }
}

/// [`KvHandle::list_pop_all`](crate::KvHandle::list_pop_all): the command, its answer moved out
/// into the items.
#[derive(Debug)]
pub(crate) struct ListPopAllArgs(pub(crate) command::ListPopAll);

impl Request for ListPopAllArgs {
    type Op = command::ListPopAll;
    type Output = Vec<Value>;
    type Shape = ();

    fn command(self) -> Result<(command::ListPopAll, ()), KvError> {
        Ok((self.0, ()))
    }

    fn output((): (), list: Option<Arc<Value>>, _: &Mailbox) -> Result<Vec<Value>, KvError> {
        // The store has let go of it: the items move out, copied only if a reader still shares
        // this version of the list.
        Ok(list.map(List::new).map(List::into_vec).unwrap_or_default())
    }
}

/// A pending [`KvHandle::list_pop_front`](crate::KvHandle::list_pop_front). Await it to take the
/// items.
///
/// ```
/// use std::time::Duration;
/// use serde_json::json;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ephemeral_kv::KvError> {
/// let kv = ephemeral_kv::KvHandle::spawn();
/// kv.list_push("jobs", [json!(1)]).await?;
/// let call: ephemeral_kv::ListPopFront<'_> = kv.list_pop_front("jobs", 10);
/// assert_eq!(call.wait(Duration::from_secs(1)).await?, vec![json!(1)]);
/// # Ok(())
/// # }
/// ```
pub type ListPopFront<'a> = Pending<'a, ListPopFrontArgs>;

/// The arguments of [`ListPopFront`]: the command itself.
#[derive(Debug)]
pub struct ListPopFrontArgs(command::ListPopFront);

impl ListPopFrontArgs {
    pub(crate) fn new(key: String, count: usize) -> Self {
        ListPopFrontArgs(command::ListPopFront {
            key,
            count,
            wait: None,
        })
    }
}

impl Request for ListPopFrontArgs {
    type Op = command::ListPopFront;
    type Output = Vec<Value>;
    type Shape = ();

    fn command(self) -> Result<(command::ListPopFront, ()), KvError> {
        let mut command = self.0;
        // Waiting for nothing is not waiting: `count` 0 answers at once.
        if command.count == 0 || command.wait == Some(Duration::ZERO) {
            command.wait = None;
        }
        Ok((command, ()))
    }

    fn output((): (), items: Vec<Value>, _: &Mailbox) -> Result<Vec<Value>, KvError> {
        Ok(items)
    }
}

impl ListPopFront<'_> {
    /// If the list is empty or missing, waits up to `timeout` for items to arrive (like Redis
    /// `BLMPOP`), then takes up to `count` of them; after the timeout, answers with no items.
    ///
    /// Each push is served to the waiters on that key one at a time, oldest first: with four idle
    /// workers waiting on one inbox, one pushed job wakes one of them. Dropping the call while it
    /// waits takes nothing (cancellation-safe). A zero timeout does not wait.
    ///
    /// ```
    /// use std::time::Duration;
    /// use serde_json::json;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), ephemeral_kv::KvError> {
    /// let kv = ephemeral_kv::KvHandle::spawn();
    /// let worker = kv.clone();
    /// let job = tokio::spawn(async move {
    ///     worker.list_pop_front("inbox", 1).wait(Duration::from_secs(30)).await
    /// });
    /// kv.list_push("inbox", [json!({"id": 7})]).await?;
    /// assert_eq!(job.await.unwrap()?, vec![json!({"id": 7})]);
    /// // Nothing arrives: an empty answer once the timeout is up.
    /// let idle = kv.list_pop_front("inbox", 1).wait(Duration::from_secs(5)).await?;
    /// assert!(idle.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn wait(self, timeout: Duration) -> Self {
        self.with(|args| args.0.wait = Some(timeout))
    }
}
