-- prelude.lua: shared by every script of the Redis layout (docs/redis.md, "The data layout").
-- It opens the Functions library src/redis/scripts.rs builds: this file, then each script's body
-- as a local function (KEYS, ARGV) that first calls `init`, each registered with
-- redis.register_function. Everything here is `local`: Redis 7 refuses libraries that create
-- globals.
--
-- Conventions shared by the scripts:
--   KEYS[1] the value's full key; KEYS[2] its id-index companion (a hash, see the layout);
--   KEYS[3] the change stream. ARGV[1] is the stream's MAXLEN (~) or '' for no trimming.
--   TTL arguments: whole milliseconds ('^[1-9]%d*$'), or '' for "never expires".
--   A script checks everything, and decodes everything it must decode, BEFORE its first write:
--   Redis does not roll back the writes of a script that fails half-way.
--
-- Error replies (the first word is the code):
--   KVWRONGTYPE <what>  the key holds valid JSON of the wrong type for the call, or (a string key)
--                       `text that is not JSON`; <what> is one of: a list, an object, a string,
--                       a boolean, null, a number, text that is not JSON
--   KVOVERFLOW <cur>    incr: the sum leaves i64; <cur> is the current value
--   KVNOTJSON <detail>  text the call must decode (to return it and remove it, or to split a
--                       legacy list) is not JSON as serde_json reads it; or a list element is not
--                       exactly one JSON value
--   KVTOODEEP <limit>   text nested deeper than <limit> levels (128 for a value, 127 for an item)
--   KVFOREIGN <detail>  a key holds a Redis type this layout never writes (a hash at a value key,
--                       a non-hash companion, ...); nothing is touched
--   KVBADARG <detail>   the arguments do not follow the call's shape (a bug in the caller)

local MAX_DEPTH = 128
local find, byte, sub
-- While a library loads, Redis 7.0 gives it no `string` library; each function calls `init`
-- first, which takes the aliases above once.
local function init()
  if not find then find, byte, sub = string.find, string.byte, string.sub end
end

-- The JSON type of a stored text, in the words of KvError::WrongType, from its first character
-- (or, for the literals, the whole text). Only meaningful for text that `jscan` accepted, or as a
-- description of text that starts like JSON.
local function kind(text)
  local t = string.match(text, '^%s*(.-)%s*$')
  local c = sub(t, 1, 1)
  if c == '[' then return 'a list'
  elseif c == '{' then return 'an object'
  elseif c == '"' then return 'a string'
  elseif t == 'true' or t == 'false' then return 'a boolean'
  elseif t == 'null' then return 'null'
  elseif string.match(t, '^-?%d[%d.eE+-]*$') then return 'a number'
  end
  return 'text that is not JSON'
end

