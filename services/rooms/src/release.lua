-- Frees one session's slots. Idempotent: releasing twice frees nothing more.
-- KEYS[1] account semaphore, KEYS[2] agent semaphore (as in admit.lua)
-- ARGV[1] session id
-- Returns 1 when the session held a slot, 0 otherwise.
local held = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return held
