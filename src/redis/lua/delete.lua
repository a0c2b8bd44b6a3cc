-- delete.lua: removes a key (and its companion); a missing key is a no-op.
-- KEYS[1] the key; KEYS[2] its companion; KEYS[3] the change stream.
-- ARGV[1] stream MAXLEN or ''.
-- Reply   integer 1 if the key existed, else 0.
-- Errors  KVFOREIGN the id index <name> holds a Redis <type>.
-- Stream  one 'del' entry, only if the key existed.
local key, comp, stream = KEYS[1], KEYS[2], KEYS[3]
local err = companion_type_ok(comp)
if err then return err end
local existed = redis.call('DEL', key)
redis.call('DEL', comp)
if existed == 1 then emit(stream, ARGV[1], key, 'del') end
return existed
