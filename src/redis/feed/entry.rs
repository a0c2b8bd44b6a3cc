//! The change stream's entries as the feed reads them: ids, generations, where a reader stands,
//! and the decoding of one entry (`k <full key> e set|del|exp|evi [v <value text>]`, see
//! `docs/redis.md`) into a [`Change`].

use std::fmt;
use std::sync::Arc;

use redis::Value as RedisValue;
use serde_json::Value;

use crate::command::{Change, ChangeKind};
use crate::redis::exec;

/// A stream entry id, `<milliseconds>-<sequence>`; ordered as Redis orders them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct StreamId(u64, u64);

impl StreamId {
    pub(crate) fn parse(text: &str) -> Option<StreamId> {
        let (ms, seq) = text.split_once('-')?;
        Some(StreamId(ms.parse().ok()?, seq.parse().ok()?))
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

/// A stream's generation: the server time (seconds, microseconds) it was made at, from the name
/// of its `ekv:gen:<s>-<us>` group (`src/redis/feed/common.lua`). `Gen::default()` for a stream
/// without one (made by another client).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Gen(u64, u64);

impl Gen {
    pub(crate) fn parse(text: &str) -> Gen {
        text.split_once('-')
            .and_then(|(s, us)| Some(Gen(s.parse().ok()?, us.parse().ok()?)))
            .unwrap_or_default()
    }
}

impl fmt::Display for Gen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Gen::default() {
            Ok(())
        } else {
            write!(f, "{}-{}", self.0, self.1)
        }
    }
}

/// A place in the stream: after the entry `id` of generation `gen`, the `pos`-th entry ever
/// added to it (entries trimmed since included). A watch or a wait sees the entries after its
/// mark; the feed's own mark is the last entry it read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Mark {
    pub(crate) gen: Gen,
    pub(crate) id: StreamId,
    pub(crate) pos: u64,
}

/// One entry read from the stream.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) id: StreamId,
    pub(crate) pos: u64,
    /// `None` for an entry that is not a change (a marker, or another client's entry).
    pub(crate) change: Option<RawChange>,
}

/// A change as the stream holds it: the value is parsed only once someone wants it.
#[derive(Debug)]
pub(crate) struct RawChange {
    pub(crate) key: String,
    pub(crate) event: Event,
}

#[derive(Debug)]
pub(crate) enum Event {
    Set {
        text: Vec<u8>,
        /// The parsed value, once parsed.
        value: Option<Arc<Value>>,
    },
    Deleted,
    Expired,
    Evicted,
    /// A set whose value text is not JSON (another client's entry): seen by no one.
    Skipped,
}

impl RawChange {
    /// Whether this change gives the key a value (the only kind that answers a wait).
    pub(crate) fn is_set(&self) -> bool {
        matches!(self.event, Event::Set { .. })
    }

    /// The change, with its value parsed (once). `None` if the value text is not JSON (another
    /// client's entry): logged, and seen by no one.
    pub(crate) fn change(&mut self) -> Option<Change> {
        let kind = match &mut self.event {
            Event::Set { text, value } => {
                if value.is_none() {
                    let text = std::mem::take(text);
                    match exec::json(&self.key, RedisValue::BulkString(text)) {
                        Ok(Some(parsed)) => *value = Some(parsed),
                        Ok(None) => return None,
                        Err(error) => {
                            tracing::warn!(key = %self.key, %error, "change stream entry skipped");
                            // Never parse it again.
                            self.event = Event::Skipped;
                            return None;
                        }
                    }
                }
                ChangeKind::Set(Arc::clone(value.as_ref()?))
            }
            Event::Deleted => ChangeKind::Deleted,
            Event::Expired => ChangeKind::Expired,
            Event::Evicted => ChangeKind::Evicted,
            Event::Skipped => return None,
        };
        Some(Change {
            key: self.key.clone(),
            kind,
        })
    }
}

/// Reads one XRANGE entry, `[id, [field, value, ...]]`. `None` if it has no id; an entry without
/// `k` and a known `e` is kept as a non-change.
pub(crate) fn decode(entry: RedisValue, pos: u64) -> Option<Entry> {
    let RedisValue::Array(parts) = entry else {
        return None;
    };
    let mut parts = parts.into_iter();
    let id = text(parts.next()?).and_then(|id| StreamId::parse(&id))?;
    let Some(RedisValue::Array(fields)) = parts.next() else {
        return Some(Entry {
            id,
            pos,
            change: None,
        });
    };
    let (mut key, mut event, mut value) = (None, None, None);
    let mut fields = fields.into_iter();
    while let (Some(name), Some(field)) = (fields.next(), fields.next()) {
        match bytes(name).as_deref() {
            Some(b"k") => key = text(field),
            Some(b"e") => event = text(field),
            Some(b"v") => value = bytes(field),
            _ => {}
        }
    }
    let event = match (event.as_deref(), value) {
        (Some("set"), Some(text)) => Some(Event::Set { text, value: None }),
        (Some("del"), _) => Some(Event::Deleted),
        (Some("exp"), _) => Some(Event::Expired),
        (Some("evi"), _) => Some(Event::Evicted),
        _ => None,
    };
    let change = match (key, event) {
        (Some(key), Some(event)) => Some(RawChange { key, event }),
        _ => None,
    };
    Some(Entry { id, pos, change })
}

