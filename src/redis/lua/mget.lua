-- mget.lua: the values at several keys, in order, duplicates included.
-- KEYS    the keys (at least one).
-- ARGV    none.
-- Reply   array, one entry per key: nil (missing) | bulk text, as get.lua gives it.
-- Errors  as get.lua, with 'key <n>' (1-based position in KEYS) in front of the detail:
--         KVNOTJSON key <n> list item <i>: not one JSON value | KVFOREIGN key <n> holds ...
-- Read-only.
local out = {}
for n, key in ipairs(KEYS) do
  local t = rtype(key)
  if t == 'none' then
    out[n] = false
  elseif t == 'string' then
    out[n] = redis.call('GET', key)
  elseif t == 'list' then
    local items = lrange_all(key)
    local err = check_items_lenient(items, 'key ' .. n .. ' ')
    if err then return err end
    out[n] = list_text(items)
  else
    return foreign(t, 'key ' .. n)
  end
end
return out
