-- get.lua: the value at a key, as JSON text.
-- KEYS[1] the key.
-- ARGV    none.
-- Reply   nil (missing) | bulk text: a string key's text as stored (the caller parses it); a list
--         key's elements joined as '[' .. e1 .. ',' .. e2 .. ']' (each element checked by cjson
--         to be exactly one value first, so the joined text can never be read as other items;
--         the caller's serde_json stays the judge of strict JSON and depth).
-- Errors  KVNOTJSON list item <i>: not one JSON value | KVFOREIGN the key holds a Redis <type>
-- Read-only. (A plain GET would do for string keys but answers WRONGTYPE for list keys.)
local t = rtype(KEYS[1])
if t == 'none' then return false end
if t == 'string' then return redis.call('GET', KEYS[1]) end
if t ~= 'list' then return foreign(t) end
local items = lrange_all(KEYS[1])
local err = check_items_lenient(items)
if err then return err end
return list_text(items)
