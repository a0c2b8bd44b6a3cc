//! The id index of a list kept by `list_append_unique`: the ids its items hold, in a hash set.
//!
//! Why an index: without one, each append compares every new item's id with every item already in
//! the list, so an inbox that grows by one item per call costs the length of the list per call
//! (the Python reference rebuilds a set of ids on every call, which is the same). With it, an
//! append costs what it adds. The index belongs to the map entry, is built from the list the first
//! time `list_append_unique` touches it with an `id_key`, and is dropped by every other write to the
//! key (a `set`, a `list_push`, a `list_pop_front`, an `update`...), so that it never disagrees
//! with the list it describes; the next append rebuilds it once.
//!
//! Ids are compared as JSON scalars, numbers by value: `1` and `1.0` are one id, as they are on
//! the Redis backend (whose scripts decode numbers as doubles) and in the Python reference (where
//! `1 == 1.0`). Lists and objects are refused as ids by the handle before a command is built.

use std::collections::HashSet;

use foldhash::fast::RandomState;
use serde_json::{Number, Value};

/// An id as the index compares it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum IdKey {
    Null,
    Bool(bool),
    /// Every integral number, whatever its JSON spelling (`1`, `1.0`, `1e0`).
    Int(i128),
    /// Every other number, by its bits (`-0.0` is integral, so it is `Int(0)`).
    Float(u64),
    Str(String),
}

impl IdKey {
    /// The id of `value`, or `None` for a list or an object, which cannot be ids.
    pub(crate) fn of(value: &Value) -> Option<IdKey> {
        Some(match value {
            Value::Null => IdKey::Null,
            Value::Bool(flag) => IdKey::Bool(*flag),
            Value::Number(number) => number_key(number),
            Value::String(text) => IdKey::Str(text.clone()),
            Value::Array(_) | Value::Object(_) => return None,
        })
    }
}

fn number_key(number: &Number) -> IdKey {
    if let Some(int) = number.as_i64() {
        return IdKey::Int(i128::from(int));
    }
    if let Some(int) = number.as_u64() {
        return IdKey::Int(i128::from(int));
    }
    let float = number.as_f64().unwrap_or(f64::NAN);
    // Below 2^127 in size an integral `f64` converts to `i128` exactly.
    if float.fract() == 0.0 && float.abs() < 1.7e38 {
        IdKey::Int(float as i128)
    } else {
        IdKey::Float(float.to_bits())
    }
}

/// The ids of one list, for one id field.
#[derive(Debug)]
pub(crate) struct IdIndex {
    id_key: String,
    ids: HashSet<IdKey, RandomState>,
}

impl IdIndex {
    /// Indexes the ids that `list`'s items hold under `id_key`.
    pub(crate) fn build(id_key: &str, list: &[Value]) -> IdIndex {
        let mut index = IdIndex {
            id_key: id_key.to_owned(),
            ids: HashSet::with_capacity_and_hasher(list.len(), RandomState::default()),
        };
        for item in list {
            if let Some(id) = item.get(id_key).and_then(IdKey::of) {
                index.ids.insert(id);
            }
        }
        index
    }

    /// Whether this index is for `id_key`.
    /// How many ids it holds.
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    pub(crate) fn is_for(&self, id_key: &str) -> bool {
        self.id_key == id_key
    }

    /// Keeps the items whose id is new (the first of equal ids among them), noting their ids.
    /// Items without a usable id are dropped; the handle never sends any.
    pub(crate) fn admit(&mut self, items: Vec<Value>) -> Vec<Value> {
        let id_key = &self.id_key;
        let ids = &mut self.ids;
        items
            .into_iter()
            .filter(|item| {
                item.get(id_key)
                    .and_then(IdKey::of)
                    .is_some_and(|id| ids.insert(id))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_are_one_id_whatever_their_spelling() {
        let key = |text: &str| IdKey::of(&serde_json::from_str(text).unwrap());
        assert_eq!(key("1"), key("1.0"));
        assert_eq!(key("1"), key("1e0"));
        assert_eq!(key("-0.0"), key("0"));
        assert_eq!(
            key("18446744073709551615"),
            Some(IdKey::Int(u64::MAX.into()))
        );
        assert_ne!(key("1.5"), key("1"));
        assert_ne!(key("\"1\""), key("1"));
        assert_ne!(key("true"), key("1"));
        assert_eq!(key("[]"), None);
        assert_eq!(key("{}"), None);
    }

    #[test]
    fn admit_keeps_new_ids_once_and_remembers_them() {
        let mut index = IdIndex::build("id", &[json!({"id": 1}), json!({"id": "a"})]);
        let admitted = index.admit(vec![
            json!({"id": 1.0}),
            json!({"id": 2, "n": "first"}),
            json!({"id": 2, "n": "second"}),
            json!({"no_id": 3}),
        ]);
        assert_eq!(admitted, vec![json!({"id": 2, "n": "first"})]);
        assert!(index.admit(vec![json!({"id": 2})]).is_empty());
        assert!(index.is_for("id"));
        assert!(!index.is_for("task_id"));
    }
}
