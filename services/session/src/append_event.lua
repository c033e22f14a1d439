-- Appends one event to a live session's log, if the token's agent owns the
-- session and the log has room, and renews the run's idle deadline. The
-- event's sequence number is its 1-based position: the log is append-only.
--
-- KEYS[1] session record hash  T:<account_id>:session:<session_id>
-- KEYS[2] event log list        T:<account_id>:session:<session_id>:events
-- ARGV[1] agent id from the token
-- ARGV[2] most events a session may hold
-- ARGV[3] the event as JSON
-- ARGV[4] idle timeout (ms): the run's lease runs this long past the event
-- Returns {1, seq} or {0, reason}, reason one of not_found, ended, full.
local f = redis.call('HMGET', KEYS[1], 'status', 'agent_id')
if not f[1] or f[2] ~= ARGV[1] then return {0, 'not_found'} end
if f[1] ~= 'active' then return {0, 'ended'} end
if redis.call('LLEN', KEYS[2]) >= tonumber(ARGV[2]) then return {0, 'full'} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 'lease_deadline_ms', now + tonumber(ARGV[4]))
return {1, redis.call('RPUSH', KEYS[2], ARGV[3])}
