-- push_front.lua: puts items a blocking pop took back at the front of their list, in order, when
-- the caller stopped waiting before they reached it (docs/redis-feed.md).
-- KEYS[1] the list; KEYS[2] the change stream.
-- ARGV[1] stream MAXLEN or ''; ARGV[2..] the items' compact JSON texts, first item first.
-- Reply   integer 1 if they went back; 0 if the key now holds something that is not a list (the
--         items are then not written anywhere: the caller logs them).
-- Stream  one 'set' entry with the whole list, if the stream exists.
-- The id index beside the list (docs/redis.md) is left alone: its length and head no
-- longer match the list, so the next list_append_unique rebuilds it.
local key, stream = KEYS[1], KEYS[2]
local t = redis.call('TYPE', key).ok
if t == 'string' and redis.call('GET', key) == '[]' then
  redis.call('DEL', key)
  t = 'none'
end
if t ~= 'none' and t ~= 'list' then return 0 end
for i = #ARGV, 2, -1 do redis.call('LPUSH', key, ARGV[i]) end
if redis.call('TYPE', stream).ok == 'stream' then
  local args = { 'XADD', stream }
  if ARGV[1] ~= '' then
    args[#args + 1] = 'MAXLEN'
    args[#args + 1] = '~'
    args[#args + 1] = ARGV[1]
  end
  local text = '[' .. table.concat(redis.call('LRANGE', key, 0, -1), ',') .. ']'
  for _, a in ipairs({ '*', 'k', key, 'e', 'set', 'v', text }) do args[#args + 1] = a end
  redis.call(unpack(args))
end
return 1
