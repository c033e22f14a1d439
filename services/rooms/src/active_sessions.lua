-- Counts the account's sessions whose lease has not expired.
-- KEYS[1] account semaphore (as in admit.lua)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
