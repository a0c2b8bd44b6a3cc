//! The reference model: what each call must answer under the rules of `docs/rules.md`, as plain
//! code over a `HashMap` and a virtual clock. It is meant to be obviously right, not fast.
//!
//! It keeps expired entries until a call names them or `purge_expired` removes them, as the store
//! does without active expiry, because `stats` and `purge_expired` can see them. With active expiry
//! the owner task may sweep them after any move of the clock, and certainly has after the
//! next command it receives (it sweeps after every batch, before the caller, on the same
//! current-thread runtime, runs again; sequences here never hold more expired entries than one
//! sweep removes): [`Model::apply`] then accepts the answer from either state. A call refused on
//! the caller's side (bad value, item or TTL) never reaches the owner task, so it sweeps nothing.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use ephemeral_kv::Ttl;

use super::ops::{Answer, Failure, Op, Setup, TxnFn, TxnView, UpdateFn, HANDLES, PLANNED_PANIC};

#[derive(Clone, Debug, PartialEq)]
struct Slot {
    value: Value,
    /// `None`: never expires.
    deadline: Option<Instant>,
}

/// A store as the API describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    now: Instant,
    active_expiry: bool,
    /// The full prefix of each handle in [`HANDLES`].
    prefixes: Vec<String>,
    slots: HashMap<String, Slot>,
    /// With active expiry: the instants the clock has been moved to since the owner task last
    /// received a command, at each of which it may have swept.
    sweep_points: Vec<Instant>,
}

impl Model {
    /// An empty store with `setup`'s settings, its clock at `now`.
    pub fn new(setup: Setup, now: Instant) -> Model {
        Model {
            now,
            active_expiry: setup.active_expiry,
            prefixes: HANDLES
                .iter()
                .map(|(_, prefix)| format!("{}{prefix}", setup.prefix))
                .collect(),
            slots: HashMap::new(),
            sweep_points: Vec::new(),
        }
    }

    /// The virtual clock.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Applies `op` and returns every answer the store may give (one, except where active expiry's
    /// timing shows).
    pub fn apply(&mut self, op: &Op) -> Vec<Answer> {
        if !self.active_expiry {
            return vec![self.step(op)];
        }
        // The owner task may have swept after any of the clock's moves since it last received a
        // command, or not at all; a later sweep removes all an earlier one would have.
        let mut replies = Vec::new();
        for swept_at in &self.sweep_points {
            let mut swept = self.clone();
            swept.sweep_until(*swept_at);
            replies.push(swept.step(op));
        }
        replies.insert(0, self.step(op));
        replies.dedup();
        if reaches_owner(op, &replies[0]) {
            self.sweep_until(self.now);
            self.sweep_points.clear();
        } else if matches!(op, Op::Advance(_)) {
            self.sweep_points.push(self.now);
        }
        replies
    }

    /// Applies `op` with expired entries kept until touched or purged.
    fn step(&mut self, op: &Op) -> Answer {
        self.try_step(op).unwrap_or_else(Answer::Err)
    }

