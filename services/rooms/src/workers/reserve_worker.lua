-- Takes one unit of a worker's capacity for a session, if the worker is
-- connected, has heartbeated recently and has room. Atomic, so two rooms
-- replicas allocating at once never overfill a worker.
--
-- KEYS[1] worker hash        {workers}:worker:<id>   capacity, reserved, last_seen_ms, connected
-- KEYS[2] worker's sessions  {workers}:worker:<id>:sessions
-- KEYS[3] session's job      {workers}:session:<session id>  hash worker,
--         state (running|ended), ended_at_ms, reason: how a release or a
--         lease check that knows only the session finds its worker
-- ARGV[1] now in ms, ARGV[2] heartbeat expiry in ms, ARGV[3] session id,
-- ARGV[4] worker id
-- Returns 1 reserved, 0 not available.
local f = redis.call('HMGET', KEYS[1], 'capacity', 'reserved', 'last_seen_ms', 'connected')
if not f[1] or f[4] ~= '1' then return 0 end
if (tonumber(f[3]) or 0) + tonumber(ARGV[2]) < tonumber(ARGV[1]) then return 0 end
if (tonumber(f[2]) or 0) >= tonumber(f[1]) then return 0 end
if redis.call('SADD', KEYS[2], ARGV[3]) == 1 then
  redis.call('HINCRBY', KEYS[1], 'reserved', 1)
end
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[3], 'worker', ARGV[4], 'state', 'running')
return 1
