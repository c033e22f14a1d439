-- Forgets a session's job on a worker, giving back its capacity if the job
-- was still running (an ended job gave it back at its end report).
-- Idempotent.
-- KEYS[1] worker hash, KEYS[2] its jobs (as in reserve_worker.lua)
-- ARGV[1] session id
-- Returns 1 when the worker had the job, 0 otherwise.
local job = redis.call('HGET', KEYS[2], ARGV[1])
if not job then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
if job == 'running' and (tonumber(redis.call('HGET', KEYS[1], 'reserved')) or 0) > 0 then
  redis.call('HINCRBY', KEYS[1], 'reserved', -1)
end
return 1
