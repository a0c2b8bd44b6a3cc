//! [`List`]: the whole list that [`KvHandle::list_append_unique`](crate::KvHandle::list_append_unique)
//! answers with, shared with the store instead of copied out of it.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde::{Serialize, Serializer};
use serde_json::Value;

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