    fn try_step(&mut self, op: &Op) -> Result<Answer, Failure> {
        Ok(match op {
            Op::Set { h, key, value, ttl } => {
                let key = self.key(*h, key);
                let value = value
                    .json()
                    .ok_or(Failure::Serialize { key: key.clone() })?;
                check_ttl(&key, *ttl)?;
                self.put(key, value, *ttl);
                Answer::Done
            }
            Op::Get { h, key } => Answer::Value(self.read(&self.key(*h, key))),
            Op::GetAs { h, key, ty } => {
                let key = self.key(*h, key);
                match self.read(&key) {
                    None => Answer::Value(None),
                    Some(value) => {
                        Answer::Value(Some(ty.read(value).ok_or(Failure::Deserialize { key })?))
                    }
                }
            }
            Op::Delete { h, key } => {
                self.slots.remove(&self.key(*h, key));
                Answer::Done
            }
            Op::ListAppendUnique {
                h,
                key,
                items,
                id_key,
                ttl,
            } => {
                let key = self.key(*h, key);
                let id_key = id_key.unwrap_or("id");
                let items = items
                    .iter()
                    .map(|item| item.json())
                    .collect::<Option<Vec<_>>>()
                    .ok_or(Failure::Serialize { key: key.clone() })?;
                let no_id = |item: &Value| !id_of(item, id_key).is_some_and(is_scalar);
                if let Some(index) = items.iter().position(no_id) {
                    return Err(Failure::InvalidItem { key, index });
                }
                check_ttl(&key, *ttl)?;
                let mut list = match self.read(&key) {
                    None => Vec::new(),
                    Some(Value::Array(list)) => list,
                    Some(other) => {
                        let found = type_name(&other);
                        return Err(Failure::WrongType { key, found });
                    }
                };
                for item in items {
                    let id = id_of(&item, id_key).expect("checked above");
                    let taken =
                        |old: &Value| id_of(old, id_key).is_some_and(|old| same_id(old, id));
                    if !list.iter().any(taken) {
                        list.push(item);
                    }
                }
                self.put(key, Value::Array(list.clone()), *ttl);
                Answer::List(list)
            }
            Op::ListPopAll { h, key } => {
                let key = self.key(*h, key);
                match self.read(&key) {
                    Some(Value::Array(list)) => {
                        self.slots.remove(&key);
                        Answer::List(list)
                    }
                    _ => Answer::List(Vec::new()),
                }
            }
            Op::ListPush {
                h,
                key,
                items,
                max_len,
                ttl,
            } => {
                let key = self.key(*h, key);
                let items = items
                    .iter()
                    .map(|item| item.json())
                    .collect::<Option<Vec<_>>>()
                    .ok_or(Failure::Serialize { key: key.clone() })?;
                check_ttl(&key, *ttl)?;
                if *max_len == Some(0) {
                    return Err(Failure::InvalidArgument { key });
                }
                let (mut list, existed) = match self.read(&key) {
                    None => (Vec::new(), false),
                    Some(Value::Array(list)) => (list, true),
                    Some(other) => {
                        let found = type_name(&other);
                        return Err(Failure::WrongType { key, found });
                    }
                };
                list.extend(items);
                // The newest `max_len` stay: the oldest go from the front.
                let keep = max_len.unwrap_or(usize::MAX);
                if list.len() > keep {
                    list.drain(..list.len() - keep);
                }
                let len = list.len();
                // Pushing nothing onto a missing key creates nothing.
                if existed || len > 0 {
                    self.put(key, Value::Array(list), *ttl);
                }
                Answer::Len(len)
            }
            Op::ListPopFront { h, key, n } => {
                let key = self.key(*h, key);
                let mut list = match self.read(&key) {
                    None => return Ok(Answer::List(Vec::new())),
                    Some(Value::Array(list)) => list,
                    Some(other) => {
                        let found = type_name(&other);
                        return Err(Failure::WrongType { key, found });
                    }
                };
                // Nothing to take: nothing changes (an empty list stays).
                if *n == 0 || list.is_empty() {
                    return Ok(Answer::List(Vec::new()));
                }
                let taken: Vec<Value> = list.drain(..list.len().min(*n)).collect();
                if list.is_empty() {
                    self.slots.remove(&key);
                } else {
                    self.replace_value(&key, Value::Array(list)); // keeps the TTL
                }
                Answer::List(taken)
            }
            Op::Mset { h, entries, ttl } => {
                let mut pairs = Vec::new();
                for (key, value) in entries {
                    let key = self.key(*h, key);
                    let value = value
                        .json()
                        .ok_or(Failure::Serialize { key: key.clone() })?;
                    pairs.push((key, value));
                }
                let first = pairs.first().map_or("", |(key, _)| key.as_str());
                check_ttl(first, *ttl)?;
                for (key, value) in pairs {
                    self.put(key, value, *ttl);
                }
                Answer::Done
            }
            Op::Mget { h, keys } => Answer::Values(
                keys.iter()
                    .map(|key| self.read(&self.key(*h, key)))
                    .collect(),
            ),
            Op::Expire { h, key, ttl } => {
                let key = self.key(*h, key);
                check_ttl(&key, Some(*ttl))?;
                if self.read(&key).is_none() {
                    return Ok(Answer::Flag(false));
                }
                let deadline = self.deadline(Some(*ttl));
                if let Some(slot) = self.slots.get_mut(&key) {
                    slot.deadline = deadline;
                }
                Answer::Flag(true)
            }
            Op::PurgeExpired { limit, .. } => Answer::Count(self.purge(limit.unwrap_or(1000))),
            Op::Stats { .. } => Answer::Stats(
                self.slots.len(),
                self.slots.values().filter(|s| s.deadline.is_some()).count(),
            ),
            Op::Incr { h, key, by, ttl } => {
                let key = self.key(*h, key);
                check_ttl(&key, *ttl)?;
                let Some(current) = self.read(&key) else {
                    self.put(key, Value::from(*by), *ttl);
                    return Ok(Answer::Int(*by));
                };
                let Some(current) = current.as_i64() else {
                    let found = type_name(&current);
                    return Err(Failure::WrongType { key, found });
                };
                let by = *by;
                let next = current.checked_add(by).ok_or(Failure::Overflow {
                    key: key.clone(),
                    current,
                    by,
                })?;
                self.replace_value(&key, Value::from(next));
                Answer::Int(next)
            }
            Op::SetIfAbsent { h, key, value, ttl } => {
                let key = self.key(*h, key);
                let value = value
                    .json()
                    .ok_or(Failure::Serialize { key: key.clone() })?;
                check_ttl(&key, *ttl)?;
                if self.read(&key).is_some() {
                    return Ok(Answer::Flag(false));
                }
                self.put(key, value, *ttl);
                Answer::Flag(true)
            }
            Op::CompareAndSet {
                h,
                key,
                expected,
                new,
                ttl,
            } => {
                let key = self.key(*h, key);
                let new = new.json().ok_or(Failure::Serialize { key: key.clone() })?;
                check_ttl(&key, *ttl)?;
                let current = self.read(&key);
                if current != *expected {
                    return Ok(Answer::Flag(false));
                }
                // Without a TTL of its own, a swap keeps the key's; a created key never expires.
                let deadline = match ttl {
                    Some(_) => self.deadline(*ttl),
                    None => self.slots.get(&key).and_then(|slot| slot.deadline),
                };
                self.slots.insert(
                    key,
                    Slot {
                        value: new,
                        deadline,
                    },
                );
                Answer::Flag(true)
            }
            Op::GetDel { h, key } => {
                let key = self.key(*h, key);
                let value = self.read(&key);
                self.slots.remove(&key);
                Answer::Value(value)
            }
            Op::Exists { h, key } => Answer::Flag(self.read(&self.key(*h, key)).is_some()),
            Op::TtlOf { h, key } => {
                let key = self.key(*h, key);
                Answer::Ttl(match self.read(&key) {
                    None => Ttl::Missing,
                    Some(_) => match self.slots[&key].deadline {
                        None => Ttl::NoExpiry,
                        Some(deadline) => Ttl::Expires(deadline - self.now),
                    },
                })
            }
            Op::Persist { h, key } => {
                let key = self.key(*h, key);
                if self.read(&key).is_none() {
                    return Ok(Answer::Flag(false));
                }
                let slot = self.slots.get_mut(&key).expect("just read");
                Answer::Flag(slot.deadline.take().is_some())
            }
            Op::ScanPrefix { h, prefix, limit } => {
                // A scan looks without touching: expired entries are skipped, not removed.
                let full = self.key(*h, prefix);
                let strip = self.prefixes[*h].len();
                let mut keys: Vec<String> = self
                    .slots
                    .iter()
                    .filter(|(key, slot)| key.starts_with(&full) && !self.is_expired(slot))
                    .map(|(key, _)| key[strip..].to_owned())
                    .collect();
                keys.sort();
                keys.truncate(limit.unwrap_or(usize::MAX));
                Answer::Keys(keys)
            }
            Op::Update { h, key, f } => {
                let key = self.key(*h, key);
                let current = self.read(&key);
                if *f == UpdateFn::Panic {
                    return Err(Failure::UpdatePanicked {
                        key,
                        message: PLANNED_PANIC.to_owned(),
                    });
                }
                let new = f.call(current.as_ref());
                match (&new, current.is_some()) {
                    (Some(value), true) => self.replace_value(&key, value.clone()),
                    (Some(value), false) => self.put(key, value.clone(), None),
                    (None, _) => {
                        self.slots.remove(&key);
                    }
                }
                Answer::Value(new)
            }
            Op::Transaction { h, f } => {
                let prefix = self.prefixes[*h].clone();
                if matches!(f, TxnFn::Panic { .. }) {
                    return Err(Failure::TransactionPanicked {
                        prefix,
                        message: PLANNED_PANIC.to_owned(),
                    });
                }
                let mut txn = ModelTxn {
                    model: self,
                    prefix,
                    staged: HashMap::new(),
                    writes: Vec::new(),
                    aborted: false,
                };
                let reply = f.run(&mut txn);
                let writes = if txn.aborted { Vec::new() } else { txn.writes };
                for write in writes {
                    match write {
                        Write::Set(key, value) => self.put(key, value, None),
                        Write::Delete(key) => {
                            self.slots.remove(&key);
                        }
                        Write::Expire(key, ttl) => {
                            let deadline = self.deadline(Some(ttl));
                            if let Some(slot) = self.slots.get_mut(&key) {
                                slot.deadline = deadline;
                            }
                        }
                    }
                }
                reply
            }
            Op::Advance(by) => {
                self.now += *by;
                Answer::Done
            }
        })
    }

