-- Opens an agent run, if its agent has fewer open runs than its cap: writes
-- the record, counts the run against the agent, and schedules the sweeper's
-- idle check. A refused run writes nothing.
--
-- KEYS[1] run record  T:<account_id>:session:<session_id>
-- KEYS[2] the agent's open runs (a set of run ids)
-- KEYS[3] sweep index (as in admit.lua)
-- ARGV[1] run id  ARGV[2] most open runs per agent  ARGV[3] idle timeout (ms)
-- ARGV[4] sweep member  ARGV[5] first idle check (ms, the sweeper's clock)
-- ARGV[6..] the record's fields, as field, value pairs
-- KEYS[4] the account's records, KEYS[5..8] the agent's records by
-- creation, by update, ids, and unnamed ids (the records contract's
-- indexes, as in create_record.lua)
-- KEYS[9] the id -> account lookup, when it shares the account's slot (as
-- in admit.lua); otherwise it is written beside this
-- Returns {1, open runs before this one} or {0, open runs} when refused.
local open = redis.call('SCARD', KEYS[2])
if open >= tonumber(ARGV[2]) then return {0, open} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], unpack(ARGV, 6))
-- A run's lease is its idle deadline: each appended event renews it.
redis.call('HSET', KEYS[1], 'lease_deadline_ms', now + tonumber(ARGV[3]))
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[4])
redis.call('ZADD', KEYS[4], now, ARGV[1])
redis.call('ZADD', KEYS[5], now, ARGV[1])
redis.call('ZADD', KEYS[6], now, ARGV[1])
redis.call('ZADD', KEYS[7], 0, ARGV[1])
redis.call('ZADD', KEYS[8], 0, ARGV[1])
if KEYS[9] then redis.call('SET', KEYS[9], redis.call('HGET', KEYS[1], 'account_id')) end
return {1, open}
