-- open.lua: makes sure the change stream exists (from now on every writing script adds its
-- changes to it), refreshes its TTL, and says where it ends: a watch or a wait starts there.
-- KEYS[1] the change stream. ARGV[1] its TTL in ms.
-- Reply   {generation, last id, entries added}: the stream's generation (common.lua), the id of
--         the last entry ever added ('0-0' if none) and how many entries were ever added.
-- Errors  KVFOREIGN ... (the key holds another Redis type; nothing touched).
local stream = KEYS[1]
local err = open(stream, ARGV[1])
if err then return err end
local fields = info(stream)
return { generation(stream), fields['last-generated-id'], fields['entries-added'] }
