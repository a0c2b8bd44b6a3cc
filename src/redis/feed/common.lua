-- common.lua: the change feed's helpers (for open.lua, read.lua), in the crate's Functions library
-- after prelude.lua (src/redis/scripts.rs). See docs/redis-feed.md.
--
-- The change stream of a store is `ekv:changes:` .. the builder's prefix. Writing scripts add to
-- it only if it exists, so it exists only while someone watches: a watcher (or a waiting
-- `wait_for` or blocking pop) creates it, and its feed gives it a TTL it keeps refreshing.
--
-- Its generation: a stream is created empty with one consumer group named
-- `ekv:gen:<seconds>-<microseconds>` (the server's TIME), never read through. A reader that finds
-- another generation knows the stream it was reading vanished (a restart, a flush, its TTL ran
-- out) and was made again: whatever was written in between was never recorded.

local function stream_type(stream)
  return redis.call('TYPE', stream).ok
end

-- Makes sure the stream exists and refreshes its TTL. Returns nil, or an error reply if the key
-- holds something else.
local function open(stream, ttl)
  local t = stream_type(stream)
  if t == 'none' then
    local now = redis.call('TIME')
    redis.call('XGROUP', 'CREATE', stream, 'ekv:gen:' .. now[1] .. '-' .. now[2], '$', 'MKSTREAM')
  elseif t ~= 'stream' then
    return redis.error_reply('KVFOREIGN the change stream ' .. stream .. ' holds a Redis ' .. t)
  end
  redis.call('PEXPIRE', stream, ttl)
  return nil
end

-- The stream's XINFO STREAM fields, by name.
local function info(stream)
  local flat = redis.call('XINFO', 'STREAM', stream)
  local fields = {}
  for i = 1, #flat, 2 do fields[flat[i]] = flat[i + 1] end
  return fields
end

-- The stream's generation ('' if no group names one: a stream made by someone else).
local function generation(stream)
  for _, group in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    for i = 1, #group, 2 do
      if group[i] == 'name' and string.sub(group[i + 1], 1, 8) == 'ekv:gen:' then
        return string.sub(group[i + 1], 9)
      end
    end
  end
  return ''
end
