-- Frees one session's slots and turns its minute reservation into the seconds
-- it actually used (never more than it reserved). Idempotent: a second call
-- finds nothing to free or bill.
--
-- KEYS[1..4] as in admit.lua
-- ARGV[1] session id
-- ARGV[2] seconds the session ran
-- Returns 1 when the session held a slot or a reservation, 0 otherwise.
local held = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
local r = tonumber(redis.call('HGET', KEYS[4], ARGV[1]))
if r then
  redis.call('HDEL', KEYS[4], ARGV[1])
  redis.call('HINCRBY', KEYS[3], 'reserved_seconds', -r)
  redis.call('HINCRBY', KEYS[3], 'used_seconds', math.min(r, math.max(0, tonumber(ARGV[2]))))
  held = 1
end
return held
