-- set.lua: stores a value, replacing whatever the key held and its TTL (in-process `set`).
-- KEYS[1] the key; KEYS[2] its companion; KEYS[3] the change stream.
-- ARGV[1] stream MAXLEN or ''; ARGV[2] TTL ms, '' (never expires) or 'keep' (an existing key
--         keeps its TTL, to the millisecond; a created one never expires: `update`);
-- ARGV[3] 'v' then ARGV[4] the value's compact JSON text (any value but a non-empty array; the
--         empty array is sent as 'v' '[]'), or 'l' then ARGV[4..] the items of a non-empty array,
--         one compact JSON text each.
-- Reply   status OK.
-- Errors  KVBADARG ... (shape), KVFOREIGN the id index <name> holds a Redis <type>.
-- Stream  one 'set' entry with the value's text.
local key, comp, stream = KEYS[1], KEYS[2], KEYS[3]
local maxlen, ttl, mode = ARGV[1], ARGV[2], ARGV[3]
if not check_maxlen(maxlen) or not (ttl == 'keep' or check_ttl(ttl)) then
  return bad_arg('set: maxlen or ttl')
end
if mode == 'v' then
  if #ARGV ~= 4 then return bad_arg('set: v takes one value') end
  if sub(ARGV[4], 1, 1) == '[' and ARGV[4] ~= '[]' then
    return bad_arg('set: a non-empty array goes as l and its items')
  end
elseif mode == 'l' then
  if #ARGV < 4 then return bad_arg('set: l takes at least one item') end
else
  return bad_arg('set: mode is v or l')
end
-- Each redis.call costs the server about a microsecond or two: one EXISTS says whether the
-- companion or the stream is there at all (usually neither), and only then are their TYPEs read.
-- (No stream is named on a Redis Cluster handle without a hash tag: KEYS[3] is nil.)
local others
if stream then others = redis.call('EXISTS', comp, stream) > 0 else others = redis.call('EXISTS', comp) > 0 end
if others then
  local err = companion_type_ok(comp)
  if err then return err end
end
if ttl == 'keep' then
  local left = redis.call('PTTL', key)
  -- PTTL 0: under a millisecond left, still live; keep it expiring.
  if left >= 0 then ttl = tostring(math.max(left, 1)) else ttl = '' end
end
if mode == 'v' then
  -- SET replaces a value of any type, and its TTL.
  if others then redis.call('DEL', comp) end
  if ttl == '' then redis.call('SET', key, ARGV[4]) else redis.call('SET', key, ARGV[4], 'PX', ttl) end
  if others then emit(stream, maxlen, key, 'set', ARGV[4]) end
else
  redis.call('DEL', key, comp)
  rpush(key, ARGV, 4, #ARGV)
  if ttl ~= '' then redis.call('PEXPIRE', key, ttl) end
  if others then
    emit(stream, maxlen, key, 'set', function()
      return list_text({ unpack(ARGV, 4, #ARGV) })
    end)
  end
end
return redis.status_reply('OK')
