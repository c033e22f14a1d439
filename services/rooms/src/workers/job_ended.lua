-- Records a worker's report that a session ended, if that worker holds the
-- session: frees its capacity at once and appends the report to the feed the
-- session service reads (JobEnds). Idempotent: a repeated report changes
-- nothing and is not appended twice.
--
-- KEYS[1] worker hash, KEYS[2] worker's sessions, KEYS[3] session's job
-- (as in reserve_worker.lua), KEYS[4] the feed {workers}:job_ends (stream)
-- ARGV[1] session id, ARGV[2] worker id, ARGV[3] now in ms, ARGV[4] reason,
-- ARGV[5] the feed's approximate length cap
-- Returns 1 recorded, 0 not this worker's session (or already reported).
local job = redis.call('HMGET', KEYS[3], 'worker', 'state')
if job[1] ~= ARGV[2] or job[2] ~= 'running' then return 0 end
redis.call('HSET', KEYS[3], 'state', 'ended', 'ended_at_ms', ARGV[3], 'reason', ARGV[4])
if redis.call('SREM', KEYS[2], ARGV[1]) == 1 then
  if (tonumber(redis.call('HGET', KEYS[1], 'reserved')) or 0) > 0 then
    redis.call('HINCRBY', KEYS[1], 'reserved', -1)
  end
end
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[5], '*',
  'session_id', ARGV[1], 'worker_id', ARGV[2], 'ended_at_ms', ARGV[3], 'reason', ARGV[4])
return 1
