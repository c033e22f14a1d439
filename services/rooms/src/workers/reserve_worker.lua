-- Takes one unit of a worker's capacity for a session, if the worker is
-- connected, has heartbeated recently and has room. Atomic, so two rooms
-- replicas allocating at once never overfill a worker. Both keys carry the
-- worker's own hash tag: workers spread over a Redis Cluster's slots.
--
-- KEYS[1] worker hash  {w:<id>}:worker  capacity, reserved, last_seen_ms, connected
-- KEYS[2] its jobs     {w:<id>}:jobs    session id -> "running" | "ended|<ms>|<reason>"
-- ARGV[1] now in ms, ARGV[2] heartbeat expiry in ms, ARGV[3] session id
-- Returns 1 reserved (or already held), 0 not available.
local f = redis.call('HMGET', KEYS[1], 'capacity', 'reserved', 'last_seen_ms', 'connected')
if not f[1] or f[4] ~= '1' then return 0 end
if (tonumber(f[3]) or 0) + tonumber(ARGV[2]) < tonumber(ARGV[1]) then return 0 end
if redis.call('HEXISTS', KEYS[2], ARGV[3]) == 1 then return 1 end
if (tonumber(f[2]) or 0) >= tonumber(f[1]) then return 0 end
redis.call('HINCRBY', KEYS[1], 'reserved', 1)
redis.call('HSET', KEYS[2], ARGV[3], 'running')
return 1
