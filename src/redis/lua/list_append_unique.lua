-- list_append_unique.lua: appends each item whose id (the field ARGV[3]) is in neither the list
-- nor an earlier item of this call, then sets the list's TTL (in-process `list_append_unique`).
-- KEYS[1] the list; KEYS[2] its companion (the id index); KEYS[3] the change stream.
-- ARGV[1] stream MAXLEN or ''; ARGV[2] TTL ms or '' (never expires); ARGV[3] the id field;
-- ARGV[4..] the items, compact JSON objects holding the id field (checked by the caller; an item
--         without a scalar id is dropped). May be none.
-- Reply   integer: the list's length after the append; 0 means the key holds the empty list, the
--         string '[]'. The caller reads the list itself with `LRANGE key 0 -1` right after this
--         script inside the same MULTI/EXEC (reading it here would convert every element into a
--         Lua string and back: O(list) in Lua, about 1 us per element).
-- Errors  KVWRONGTYPE <what> (not a list; kept) | KVTOODEEP 128 | KVNOTJSON list item <i>: ...
--         (found while rebuilding the index; nothing written) | KVFOREIGN ... | KVBADARG ...
-- Stream  one 'set' entry with the whole list, always (in-process reports the call as a set even
--         when no item was new: the TTL was set).
-- Cost    with a valid companion: O(items given); the companion is (re)built,
--         O(list) once, when missing, for another id field, or stale (another client changed the
--         list: its length, first or last element differ from what the companion noted).
local key, comp, stream = KEYS[1], KEYS[2], KEYS[3]
local maxlen, ttl, id_key = ARGV[1], ARGV[2], ARGV[3]
if not check_maxlen(maxlen) or not check_ttl(ttl) or id_key == nil then
  return bad_arg('list_append_unique: maxlen, ttl or id field')
end
local err = companion_type_ok(comp)
if err then return err end
local state, items = list_state(key)
if not state then return items end

-- The counts of the ids already there, when the companion must be (re)built; nil to use it.
local rebuild = nil
if state == 'none' then
  rebuild = {}
elseif state == 'string' then
  -- The empty list, or a list written by the release before native lists: it becomes a native
  -- list now (its item texts kept byte for byte). The split already checked the whole text.
  rebuild = {}
  for _, item in ipairs(items) do
    local code = id_code(item, id_key)
    if code then rebuild[code] = (rebuild[code] or 0) + 1 end
  end
elseif not companion_valid(key, comp, id_key) then
  local existing = lrange_all(key)
  err = check_items(existing)
  if err then return err end
  rebuild = {}
  for _, item in ipairs(existing) do
    local code = id_code(item, id_key)
    if code then rebuild[code] = (rebuild[code] or 0) + 1 end
  end
end

-- Which of the given items are new.
local fresh, fresh_codes, seen = {}, {}, {}
for a = 4, #ARGV do
  local code = id_code(ARGV[a], id_key)
  if code and not seen[code] then
    seen[code] = true
    local present
    if rebuild then present = rebuild[code] ~= nil else present = redis.call('HEXISTS', comp, code) == 1 end
    if not present then
      fresh[#fresh + 1] = ARGV[a]
      fresh_codes[#fresh_codes + 1] = code
    end
  end
end

-- Writes.
if state == 'string' then
  redis.call('DEL', key)
end
if rebuild then
  redis.call('DEL', comp)
end
if state == 'string' and #items > 0 then rpush(key, items) end
if #fresh > 0 then rpush(key, fresh) end
local len = redis.call('LLEN', key)
if len == 0 then
  -- An empty list (a missing key given nothing new, or '[]' given nothing new).
  redis.call('DEL', comp)
  if ttl == '' then redis.call('SET', key, '[]') else redis.call('SET', key, '[]', 'PX', ttl) end
  emit(stream, maxlen, key, 'set', '[]')
  return 0
end
if rebuild then
  local args, count = { 'HSET', comp, '#id', id_key }, 0
  for code, c in pairs(rebuild) do
    args[#args + 1] = code
    args[#args + 1] = c
    count = count + 1
    if count == 500 then
      redis.call(unpack(args))
      args, count = { 'HSET', comp }, 0
    end
  end
  if #args > 2 then redis.call(unpack(args)) end
end
for _, code in ipairs(fresh_codes) do redis.call('HINCRBY', comp, code, 1) end
companion_touch(key, comp)
set_ttl(key, ttl)
set_ttl(comp, ttl)
emit(stream, maxlen, key, 'set', function() return list_text(lrange_all(key)) end)
return len
