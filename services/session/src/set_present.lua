-- Sets fields of a session record only while it exists: a late write (a
-- webhook, a worker's acceptance, the room's URL) never recreates a record
-- that was ended and deleted meanwhile as a partial hash with no expiry.
-- KEYS[1] the record   ARGV field, value, field, value, ...
-- Returns 1 when written, 0 when the record is gone.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
