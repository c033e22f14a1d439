-- Records a worker's report that a session ended, if that worker runs it:
-- frees its capacity at once and marks the job ended (the session service
-- sees it through Rooms/WorkerJobs, and through the feed of reported ends,
-- written beside: it is in another slot). A repeated report changes nothing.
--
-- KEYS[1] worker hash, KEYS[2] its jobs (as in reserve_worker.lua)
-- ARGV[1] session id, ARGV[2] now in ms, ARGV[3] reason
-- Returns 1 recorded, 0 not this worker's running session.
if redis.call('HGET', KEYS[2], ARGV[1]) ~= 'running' then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], 'ended|' .. ARGV[2] .. '|' .. ARGV[3])
if (tonumber(redis.call('HGET', KEYS[1], 'reserved')) or 0) > 0 then
  redis.call('HINCRBY', KEYS[1], 'reserved', -1)
end
return 1
