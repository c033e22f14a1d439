-- Renews, in the account's home region, the lease of a hold whose session
-- its region saw alive. A hold that ran out and was dropped meanwhile (its
-- region could not reach home for a lease) is taken again for the seconds
-- the session has left: the session is running, so it counts, even past
-- the limit, until sessions end. A released hold (its tombstone) is never
-- taken again: the renewal raced the session's end.
--
-- KEYS[1] hold, KEYS[2] account slots, KEYS[3] agent slots, KEYS[4] minutes
-- ARGV[1] session id  ARGV[2] lease (ms)  ARGV[3] seconds the session has
-- left  ARGV[4] agent id  ARGV[5] the session's region
-- Returns 1 renewed, 2 taken again, 0 nothing to hold (released, or no time
-- left).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease_ms = tonumber(ARGV[2])
local f = redis.call('HMGET', KEYS[1], 'deadline_ms', 'billed', 'released', 'reserved_seconds')
if f[3] == '1' then return 0 end
if f[1] and f[2] ~= '1' and redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  local lease = math.min(now + lease_ms, tonumber(f[1]))
  redis.call('ZADD', KEYS[2], 'XX', lease, ARGV[1])
  redis.call('ZADD', KEYS[3], lease, ARGV[1])
  redis.call('HSET', KEYS[1], 'lease_deadline_ms', lease)
  return 1
end
local take = tonumber(ARGV[3])
if take <= 0 then return 0 end
-- A hold whose slot went without it being billed still reserves minutes.
local stale = tonumber(f[4]) or 0
if f[1] and f[2] ~= '1' and stale > 0 then
  redis.call('HINCRBY', KEYS[4], 'reserved_seconds', -stale)
end
local deadline = now + take * 1000
local lease = math.min(now + lease_ms, deadline)
redis.call('DEL', KEYS[1])
if redis.call('ZADD', KEYS[2], lease, ARGV[1]) == 1 then
  -- The bucket's count of slots held (as in admit.lua).
  redis.call('INCR', string.match(KEYS[1], '^({[^}]*})') .. ':slots_in_use')
end
redis.call('ZADD', KEYS[3], lease, ARGV[1])
redis.call('HINCRBY', KEYS[4], 'reserved_seconds', take)
redis.call('HSET', KEYS[1], 'agent_id', ARGV[4], 'reserved_seconds', take, 'started_at_ms', now,
  'deadline_ms', deadline, 'lease_deadline_ms', lease, 'region', ARGV[5])
redis.call('PEXPIREAT', KEYS[1], deadline + 86400000)
return 2
