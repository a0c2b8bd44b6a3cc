//! The Lua scripts that keep each compound command atomic on Redis.
//!
//! Redis runs a script whole, with no other client's command in between, which is what the owner
//! task's single-threaded loop gives in-process. Values are stored as serde_json's compact text;
//! the scripts compare and build that text as strings wherever they can, and decode it with
//! `cjson` only to look inside (list ids), so that bytes written by this crate are kept exactly
//! (re-encoding with `cjson` would turn `[]` into `{}` and round large numbers).
//!
//! Errors the caller must see as a [`KvError`](crate::KvError) come back as error replies with our
//! own codes (`KVWRONGTYPE <what the key holds>`, `KVOVERFLOW <current value>`), which
//! [`exec`](super::exec) turns into the same variants the in-process store returns.
//!
//! The scripts are loaded once when the handle connects and invoked by their SHA1 (`EVALSHA`);
//! after a server restart, which empties the script cache, the owner task reloads them on the
//! first `NOSCRIPT` reply and sends the refused commands again.

use redis::Script;

/// Shared by every script: the JSON type of a stored text, in the words of
/// [`KvError::WrongType`](crate::KvError::WrongType), from its first character (or, for the
/// literals, the whole text). Text written by another client that only looks like JSON at its start
/// is taken for what it looks like; it is never parsed as such.
const PRELUDE: &str = r#"
local function kind(text)
  local t = string.match(text, '^%s*(.-)%s*$')
  local c = string.sub(t, 1, 1)
  if c == '[' then return 'a list'
  elseif c == '{' then return 'an object'
  elseif c == '"' then return 'a string'
  elseif t == 'true' or t == 'false' then return 'a boolean'
  elseif t == 'null' then return 'null'
  elseif string.match(t, '^-?%d[%d.eE+-]*$') then return 'a number'
  end
  return 'text that is not JSON'
end
"#;

/// `list_append_unique`. KEYS[1] the list; ARGV[1] the id field, ARGV[2] the TTL in ms or `''`
/// (none), ARGV[3..] the items as compact JSON (objects holding the id field, checked by the
/// caller). Returns the whole list's text.
///
/// Ids are compared as `cjson` decodes them: numbers as doubles, so `1` and `1.0` are one id, as
/// in-process (integers past 2^53 may collide here). The handle refuses list and object ids, so
/// only scalars reach this script.
const LIST_APPEND_UNIQUE: &str = r#"
local function same(a, b)
  if type(a) ~= 'table' or type(b) ~= 'table' then return a == b end
  for k, v in pairs(a) do if not same(v, b[k]) then return false end end
  for k, _ in pairs(b) do if a[k] == nil then return false end end
  return true
end
local id_key, ttl = ARGV[1], ARGV[2]
local text = redis.call('GET', KEYS[1])
local ids = {}
local body = ''
if text then
  if kind(text) ~= 'a list' then
    return redis.error_reply('KVWRONGTYPE ' .. kind(text))
  end
  for _, element in ipairs(cjson.decode(text)) do
    if type(element) == 'table' and element[id_key] ~= nil then
      table.insert(ids, element[id_key])
    end
  end
  -- The existing elements, byte for byte: everything between the brackets.
  body = string.match(text, '^%s*%[(.*)%]%s*$')
  if string.match(body, '^%s*$') then body = '' end
end
for i = 3, #ARGV do
  local id = cjson.decode(ARGV[i])[id_key]
  local seen = false
  for _, existing in ipairs(ids) do
    if same(existing, id) then seen = true break end
  end
  if not seen then
    table.insert(ids, id)
    if body == '' then body = ARGV[i] else body = body .. ',' .. ARGV[i] end
  end
end
local list = '[' .. body .. ']'
if ttl == '' then
  redis.call('SET', KEYS[1], list)
else
  redis.call('SET', KEYS[1], list, 'PX', ttl)
end
return list
"#;

/// `mset` with a TTL (without one it is a plain `MSET`). KEYS the keys; ARGV[1] the TTL in ms,
/// ARGV[2..] the values, one per key, in order (so the last of duplicate keys wins).
const MSET_PX: &str = r#"
for i, key in ipairs(KEYS) do
  redis.call('SET', key, ARGV[i + 1], 'PX', ARGV[1])
end
return #KEYS
"#;

/// `incr`. KEYS[1] the counter; ARGV[1] the increment, ARGV[2] the TTL in ms or `''`. A missing
/// key is created with the TTL; an existing one keeps its TTL (`INCRBY` changes the value in
/// place). Returns the new value as text: Lua numbers are doubles and would round an `i64`.
const INCR: &str = r#"
local text = redis.call('GET', KEYS[1])
if not text then
  if ARGV[2] == '' then
    redis.call('SET', KEYS[1], ARGV[1])
  else
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  end
  return ARGV[1]
end
if not string.match(text, '^-?%d+$') then
  return redis.error_reply('KVWRONGTYPE ' .. kind(text))
end
local ok, err = pcall(redis.call, 'INCRBY', KEYS[1], ARGV[1])
if not ok then
  local message = tostring(err.err or err)
  if string.find(message, 'overflow', 1, true) then
    return redis.error_reply('KVOVERFLOW ' .. text)
  end
  -- Digits that do not fit an i64: a number, but not a counter.
  return redis.error_reply('KVWRONGTYPE a number')
end
return redis.call('GET', KEYS[1])
"#;

/// `expire`. KEYS[1] the key; ARGV[1] the TTL in ms, or `''` for a TTL too large to represent
/// (the key then never expires, as in-process). Returns 1 if the key was live, else 0.
const EXPIRE: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] == '' then
  redis.call('PERSIST', KEYS[1])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return 1
"#;

/// The scripts, compiled into [`Script`]s (which know their SHA1) once per handle.
pub(crate) struct Scripts {
    pub(crate) list_append_unique: Script,
    pub(crate) mset_px: Script,
    pub(crate) incr: Script,
    pub(crate) expire: Script,
}

impl Scripts {
    pub(crate) fn new() -> Scripts {
        let script = |body: &str| Script::new(&format!("{PRELUDE}{body}"));
        Scripts {
            list_append_unique: script(LIST_APPEND_UNIQUE),
            mset_px: script(MSET_PX),
            incr: script(INCR),
            expire: script(EXPIRE),
        }
    }

    /// Every script, for loading them all at once.
    pub(crate) fn all(&self) -> [&Script; 4] {
        [
            &self.list_append_unique,
            &self.mset_px,
            &self.incr,
            &self.expire,
        ]
    }
}
