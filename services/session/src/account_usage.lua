-- An account's usage: sessions holding an unexpired slot, and its minutes.
-- KEYS[1] account semaphore, KEYS[2] account minutes (as in admit.lua)
-- Returns {active_sessions, used_seconds, reserved_seconds}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return {
  redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf'),
  tonumber(redis.call('HGET', KEYS[2], 'used_seconds')) or 0,
  tonumber(redis.call('HGET', KEYS[2], 'reserved_seconds')) or 0,
}
