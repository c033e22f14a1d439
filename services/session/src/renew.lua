-- Renews a live session's lease: its holder (a worker's heartbeats, or the
-- room's presence) was seen alive. Never brings back a slot that expired
-- and was freed: then it returns 0 and the session must end.
--
-- KEYS[1] record, KEYS[2] account slots, KEYS[3] agent slots, KEYS[4] sweep
-- index (as in admit.lua)
-- ARGV[1] session id  ARGV[2] sweep member  ARGV[3] lease (ms)
-- ARGV[4] next sweep check (ms, the sweeper's clock)
-- Returns 1 renewed, 0 not renewable.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local f = redis.call('HMGET', KEYS[1], 'status', 'deadline_ms')
if f[1] ~= 'active' then return 0 end
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 0 end
local lease = math.min(now + tonumber(ARGV[3]), tonumber(f[2]) or now)
redis.call('ZADD', KEYS[2], 'XX', lease, ARGV[1])
redis.call('ZADD', KEYS[3], 'XX', lease, ARGV[1])
redis.call('HSET', KEYS[1], 'lease_deadline_ms', lease)
redis.call('ZADD', KEYS[4], 'XX', ARGV[4], ARGV[2])
return 1
