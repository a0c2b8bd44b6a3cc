-- incr.lua: adds an i64 to the integer at a key; a missing key counts as 0 and is created with
-- the TTL; an existing key keeps its TTL (in-process `incr`). The arithmetic is INCRBY's, on
-- exact 64-bit integers: the value never passes through a Lua double.
-- KEYS[1] the key; KEYS[2] its companion (unused: a list is refused); KEYS[3] the change stream.
-- ARGV[1] stream MAXLEN or ''; ARGV[2] the increment (decimal i64); ARGV[3] TTL ms or ''.
-- Reply   bulk text: the new value's decimal digits (parse it as an i64; a Lua number would round).
-- Errors  KVOVERFLOW <current> (the sum leaves i64; nothing written)
--         KVWRONGTYPE <what>: a list, a number (not an integer, or digits outside i64), an
--         object, ..., text that is not JSON | KVTOODEEP 128 | KVFOREIGN ... | KVBADARG ...
-- Stream  one 'set' entry with the new value.
local key, stream = KEYS[1], KEYS[3]
local maxlen, by, ttl = ARGV[1], ARGV[2], ARGV[3]
if not check_maxlen(maxlen) or not check_ttl(ttl) or not find(by or '', '^-?%d+$') then
  return bad_arg('incr: maxlen, increment or ttl')
end
local t = rtype(key)
if t == 'none' then
  if ttl == '' then redis.call('SET', key, by) else redis.call('SET', key, by, 'PX', ttl) end
  emit(stream, maxlen, key, 'set', by)
  return by
end
if t == 'list' then return redis.error_reply('KVWRONGTYPE a list') end
if t ~= 'string' then return foreign(t) end
local text = redis.call('GET', key)
if not find(text, '^-?%d+$') then
  local ok, why = jscan(text, MAX_DEPTH, false)
  if not ok then
    if why == 'TOODEEP' then return redis.error_reply('KVTOODEEP ' .. MAX_DEPTH) end
    return redis.error_reply('KVWRONGTYPE text that is not JSON')
  end
  return redis.error_reply('KVWRONGTYPE ' .. kind(text))
end
-- Digits: JSON if no leading zero (serde_json refuses 007 and -0 is a float-like zero it reads
-- as the integer 0; INCRBY refuses both ways as it likes, so check here).
if find(text, '^-?0%d') then return redis.error_reply('KVWRONGTYPE text that is not JSON') end
local ok, res = pcall(redis.call, 'INCRBY', key, by)
if not ok then
  local message = tostring(res.err or res)
  if find(message, 'overflow', 1, true) then
    return redis.error_reply('KVOVERFLOW ' .. text)
  end
  -- Digits that do not fit an i64: a number, but not a counter.
  return redis.error_reply('KVWRONGTYPE a number')
end
local now = redis.call('GET', key)
emit(stream, maxlen, key, 'set', now)
return now