pub(crate) fn bytes(value: RedisValue) -> Option<Vec<u8>> {
    match value {
        RedisValue::BulkString(bytes) => Some(bytes),
        RedisValue::SimpleString(text) => Some(text.into_bytes()),
        _ => None,
    }
}

pub(crate) fn text(value: RedisValue) -> Option<String> {
    String::from_utf8(bytes(value)?).ok()
}

pub(crate) fn int(value: &RedisValue) -> Option<u64> {
    match value {
        RedisValue::Int(n) => u64::try_from(*n).ok(),
        RedisValue::BulkString(text) => std::str::from_utf8(text).ok()?.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bulk(text: &str) -> RedisValue {
        RedisValue::BulkString(text.as_bytes().to_vec())
    }

    fn entry(id: &str, fields: &[&str]) -> RedisValue {
        RedisValue::Array(vec![
            bulk(id),
            RedisValue::Array(fields.iter().map(|f| bulk(f)).collect()),
        ])
    }

    #[test]
    fn ids_and_generations_parse_and_order_as_redis_orders_them() {
        let a = StreamId::parse("1700000000000-0").unwrap();
        let b = StreamId::parse("1700000000000-10").unwrap();
        let c = StreamId::parse("1700000000001-2").unwrap();
        assert!(a < b && b < c);
        assert_eq!(b.to_string(), "1700000000000-10");
        assert_eq!(StreamId::parse("0-0"), Some(StreamId::default()));
        assert_eq!(StreamId::parse("12"), None);
        assert_eq!(StreamId::parse("a-1"), None);
        assert!(Gen::parse("1700000000-5") < Gen::parse("1700000000-40"));
        assert_eq!(Gen::parse(""), Gen::default());
        assert_eq!(Gen::parse("1-2").to_string(), "1-2");
        assert_eq!(Gen::default().to_string(), "");
    }

    #[test]
    fn set_entries_decode_to_their_value_parsed_once() {
        let mut e = decode(
            entry("5-1", &["k", "app:a", "e", "set", "v", r#"{"n":[1,2]}"#]),
            7,
        )
        .unwrap();
        assert_eq!((e.id, e.pos), (StreamId(5, 1), 7));
        let raw = e.change.as_mut().unwrap();
        assert!(raw.is_set());
        let first = raw.change().unwrap();
        assert_eq!(first.key, "app:a");
        assert_eq!(first.kind, ChangeKind::Set(Arc::new(json!({"n": [1, 2]}))));
        let ChangeKind::Set(first) = first.kind else {
            unreachable!()
        };
        let ChangeKind::Set(second) = raw.change().unwrap().kind else {
            unreachable!()
        };
        assert!(Arc::ptr_eq(&first, &second)); // shared, not parsed again
    }

    #[test]
    fn removals_decode_and_big_numbers_stay_exact() {
        let mut del = decode(entry("1-0", &["k", "x", "e", "del"]), 1).unwrap();
        assert_eq!(
            del.change.as_mut().unwrap().change().unwrap().kind,
            ChangeKind::Deleted
        );
        let mut exp = decode(entry("1-1", &["e", "exp", "k", "x"]), 2).unwrap();
        assert_eq!(
            exp.change.as_mut().unwrap().change().unwrap().kind,
            ChangeKind::Expired
        );
        let mut evi = decode(entry("1-2", &["k", "x", "e", "evi"]), 3).unwrap();
        assert_eq!(
            evi.change.as_mut().unwrap().change().unwrap().kind,
            ChangeKind::Evicted
        );
        let mut big = decode(
            entry("1-3", &["k", "n", "e", "set", "v", "9007199254740993"]),
            4,
        )
        .unwrap();
        assert_eq!(
            big.change.as_mut().unwrap().change().unwrap().kind,
            ChangeKind::Set(Arc::new(json!(9007199254740993u64)))
        );
    }

    #[test]
    fn markers_and_foreign_entries_are_kept_as_non_changes() {
        for fields in [
            &["ekv", "open"][..],
            &["k", "x"][..],
            &["k", "x", "e", "set"][..], // a set without its value
            &["k", "x", "e", "rename"][..],
            &["e", "del"][..],
        ] {
            let e = decode(entry("2-0", fields), 9).unwrap();
            assert!(e.change.is_none(), "{fields:?}");
        }
        assert!(decode(bulk("2-0"), 1).is_none());
        assert!(decode(
            RedisValue::Array(vec![bulk("nope"), RedisValue::Array(vec![])]),
            1
        )
        .is_none());
    }

    #[test]
    fn a_value_that_is_not_json_is_skipped_once() {
        let mut e = decode(entry("3-0", &["k", "x", "e", "set", "v", "{nope"]), 1).unwrap();
        let raw = e.change.as_mut().unwrap();
        assert!(raw.change().is_none());
        assert!(!raw.is_set());
        assert!(raw.change().is_none());
    }
}
