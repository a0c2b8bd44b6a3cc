-- mset.lua: stores several values, in order (the last of duplicate keys wins), all with one TTL.
-- KEYS    n keys, then their n companions, then their n change streams (KEYS[2n+i] is the stream
--         of KEYS[i]; repeat the same name for keys sharing a stream): 3n keys.
-- ARGV[1] stream MAXLEN or ''; ARGV[2] TTL ms or '' (never expires); then, for each key in
--         order: 'v' and the value's text, or 'l', the item count c >= 1, and c item texts
--         (as in set.lua).
-- Reply   status OK.
-- Errors  KVBADARG ... (shape), KVFOREIGN the id index <name> holds a Redis <type>.
-- Stream  one 'set' entry per distinct key, with the value it was left holding, in the order the
--         keys first appear (as the in-process change log reports a repeated key).
if #KEYS % 3 ~= 0 or #KEYS == 0 then return bad_arg('mset: KEYS is keys, companions, streams') end
local n = #KEYS / 3
local maxlen, ttl = ARGV[1], ARGV[2]
if not check_maxlen(maxlen) or not check_ttl(ttl) then return bad_arg('mset: maxlen or ttl') end
-- Parse and check everything first.
local plan = {}
local a = 3
for i = 1, n do
  local mode = ARGV[a]
  if mode == 'v' then
    local v = ARGV[a + 1]
    if v == nil then return bad_arg('mset: missing value ' .. i) end
    if sub(v, 1, 1) == '[' and v ~= '[]' then return bad_arg('mset: a non-empty array goes as l') end
    plan[i] = { 'v', a + 1, a + 1 }
    a = a + 2
  elseif mode == 'l' then
    local c = tonumber(ARGV[a + 1])
    if not c or c < 1 or c % 1 ~= 0 or a + 1 + c > #ARGV then return bad_arg('mset: item count ' .. i) end
    plan[i] = { 'l', a + 2, a + 1 + c }
    a = a + 2 + c
  else
    return bad_arg('mset: mode of value ' .. i)
  end
  local err = companion_type_ok(KEYS[n + i])
  if err then return err end
end
if a ~= #ARGV + 1 then return bad_arg('mset: extra arguments') end
local order, last = {}, {}
for i = 1, n do
  local key, comp = KEYS[i], KEYS[n + i]
  local p = plan[i]
  redis.call('DEL', key, comp)
  if p[1] == 'v' then
    if ttl == '' then redis.call('SET', key, ARGV[p[2]]) else redis.call('SET', key, ARGV[p[2]], 'PX', ttl) end
  else
    rpush(key, ARGV, p[2], p[3])
    if ttl ~= '' then redis.call('PEXPIRE', key, ttl) end
  end
  if last[key] == nil then order[#order + 1] = i end
  last[key] = i
end
for _, first in ipairs(order) do
  local key = KEYS[first]
  local i = last[key]
  local p = plan[i]
  emit(KEYS[2 * n + first], maxlen, key, 'set', function()
    if p[1] == 'v' then return ARGV[p[2]] end
    return list_text({ unpack(ARGV, p[2], p[3]) })
  end)
end
return redis.status_reply('OK')