    /// Replaces the value of an existing entry and keeps its deadline.
    fn replace_value(&mut self, key: &str, value: Value) {
        if let Some(slot) = self.slots.get_mut(key) {
            slot.value = value;
        }
    }

    /// The full key of `key` on handle `h`.
    fn key(&self, h: usize, key: &str) -> String {
        format!("{}{key}", self.prefixes[h])
    }

    /// The deadline of a TTL given now; one the clock cannot represent never comes.
    fn deadline(&self, ttl: Option<Duration>) -> Option<Instant> {
        ttl.and_then(|ttl| self.now.checked_add(ttl))
    }

    fn is_expired(&self, slot: &Slot) -> bool {
        slot.deadline.is_some_and(|deadline| deadline <= self.now)
    }

    /// The live value at `key`. Any call that names an expired key removes it.
    fn read(&mut self, key: &str) -> Option<Value> {
        let slot = self.slots.get(key)?;
        if self.is_expired(slot) {
            self.slots.remove(key);
            return None;
        }
        Some(slot.value.clone())
    }

    fn put(&mut self, key: String, value: Value, ttl: Option<Duration>) {
        let deadline = self.deadline(ttl);
        self.slots.insert(key, Slot { value, deadline });
    }

    /// Removes up to `limit` expired entries, earliest deadline first (ties in key order).
    fn purge(&mut self, limit: usize) -> usize {
        let mut expired: Vec<(Instant, String)> = self
            .slots
            .iter()
            .filter(|(_, slot)| self.is_expired(slot))
            .filter_map(|(key, slot)| Some((slot.deadline?, key.clone())))
            .collect();
        expired.sort();
        expired.truncate(limit);
        for (_, key) in &expired {
            self.slots.remove(key);
        }
        expired.len()
    }

