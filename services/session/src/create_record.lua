-- Seed 004's create-or-get: writes a record and its indexes unless a
-- session with its id exists in the account (then writes nothing). One
-- atomic step, so racing creates make one record.
--
-- KEYS[1] record  T:<account_id>:session:<id>
-- KEYS[2] its messages list
-- KEYS[3] the account's records (by creation time)
-- KEYS[4] the agent's records by creation time, KEYS[5] by update time,
-- KEYS[6] the agent's record ids (lexical), KEYS[7] the version of the
-- agent's named records (what name orders are held against), KEYS[8] the
-- agent's named record ids
-- KEYS[9..] the blind-index sets the record's tokens name
-- ARGV[1] id  ARGV[2] now (ms)  ARGV[3] n, the number of record fields
-- ARGV[4 .. 3+2n] field, value pairs; ARGV[4+2n ..] sealed messages
-- Returns 1 created, 0 it existed.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local n = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], unpack(ARGV, 4, 3 + 2 * n))
if #ARGV >= 4 + 2 * n then
  redis.call('RPUSH', KEYS[2], unpack(ARGV, 4 + 2 * n))
end
local id, now = ARGV[1], ARGV[2]
redis.call('ZADD', KEYS[3], now, id)
redis.call('ZADD', KEYS[4], now, id)
redis.call('ZADD', KEYS[5], now, id)
redis.call('ZADD', KEYS[6], 0, id)
redis.call('INCR', KEYS[7])
redis.call('ZADD', KEYS[8], 0, id)
for i = 9, #KEYS do redis.call('SADD', KEYS[i], id) end
return 1
