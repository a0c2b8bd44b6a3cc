-- set_if_absent.lua: stores a value with a TTL only if the key is missing (in-process
-- `set_if_absent`).
-- KEYS[1] the key; KEYS[2] its companion; KEYS[3] the change stream.
-- ARGV[1] stream MAXLEN or ''; ARGV[2] TTL ms or '' (never expires);
-- ARGV[3] 'v' and ARGV[4] the value's text, or 'l' and ARGV[4..] its items (as set.lua).
-- Reply   integer 1 if it stored, else 0.
-- Errors  KVFOREIGN ... | KVBADARG ...
-- Stream  one 'set' entry when it stored; nothing when it refused.
-- (For a value that is not a non-empty array, `SET key v NX [PX ms]` is exact too, but writes
-- no change-stream entry and leaves a stale companion: use the script.)
local key, comp, stream = KEYS[1], KEYS[2], KEYS[3]
local maxlen, ttl, mode = ARGV[1], ARGV[2], ARGV[3]
if not check_maxlen(maxlen) or not check_ttl(ttl) then return bad_arg('set_if_absent: maxlen or ttl') end
if mode == 'v' then
  if #ARGV ~= 4 then return bad_arg('set_if_absent: v takes one value') end
  if sub(ARGV[4], 1, 1) == '[' and ARGV[4] ~= '[]' then
    return bad_arg('set_if_absent: a non-empty array goes as l and its items')
  end
elseif mode == 'l' then
  if #ARGV < 4 then return bad_arg('set_if_absent: l takes at least one item') end
else
  return bad_arg('set_if_absent: mode is v or l')
end
local err = companion_type_ok(comp)
if err then return err end
if redis.call('EXISTS', key) == 1 then return 0 end
redis.call('DEL', comp)
if mode == 'v' then
  if ttl == '' then redis.call('SET', key, ARGV[4]) else redis.call('SET', key, ARGV[4], 'PX', ttl) end
  emit(stream, maxlen, key, 'set', ARGV[4])
else
  rpush(key, ARGV, 4, #ARGV)
  if ttl ~= '' then redis.call('PEXPIRE', key, ttl) end
  emit(stream, maxlen, key, 'set', function() return list_text({ unpack(ARGV, 4, #ARGV) }) end)
end
return 1
