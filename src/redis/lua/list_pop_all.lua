-- list_pop_all.lua: removes the list at a key and returns it; anything else stays and gives nil
-- (in-process `list_pop_all`).
-- KEYS[1] the key; KEYS[2] its companion; KEYS[3] the change stream.
-- ARGV[1] stream MAXLEN or ''.
-- Reply   nil (missing, or not a list) | bulk text: the whole list, as get.lua spells it.
-- Errors  KVNOTJSON ... | KVTOODEEP ... (the value, list or not, is not JSON serde_json reads:
--         kept) | KVFOREIGN ...
-- Stream  one 'del' entry when a list was removed.
local key, comp, stream = KEYS[1], KEYS[2], KEYS[3]
local err = companion_type_ok(comp)
if err then return err end
local t = rtype(key)
if t == 'none' then return false end
local text
if t == 'string' then
  text = redis.call('GET', key)
  err = jcheck(text, MAX_DEPTH, 'the value')
  if err then return err end
  if kind(text) ~= 'a list' then return false end
elseif t == 'list' then
  local items = lrange_all(key)
  err = check_items(items)
  if err then return err end
  text = list_text(items)
else
  return foreign(t)
end
redis.call('DEL', key, comp)
emit(stream, ARGV[1], key, 'del')
return text
