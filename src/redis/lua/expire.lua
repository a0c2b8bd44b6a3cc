-- expire.lua: gives a live key a new TTL (in-process `expire`); the companion gets the same.
-- KEYS[1] the key; KEYS[2] its companion.
-- ARGV[1] TTL ms, or '' for a TTL too large to represent (the key then never expires).
-- Reply   integer 1 if the key was live, else 0 (a missing key is not revived).
-- Errors  KVBADARG ...
-- Stream  none: the value did not change (in-process reports no change either).
local key, comp = KEYS[1], KEYS[2]
if not check_ttl(ARGV[1] or 'x') then return bad_arg('expire: ttl') end
if redis.call('EXISTS', key) == 0 then return 0 end
set_ttl(key, ARGV[1])
if comp ~= nil and rtype(comp) == 'hash' then set_ttl(comp, ARGV[1]) end
return 1
