-- Gives back the capacity a session held on a worker. Idempotent.
-- KEYS[1] worker hash, KEYS[2] worker's sessions, KEYS[3] session's worker
-- (as in reserve_worker.lua)
-- ARGV[1] session id
-- Returns 1 when the session held capacity, 0 otherwise.
redis.call('DEL', KEYS[3])
if redis.call('SREM', KEYS[2], ARGV[1]) == 0 then return 0 end
if (tonumber(redis.call('HGET', KEYS[1], 'reserved')) or 0) > 0 then
  redis.call('HINCRBY', KEYS[1], 'reserved', -1)
end
return 1
