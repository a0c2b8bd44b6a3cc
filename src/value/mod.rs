//! Values as callers give them, turned into the JSON the store keeps, and the one limit on their
//! shape: how deeply they nest.
//!
//! Why a depth limit: `serde_json::Value` drops, clones, compares and serializes itself
//! recursively, so a value nested tens of thousands of levels deep overflows the stack of the task
//! that drops it, which aborts the whole process. And serde_json refuses to parse text nested more
//! than 128 levels, so such a value stored on Redis could not be read back. Values deeper than
//! [`MAX_DEPTH`] are refused before anything is sent, and taken apart without recursion.

use serde::de::DeserializeOwned;
use serde::{ser, Serialize};
use serde_json::Value;

use crate::error::KvError;

mod finite;

/// Serializes a value meant for `key`.
///
/// A `Value` is taken as it is: serializing it would build a deep copy and drop the original, which
/// doubled the cost of `set`/`mset` of a `Value` (the common case with `json!`).
///
/// # Errors
/// [`KvError::Serialize`] if it does not serialize; [`KvError::TooDeep`] if it nests deeper than
/// [`MAX_DEPTH`].
pub(crate) fn to_json<T: Serialize>(key: &str, value: T) -> Result<Value, KvError> {
    to_json_within(key, value, MAX_DEPTH)
}

/// Reads a stored value at `key` as a `T`, built straight from the shared value (no JSON copy on
/// the way): the one place a typed read (`get_as`, `wait_for_as`, `Txn::get_as`,
/// `WatchEvent::value_as`) turns into [`KvError::Deserialize`] naming the key.
pub(crate) fn decode<T: DeserializeOwned>(key: &str, value: &Value) -> Result<T, KvError> {
    T::deserialize(value).map_err(|source| KvError::Deserialize {
        key: key.to_owned(),
        source,
    })
}

/// [`to_json`] for the items of a list: one level less each, since the list around them is the
/// stored value. The first item that fails is the error.
pub(crate) fn to_json_items<I>(key: &str, items: I) -> Result<Vec<Value>, KvError>
where
    I: IntoIterator,
    I::Item: Serialize,
{
    items
        .into_iter()
        .map(|item| to_json_within(key, item, MAX_DEPTH - 1))
        .collect()
}

#[allow(unsafe_code)]
fn to_json_within<T: Serialize>(key: &str, value: T, depth: usize) -> Result<Value, KvError> {
    let value = if typeid::of::<T>() == typeid::of::<Value>() {
        let value = std::mem::ManuallyDrop::new(value);
        // SAFETY: `T` is `Value` (`typeid` compares types with lifetimes erased, and `Value` has
        // none), so this reads a `Value` from a `Value` whose own drop is suppressed: a move.
        unsafe { std::ptr::read(&*value as *const T as *const Value) }
    } else {
        // serde_json writes NaN and the infinities as `null`: refuse them instead of storing
        // something else than what was given. A `Value` cannot hold one, so a `&Value` is not
        // walked for them.
        let borrowed_value = typeid::of::<T>() == typeid::of::<&Value>();
        if !borrowed_value && finite::has_non_finite_float(&value) {
            return Err(KvError::Serialize {
                key: key.to_owned(),
                source: ser::Error::custom(
                    "a float that is NaN or infinite has no JSON form (serde_json would write null)",
                ),
            });
        }
        // Serializing recurses as deep as the value nests, before its depth can be checked:
        // `serde_stacker` grows the stack as needed, so that a value nested a hundred thousand
        // levels deep is refused below instead of overflowing the caller's stack.
        value
            .serialize(serde_stacker::Serializer::new(
                serde_json::value::Serializer,
            ))
            .map_err(|source| KvError::Serialize {
                key: key.to_owned(),
                source,
            })?
    };
    check_depth_within(key, value, depth)
}

/// How deeply a stored value may nest: `[]` and `{}` are one level, `[[1]]` two. A value deeper
/// than this is refused with [`KvError::TooDeep`], before anything is sent, on every backend; what
/// is accepted reads back on every backend. For the list calls the stored value is the list, so
/// an item may nest one level less.
///
/// ```
/// use serde_json::{json, Value};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let kv = ephemeral_kv::KvHandle::spawn();
/// let mut deep = json!(1);
/// for _ in 0..ephemeral_kv::MAX_DEPTH {
///     deep = Value::Array(vec![deep]);
/// }
/// assert!(kv.set("ok", &deep).await.is_ok());
/// let deeper = Value::Array(vec![deep]);
/// assert!(matches!(kv.set("no", deeper).await, Err(ephemeral_kv::KvError::TooDeep { .. })));
/// # }
/// ```
pub const MAX_DEPTH: usize = 128;