    /// Removes every entry whose deadline is at or before `instant`, as active expiry does when
    /// it runs at that instant.
    fn sweep_until(&mut self, instant: Instant) {
        self.slots
            .retain(|_, slot| !slot.deadline.is_some_and(|deadline| deadline <= instant));
    }
}

fn reaches_owner(op: &Op, reply: &Answer) -> bool {
    !matches!(op, Op::Advance(_))
        && !matches!(
            reply,
            Answer::Err(
                Failure::Serialize { .. }
                    | Failure::InvalidItem { .. }
                    | Failure::InvalidTtl { .. }
                    | Failure::InvalidArgument { .. }
            )
        )
}

fn check_ttl(key: &str, ttl: Option<Duration>) -> Result<(), Failure> {
    match ttl {
        Some(Duration::ZERO) => Err(Failure::InvalidTtl {
            key: key.to_owned(),
            ttl: Duration::ZERO,
        }),
        _ => Ok(()),
    }
}

/// An item's id: its `id_key` field if it is an object holding one.
fn id_of<'a>(item: &'a Value, id_key: &str) -> Option<&'a Value> {
    item.as_object()?.get(id_key)
}

/// Whether `id` can be an id: a JSON scalar, not a list or an object.
fn is_scalar(id: &Value) -> bool {
    !matches!(id, Value::Array(_) | Value::Object(_))
}

