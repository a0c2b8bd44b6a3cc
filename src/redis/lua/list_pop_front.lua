-- list_pop_front.lua: takes up to ARGV[2] items from the front of the list, oldest first, and
-- removes the key once it is empty; the list keeps its TTL (in-process `list_pop_front`).
-- KEYS[1] the list; KEYS[2] its companion; KEYS[3] the change stream.
-- ARGV[1] stream MAXLEN or ''; ARGV[2] count (an integer >= 0).
-- Reply   array of the taken items' texts, each exactly as stored (empty if none).
-- Errors  KVWRONGTYPE <what> (not a list; kept) | KVTOODEEP 127/128 | KVNOTJSON list item <i>:
--         ... (a taken item is not JSON: nothing is taken) | KVFOREIGN ... | KVBADARG ...
-- Stream  one 'del' entry if the list is now gone, else one 'set' with the rest; nothing if
--         nothing was taken.
-- Cost    O(items taken). A valid companion is kept up to date; a stale one is dropped.
local key, comp, stream = KEYS[1], KEYS[2], KEYS[3]
local maxlen = ARGV[1]
if not check_maxlen(maxlen) or not find(ARGV[2] or '', '^%d+$') then
  return bad_arg('list_pop_front: maxlen or count')
end
local count = tonumber(ARGV[2])
local err = companion_type_ok(comp)
if err then return err end
local state, items = list_state(key)
if not state then return items end
if state == 'none' or count == 0 then return {} end

if state == 'string' then
  if #items == 0 then return {} end
  local taken, rest = {}, {}
  for i, item in ipairs(items) do
    if i <= count then taken[#taken + 1] = item else rest[#rest + 1] = item end
  end
  local pttl = redis.call('PTTL', key)
  redis.call('DEL', key, comp)
  if #rest == 0 then
    emit(stream, maxlen, key, 'del')
  else
    rpush(key, rest)
    if pttl >= 0 then redis.call('PEXPIRE', key, math.max(pttl, 1)) end
    emit(stream, maxlen, key, 'set', function() return list_text(rest) end)
  end
  return taken
end

local taken = redis.call('LRANGE', key, 0, count - 1)
err = check_items(taken)
if err then return err end
local keep = redis.call('EXISTS', comp) == 1 and companion_valid(key, comp, nil)
redis.call('LTRIM', key, #taken, -1)
if redis.call('EXISTS', key) == 0 then
  redis.call('DEL', comp)
  emit(stream, maxlen, key, 'del')
  return taken
end
if keep then
  companion_count(comp, redis.call('HGET', comp, '#id'), taken, -1)
  companion_touch(key, comp)
else
  redis.call('DEL', comp)
end
emit(stream, maxlen, key, 'set', function() return list_text(lrange_all(key)) end)
return taken