/// `value` if it nests no deeper than [`MAX_DEPTH`]; else it is taken apart without recursion
/// and the call is refused.
pub(crate) fn check_depth(key: &str, value: Value) -> Result<Value, KvError> {
    check_depth_within(key, value, MAX_DEPTH)
}

fn check_depth_within(key: &str, value: Value, depth: usize) -> Result<Value, KvError> {
    if depth_exceeds(&value, depth) {
        drop_flat(value);
        return Err(KvError::TooDeep {
            key: key.to_owned(),
            limit: MAX_DEPTH,
        });
    }
    Ok(value)
}

/// Whether `value` nests deeper than `limit`, found without an allocation (this runs on every
/// write). It recurses, but never more than `limit + 1` levels, however deep `value` nests: a
/// container with no room left is the answer, and its contents are not looked at.
fn depth_exceeds(value: &Value, limit: usize) -> bool {
    /// Whether `value` fits in `room` more levels of containers.
    fn fits(value: &Value, room: usize) -> bool {
        match value {
            Value::Array(items) => room > 0 && items.iter().all(|item| fits(item, room - 1)),
            Value::Object(fields) => room > 0 && fields.values().all(|field| fits(field, room - 1)),
            _ => true,
        }
    }
    !fits(value, limit)
}

/// Drops a value of any depth without recursion: its containers are emptied onto a stack first.
fn drop_flat(value: Value) {
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        match value {
            Value::Array(items) => stack.extend(items),
            Value::Object(fields) => stack.extend(fields.into_iter().map(|(_, value)| value)),
            _ => {}
        }
    }
}

/// The deepest nesting in JSON `text`, counted without parsing it (brackets inside strings do not
/// count): how the Redis executor checks foreign text before parsing it without serde_json's own
/// limit, which is one level short of [`MAX_DEPTH`].
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn text_depth(text: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &byte in text {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nested(levels: usize) -> Value {
        let mut value = json!(1);
        for _ in 0..levels {
            value = Value::Array(vec![value]);
        }
        value
    }

    #[test]
    fn depth_is_counted_in_bounded_recursion_and_deep_values_drop_flat() {
        assert!(!depth_exceeds(&json!(1), 0));
        assert!(depth_exceeds(&json!([]), 0));
        assert!(!depth_exceeds(&json!({"a": [1]}), 2));
        assert!(depth_exceeds(&json!({"a": [1]}), 1));
        assert!(!depth_exceeds(&nested(MAX_DEPTH), MAX_DEPTH));
        assert!(depth_exceeds(&nested(MAX_DEPTH + 1), MAX_DEPTH));
        // A deep value's last item is the one too deep: every level before it is looked at.
        assert!(depth_exceeds(
            &json!([1, {"a": 2}, nested(MAX_DEPTH)]),
            MAX_DEPTH
        ));
        assert!(!depth_exceeds(
            &json!([1, {"a": 2}, nested(MAX_DEPTH - 1)]),
            MAX_DEPTH
        ));
        // Walked, it would take a frame per level; it stops one level past the limit.
        let walked_on_a_small_stack = std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(|| {
                let deep = nested(200_000);
                let exceeds = depth_exceeds(&deep, MAX_DEPTH);
                drop_flat(deep);
                exceeds
            })
            .unwrap()
            .join()
            .unwrap();
        assert!(walked_on_a_small_stack);
        let deep = nested(200_000); // dropped recursively, this overflows a thread's stack
        assert!(matches!(
            check_depth("k", deep),
            Err(KvError::TooDeep {
                limit: MAX_DEPTH,
                ..
            })
        ));
    }

    #[test]
    fn text_depth_skips_brackets_in_strings() {
        assert_eq!(text_depth(b"1"), 0);
        // Brackets in a string, and an escaped quote that does not end it, do not count; the
        // list after it does.
        assert_eq!(text_depth(br#"[{"a": "[[[\"]]]"}, [[1]]]"#), 3);
        let text = serde_json::to_vec(&nested(MAX_DEPTH)).unwrap();
        assert_eq!(text_depth(&text), MAX_DEPTH);
    }

    #[test]
    fn to_json_moves_a_value_and_serializes_anything_else() {
        let value = json!({"id": 7, "tags": ["a", "b"], "nested": {"x": null}});
        assert_eq!(to_json("k", value.clone()).unwrap(), value);
        assert_eq!(to_json("k", &value).unwrap(), value);
        assert_eq!(to_json("k", ("a", 1)).unwrap(), json!(["a", 1]));
        let refused = to_json("k", std::collections::HashMap::from([((1, 2), 3)]));
        assert!(matches!(refused, Err(KvError::Serialize { key, .. }) if key == "k"));
    }
}
