-- persist.lua: makes a live key never expire (in-process `persist`); the companion too.
-- KEYS[1] the key; KEYS[2] its companion.
-- ARGV    none.
-- Reply   integer 1 if the key had a TTL to remove, else 0.
-- Stream  none: the value did not change.
-- (PERSIST alone is exact for the key, but would leave the companion expiring before the list:
-- harmless, the next list_append_unique rebuilds it, but costly on a long list.)
local removed = redis.call('PERSIST', KEYS[1])
if KEYS[2] ~= nil and rtype(KEYS[2]) == 'hash' then redis.call('PERSIST', KEYS[2]) end
return removed
