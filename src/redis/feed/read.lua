-- read.lua: the feed's read, one atomic step: the stream's state and the entries after a cursor.
-- KEYS[1] the change stream. ARGV[1] its TTL in ms; ARGV[2] the cursor (an entry id; entries
--         after it are read); ARGV[3] the most entries to read; ARGV[4] the generation the cursor
--         belongs to. If the stream is missing it is made again (a new generation); if its
--         generation is not ARGV[4], entries are read from its start.
-- Reply   {generation, entries added, length, entries}: entries as XRANGE gives them. Entries
--         added minus length is how many were trimmed (MAXLEN) from its front, so a reader that
--         knows how many came up to its cursor knows exactly how many it lost.
-- Errors  KVFOREIGN ... (the key holds another Redis type).
local stream = KEYS[1]
local err = open(stream, ARGV[1])
if err then return err end
local gen = generation(stream)
local from = '(' .. ARGV[2]
if gen ~= ARGV[4] then from = '-' end
local fields = info(stream)
local entries = redis.call('XRANGE', stream, from, '+', 'COUNT', ARGV[3])
return { gen, fields['entries-added'], fields['length'], entries }