/// Whether two ids are one: scalars compare as JSON values, except numbers, which compare by value
/// (`1` and `1.0` are one id). As `f64`s, which is exact for the small numbers the generators make.
/// A list or an object is no id, so it matches nothing.
fn same_id(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => is_scalar(a) && is_scalar(b) && a == b,
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A write a transaction staged, by full key.
enum Write {
    Set(String, Value),
    Delete(String),
    Expire(String, Duration),
}

/// A transaction as the API describes it: reads see its own staged writes first, then the live
/// entries (without removing expired ones); writes are recorded and applied in order at the end,
/// or not at all if it aborts.
struct ModelTxn<'a> {
    model: &'a Model,
    prefix: String,
    /// What the transaction has made of each key it wrote: `None` for deleted.
    staged: HashMap<String, Option<(Value, Option<Instant>)>>,
    writes: Vec<Write>,
    aborted: bool,
}

impl ModelTxn<'_> {
    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn view(&self, key: &str) -> Option<(Value, Option<Instant>)> {
        if let Some(staged) = self.staged.get(key) {
            return staged.clone();
        }
        let slot = self.model.slots.get(key)?;
        (!self.model.is_expired(slot)).then(|| (slot.value.clone(), slot.deadline))
    }
}

impl TxnView for ModelTxn<'_> {
    fn get(&self, key: &str) -> Option<Value> {
        self.view(&self.full(key)).map(|(value, _)| value)
    }

    fn set(&mut self, key: &str, value: Value) {
        let key = self.full(key);
        self.staged.insert(key.clone(), Some((value.clone(), None)));
        self.writes.push(Write::Set(key, value));
    }

    fn delete(&mut self, key: &str) -> bool {
        let key = self.full(key);
        if self.view(&key).is_none() {
            return false;
        }
        self.staged.insert(key.clone(), None);
        self.writes.push(Write::Delete(key));
        true
    }

    fn expire(&mut self, key: &str, ttl: Duration) -> Result<bool, Failure> {
        let key = self.full(key);
        check_ttl(&key, Some(ttl))?;
        let Some((value, _)) = self.view(&key) else {
            return Ok(false);
        };
        let deadline = self.model.deadline(Some(ttl));
        self.staged.insert(key.clone(), Some((value, deadline)));
        self.writes.push(Write::Expire(key, ttl));
        Ok(true)
    }

    fn abort(&mut self) {
        self.aborted = true;
    }
}