-- A strict JSON checker: accepts exactly what serde_json (from_slice, into Value) accepts, or less.
-- RFC 8259 grammar; whitespace is space, tab, LF, CR; strings must be valid UTF-8 with no raw
-- control characters, escapes \" \\ \/ \b \f \n \r \t \uXXXX with surrogates paired; numbers
-- -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? and finite as an f64 (serde_json refuses 1e400);
-- nesting at most `maxdepth` brackets (counted as Rust's `text_depth` counts them).
--
-- Returns true (and, when `split` is set and the text is an array, the texts of its top-level
-- items, each without surrounding whitespace, byte for byte), or false and a message. Never
-- decodes a number or re-encodes anything.
local function jscan(s, maxdepth, split)
  local n = #s
  local i = 1
  local depth = 0
  local stack = {}
  local items = nil
  if split then items = {} end
  local start = 0
  local state = 'value'
  local function fail(what) return false, what .. ' at byte ' .. i end
  while true do
    i = find(s, '[^ \t\n\r]', i) or n + 1
    local c = byte(s, i)
    if state == 'value' or state == 'key' then
      if c == nil then return fail('unexpected end') end
      if depth == 1 and stack[1] == 91 then start = i end
      if state == 'key' and c ~= 34 then return fail('expected an object key') end
      if c == 123 or c == 91 then
        depth = depth + 1
        if depth > maxdepth then return false, 'TOODEEP' end
        stack[depth] = c
        i = i + 1
        i = find(s, '[^ \t\n\r]', i) or n + 1
        local close = (c == 123) and 125 or 93
        if byte(s, i) == close then
          i = i + 1
          depth = depth - 1
          state = 'after'
        elseif c == 123 then
          state = 'key'
        else
          state = 'value'
        end
      elseif c == 34 then
        i = i + 1
        while true do
          local j = find(s, '["\\%z\1-\31\128-\255]', i)
          if not j then return fail('unterminated string') end
          local b = byte(s, j)
          if b == 34 then
            i = j + 1
            break
          elseif b == 92 then
            local e = byte(s, j + 1)
            if e == 117 then
              local hex = sub(s, j + 2, j + 5)
              if not find(hex, '^%x%x%x%x$') then i = j return fail('bad \\u escape') end
              local cp = tonumber(hex, 16)
              if cp >= 0xD800 and cp <= 0xDBFF then
                local lo = sub(s, j + 8, j + 11)
                if sub(s, j + 6, j + 7) ~= '\\u' or not find(lo, '^%x%x%x%x$') then
                  i = j return fail('lone surrogate')
                end
                local l = tonumber(lo, 16)
                if l < 0xDC00 or l > 0xDFFF then i = j return fail('lone surrogate') end
                i = j + 12
              elseif cp >= 0xDC00 and cp <= 0xDFFF then
                i = j return fail('lone surrogate')
              else
                i = j + 6
              end
            elseif e == 34 or e == 92 or e == 47 or e == 98 or e == 102 or e == 110
                or e == 114 or e == 116 then
              i = j + 2
            else
              i = j return fail('bad escape')
            end
          elseif b < 128 then
            i = j return fail('control character in a string')
          else
            local b2, b3, b4 = byte(s, j + 1, j + 3)
            local function cont(x) return x and x >= 0x80 and x <= 0xBF end
            local len = 0
            if b >= 0xC2 and b <= 0xDF then
              if cont(b2) then len = 2 end
            elseif b == 0xE0 then
              if b2 and b2 >= 0xA0 and b2 <= 0xBF and cont(b3) then len = 3 end
            elseif (b >= 0xE1 and b <= 0xEC) or b == 0xEE or b == 0xEF then
              if cont(b2) and cont(b3) then len = 3 end
            elseif b == 0xED then
              if b2 and b2 >= 0x80 and b2 <= 0x9F and cont(b3) then len = 3 end
            elseif b == 0xF0 then
              if b2 and b2 >= 0x90 and b2 <= 0xBF and cont(b3) and cont(b4) then len = 4 end
            elseif b >= 0xF1 and b <= 0xF3 then
              if cont(b2) and cont(b3) and cont(b4) then len = 4 end
            elseif b == 0xF4 then
              if b2 and b2 >= 0x80 and b2 <= 0x8F and cont(b3) and cont(b4) then len = 4 end
            end
            if len == 0 then i = j return fail('invalid UTF-8') end
            i = j + len
          end
        end
        if state == 'key' then
          i = find(s, '[^ \t\n\r]', i) or n + 1
          if byte(s, i) ~= 58 then return fail('expected a colon') end
          i = i + 1
          state = 'value'
        else
          state = 'after'
        end
      elseif c == 45 or (c >= 48 and c <= 57) then
        local j = i
        if c == 45 then j = j + 1 end
        local d = byte(s, j)
        if d == 48 then
          j = j + 1
        elseif d and d >= 49 and d <= 57 then
          j = find(s, '[^0-9]', j) or n + 1
        else
          return fail('bad number')
        end
        if byte(s, j) == 46 then
          local k = find(s, '[^0-9]', j + 1) or n + 1
          if k == j + 1 then return fail('bad number') end
          j = k
        end
        d = byte(s, j)
        if d == 101 or d == 69 then
          j = j + 1
          d = byte(s, j)
          if d == 43 or d == 45 then j = j + 1 end
          local k = find(s, '[^0-9]', j) or n + 1
          if k == j then return fail('bad number') end
          j = k
        end
        local v = tonumber(sub(s, i, j - 1))
        if not v or v == math.huge or v == -math.huge then return fail('number out of range') end
        i = j
        state = 'after'
      elseif c == 116 and sub(s, i, i + 3) == 'true' then
        i = i + 4
        state = 'after'
      elseif c == 102 and sub(s, i, i + 4) == 'false' then
        i = i + 5
        state = 'after'
      elseif c == 110 and sub(s, i, i + 3) == 'null' then
        i = i + 4
        state = 'after'
      else
        return fail('unexpected character')
      end
      -- A value just ended (state 'after') directly inside a top-level array: one item.
      if split and state == 'after' and depth == 1 and stack[1] == 91 then
        items[#items + 1] = sub(s, start, i - 1)
      end
    else -- state == 'after': a value ended; what may follow it
      if depth == 0 then
        if c ~= nil then return fail('trailing characters') end
        if split and stack[1] == 91 then return true, items end
        return true, nil
      end
      local top = stack[depth]
      if c == 44 then
        i = i + 1
        if top == 123 then state = 'key' else state = 'value' end
      elseif (top == 91 and c == 93) or (top == 123 and c == 125) then
        i = i + 1
        depth = depth - 1
        if split and depth == 1 and stack[1] == 91 then
          items[#items + 1] = sub(s, start, i - 1)
        end
      else
        return fail('expected a comma or a closing bracket')
      end
    end
  end
end

-- jscan as an error reply: nil if `text` is JSON within `maxdepth`, else the reply, with `what`
-- (e.g. 'item 3') in front of the reason.
local function jcheck(text, maxdepth, what, code)
  local ok, err = jscan(text, maxdepth, false)
  if ok then return nil end
  if err == 'TOODEEP' then return redis.error_reply('KVTOODEEP ' .. maxdepth) end
  return redis.error_reply((code or 'KVNOTJSON') .. ' ' .. what .. ': ' .. err)
end

local function foreign(t, what)
  return redis.error_reply('KVFOREIGN ' .. (what or 'the key') .. ' holds a Redis ' .. t)
end

local function bad_arg(what)
  return redis.error_reply('KVBADARG ' .. what)
end

local function check_ttl(ttl)
  return ttl == '' or find(ttl, '^[1-9]%d*$') ~= nil
end

-- TYPE of a key, as a string ('none', 'string', 'list', ...).
local function rtype(key)
  local t = redis.call('TYPE', key)
  if type(t) == 'table' then return t.ok end
  return t
end

-- All the elements of a native list (LRANGE in chunks, so a long list does not build one huge
-- reply at once inside the server).
local function lrange_all(key)
  return redis.call('LRANGE', key, 0, -1)
end

-- A JSON array text from item texts: the layout's one spelling of a list value.
local function list_text(items)
  return '[' .. table.concat(items, ',') .. ']'
end

-- RPUSH `items[from..to]` in chunks (unpack has a stack limit).
local function rpush(key, items, from, to)
  from = from or 1
  to = to or #items
  local a = from
  while a <= to do
    local b = math.min(a + 999, to)
    redis.call('RPUSH', key, unpack(items, a, b))
    a = b + 1
  end
end

local function set_ttl(key, ttl)
  if ttl == '' then redis.call('PERSIST', key) else redis.call('PEXPIRE', key, ttl) end
end

-- Each element of a native list checked as exactly one JSON value within the item depth limit;
-- nil if all are, else the error reply.
local function check_items(items, first_index)
  for i, item in ipairs(items) do
    local err = jcheck(item, MAX_DEPTH - 1, 'list item ' .. (i - 1 + (first_index or 0)))
    if err then return err end
  end
  return nil
end

-- For reads that remove nothing (get, mget): each element checked to be exactly one value by
-- cjson, in C (jscan runs at a few MB/s in Lua). cjson accepts more than serde_json (NaN, hex,
-- `1.`, raw control characters, invalid UTF-8), but only ever as one whole value, so the joined
-- text is either read as exactly these items or refused by the caller's serde_json: never
-- misread. Text this lenient check passes but serde_json refuses gives the caller's own parse
-- error (KvError::Backend), as a string value does.
local function check_items_lenient(items, prefix)
  for i, item in ipairs(items) do
    if not pcall(cjson.decode, item) then
      return redis.error_reply('KVNOTJSON ' .. (prefix or '') .. 'list item ' .. (i - 1)
        .. ': not one JSON value')
    end
  end
  return nil
end

-- The change stream: only written when it already exists as a stream (a watcher made it).
-- `value` is the new value's text, or a function giving it (so a list is only concatenated when
-- someone watches), or nil for an event without a value.
local function stream_on(stream)
  return stream ~= nil and stream ~= '' and rtype(stream) == 'stream'
end

local function emit(stream, maxlen, key, event, value)
  if not stream_on(stream) then return end
  if type(value) == 'function' then value = value() end
  local args = { 'XADD', stream }
  if maxlen ~= nil and maxlen ~= '' then
    args[#args + 1] = 'MAXLEN'
    args[#args + 1] = '~'
    args[#args + 1] = maxlen
  end
  args[#args + 1] = '*'
  args[#args + 1] = 'k'
  args[#args + 1] = key
  args[#args + 1] = 'e'
  args[#args + 1] = event
  if value ~= nil then
    args[#args + 1] = 'v'
    args[#args + 1] = value
  end
  redis.call(unpack(args))
end

local function check_maxlen(maxlen)
  return maxlen == '' or find(maxlen, '^%d+$') ~= nil
end

-- What a key holds, for the list calls: 'none'; 'native' (a Redis list); 'string' with the
-- top-level item texts of the array it holds (the empty list `[]`, or data written by the
-- release before native lists). Anything else is refused: the second result is the error reply.
local function list_state(key)
  local t = rtype(key)
  if t == 'none' then return 'none' end
  if t == 'list' then return 'native' end
  if t ~= 'string' then return nil, foreign(t) end
  local text = redis.call('GET', key)
  local ok, items = jscan(text, MAX_DEPTH, true)
  if not ok then
    if items == 'TOODEEP' then return nil, redis.error_reply('KVTOODEEP ' .. MAX_DEPTH) end
    return nil, redis.error_reply('KVWRONGTYPE text that is not JSON')
  end
  if items == nil then return nil, redis.error_reply('KVWRONGTYPE ' .. kind(text)) end
  return 'string', items
end

-- The id of an item for the companion: a field name made from the JSON scalar at `id_key`, or
-- nil if the item is not an object holding a scalar there. Decoded with cjson ONLY to read that
-- field: numbers become doubles (1 and 1.0 are one id; integers past 2^53 may collide), -0 is 0.
--   's' .. string bytes | 'n' .. %.17g of the double | 'b1' / 'b0' | 'z' (null)
local function id_code(text, id_key)
  local ok, v = pcall(cjson.decode, text)
  if not ok or type(v) ~= 'table' then return nil end
  local id = v[id_key]
  local t = type(id)
  if t == 'string' then return 's' .. id
  elseif t == 'number' then
    if id == 0 then id = 0 end
    return 'n' .. string.format('%.17g', id)
  elseif t == 'boolean' then return id and 'b1' or 'b0'
  elseif id == cjson.null then return 'z'
  end
  return nil
end

-- The companion hash: '#id' the id field it indexes; '#len', '#head', '#tail' the list's length,
-- first and last element when it was last brought up to date (a cheap check that no other client
-- changed the list since); every other field an id code with the count of items holding it.
-- nil if the companion may be used as it is (or is missing), else the error reply (a key of
-- another type at the companion's name is never touched).
local function companion_type_ok(comp)
  local t = rtype(comp)
  if t == 'none' or t == 'hash' then return nil end
  return foreign(t, 'the id index ' .. comp)
end

-- Whether the companion describes the native list at `key` now (for `id_key`, if given).
local function companion_valid(key, comp, id_key)
  local meta = redis.call('HMGET', comp, '#id', '#len', '#head', '#tail')
  if not meta[1] then return false end
  if id_key ~= nil and meta[1] ~= id_key then return false end
  local len = redis.call('LLEN', key)
  if len == 0 or tostring(len) ~= meta[2] then return false end
  return redis.call('LINDEX', key, 0) == meta[3] and redis.call('LINDEX', key, -1) == meta[4]
end

local function companion_touch(key, comp)
  local len = redis.call('LLEN', key)
  if len == 0 then
    redis.call('DEL', comp)
    return
  end
  redis.call('HSET', comp, '#len', len, '#head', redis.call('LINDEX', key, 0),
    '#tail', redis.call('LINDEX', key, -1))
end

-- Adds (delta 1) or removes (delta -1) the ids of `items` in the companion.
local function companion_count(comp, id_key, items, delta)
  for _, item in ipairs(items) do
    local code = id_code(item, id_key)
    if code then
      local left = redis.call('HINCRBY', comp, code, delta)
      if left <= 0 then redis.call('HDEL', comp, code) end
    end
  end
end
