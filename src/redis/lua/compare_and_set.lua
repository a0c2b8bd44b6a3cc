-- compare_and_set.lua: stores a new value only if the key's value is, as text, the expected one
-- (or only if the key is missing) (in-process `compare_and_set`).
-- KEYS[1] the key; KEYS[2] its companion; KEYS[3] the change stream.
-- ARGV[1] stream MAXLEN or '';
-- ARGV[2] TTL: ms, '' (never expires), or 'keep' (the call gave no TTL: an existing key keeps
--         its TTL, a created one never expires);
-- ARGV[3] 'missing' (only if the key is missing; ARGV[4] is then '' and ignored) or 'text'
--         (only if the stored text is exactly ARGV[4]: serde_json compact text, object keys
--         sorted; a list key's text is its elements joined as get.lua spells it);
-- ARGV[5] 'v' and ARGV[6] the new value's text, or 'l' and ARGV[6..] its items (as set.lua).
-- Reply   integer 1 if it stored; else, under 'text', the stored text when it differs from
--         ARGV[4] (the caller compares it as JSON, and sends the call again with it as ARGV[4]
--         if the values are equal); else 0.
-- Errors  KVFOREIGN ... | KVBADARG ...  Text that is not JSON never equals the expected value, so
--         it is kept, never an error.
-- Stream  one 'set' entry with the new value when it stored.
local key, comp, stream = KEYS[1], KEYS[2], KEYS[3]
local maxlen, ttl, cond, expected, mode = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if not check_maxlen(maxlen) or not (ttl == 'keep' or check_ttl(ttl)) then
  return bad_arg('compare_and_set: maxlen or ttl')
end
if (cond ~= 'missing' and cond ~= 'text') or expected == nil then
  return bad_arg('compare_and_set: condition')
end
if mode == 'v' then
  if #ARGV ~= 6 then return bad_arg('compare_and_set: v takes one value') end
  if sub(ARGV[6], 1, 1) == '[' and ARGV[6] ~= '[]' then
    return bad_arg('compare_and_set: a non-empty array goes as l and its items')
  end
elseif mode == 'l' then
  if #ARGV < 6 then return bad_arg('compare_and_set: l takes at least one item') end
else
  return bad_arg('compare_and_set: mode is v or l')
end
local err = companion_type_ok(comp)
if err then return err end
local t = rtype(key)
if cond == 'missing' then
  if t ~= 'none' then return 0 end
  if ttl == 'keep' then ttl = '' end
else
  if t == 'none' then return 0 end
  if t == 'string' then
    local current = redis.call('GET', key)
    if current ~= expected then return current end
  elseif t == 'list' then
    if sub(expected, 1, 1) ~= '[' then return 0 end
    local items = lrange_all(key)
    local current = list_text(items)
    if current ~= expected then return current end
    -- Equal text: still make sure each element is one JSON value, so that elements like '1,2'
    -- and '3' (written by another client) are not taken for the list [1,2,3].
    for _, item in ipairs(items) do
      local ok = jscan(item, MAX_DEPTH - 1, false)
      if not ok then return 0 end
    end
  else
    return foreign(t)
  end
  if ttl == 'keep' then
    local left = redis.call('PTTL', key)
    -- PTTL 0: under a millisecond left, still live; keep it expiring.
    if left >= 0 then ttl = tostring(math.max(left, 1)) else ttl = '' end
  end
end
redis.call('DEL', key, comp)
if mode == 'v' then
  if ttl == '' then redis.call('SET', key, ARGV[6]) else redis.call('SET', key, ARGV[6], 'PX', ttl) end
  emit(stream, maxlen, key, 'set', ARGV[6])
else
  rpush(key, ARGV, 6, #ARGV)
  if ttl ~= '' then redis.call('PEXPIRE', key, ttl) end
  emit(stream, maxlen, key, 'set', function() return list_text({ unpack(ARGV, 6, #ARGV) }) end)
end
return 1
