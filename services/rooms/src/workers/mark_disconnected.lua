-- Marks a worker disconnected, unless it has attached again since (possibly
-- through another rooms replica): only the connection that closed may say so.
-- KEYS[1] worker hash {w:<id>}:worker
-- ARGV[1] the closed connection's id
-- Returns 1 marked, 0 a newer connection holds the worker.
if redis.call('HGET', KEYS[1], 'connection') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'connected', '0')
return 1
