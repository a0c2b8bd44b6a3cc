-- list_push.lua: appends items, drops the oldest so that at most ARGV[3] remain, and sets the
-- list's TTL (in-process `list_push`). Pushing nothing onto a missing key creates nothing.
-- KEYS[1] the list; KEYS[2] its companion; KEYS[3] the change stream.
-- ARGV[1] stream MAXLEN or ''; ARGV[2] TTL ms or '' (never expires); ARGV[3] max_len (an integer
--         >= 0; any size, compared as a double); ARGV[4..] the items, one compact JSON text each.
-- Reply   integer: the list's new length.
-- Errors  KVWRONGTYPE <what> (not a list; kept) | KVTOODEEP 128 | KVFOREIGN ... | KVBADARG ...
-- Stream  one 'set' entry with the whole new list, unless nothing was created.
-- Cost    O(items given + items dropped). Existing items are not read; a valid companion is kept
--         up to date (ids of the pushed items counted, of the dropped ones uncounted); a stale
--         one is dropped. A max_len of 0 on an existing list leaves it as the empty list '[]'.
local key, comp, stream = KEYS[1], KEYS[2], KEYS[3]
local maxlen, ttl = ARGV[1], ARGV[2]
local max_len = tonumber(ARGV[3])
if not check_maxlen(maxlen) or not check_ttl(ttl) or not find(ARGV[3] or '', '^%d+$') then
  return bad_arg('list_push: maxlen, ttl or max_len')
end
local err = companion_type_ok(comp)
if err then return err end
local state, old = list_state(key)
if not state then return old end
local given = #ARGV - 3

if state == 'none' or state == 'string' then
  -- Build the whole list here: a missing key, the empty list, or a legacy string list.
  local all = {}
  if state == 'string' then for _, item in ipairs(old) do all[#all + 1] = item end end
  for a = 4, #ARGV do all[#all + 1] = ARGV[a] end
  local from = 1
  if #all > max_len then from = #all - max_len + 1 end
  local len = #all - from + 1
  if state == 'none' and len == 0 then return 0 end
  redis.call('DEL', key, comp)
  if len == 0 then
    if ttl == '' then redis.call('SET', key, '[]') else redis.call('SET', key, '[]', 'PX', ttl) end
    emit(stream, maxlen, key, 'set', '[]')
    return 0
  end
  rpush(key, all, from, #all)
  set_ttl(key, ttl)
  emit(stream, maxlen, key, 'set', function() return list_text(lrange_all(key)) end)
  return len
end

-- A native list.
local keep = redis.call('EXISTS', comp) == 1 and companion_valid(key, comp, nil)
local id_key = nil
if keep then id_key = redis.call('HGET', comp, '#id') else redis.call('DEL', comp) end
if given > 0 then rpush(key, ARGV, 4, #ARGV) end
local len = redis.call('LLEN', key)
if len > max_len then
  local drop = len - max_len
  if max_len == 0 then
    redis.call('DEL', key, comp)
    keep = false
    if ttl == '' then redis.call('SET', key, '[]') else redis.call('SET', key, '[]', 'PX', ttl) end
    emit(stream, maxlen, key, 'set', '[]')
    return 0
  end
  if keep then
    if given > 0 then companion_count(comp, id_key, { unpack(ARGV, 4, #ARGV) }, 1) end
    companion_count(comp, id_key, redis.call('LRANGE', key, 0, drop - 1), -1)
  end
  redis.call('LTRIM', key, drop, -1)
  len = max_len
elseif keep and given > 0 then
  companion_count(comp, id_key, { unpack(ARGV, 4, #ARGV) }, 1)
end
if keep then
  companion_touch(key, comp)
  set_ttl(comp, ttl)
end
set_ttl(key, ttl)
emit(stream, maxlen, key, 'set', function() return list_text(lrange_all(key)) end)
return len
