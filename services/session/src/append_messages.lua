-- Appends messages and token usage to a live session's record, if the
-- caller owns it (its agent, or the worker that runs it) and its message
-- list has room; moves the record in the update order.
--
-- KEYS[1] record, KEYS[2] its messages list, KEYS[3] the agent's records by
-- update time
-- ARGV[1] the caller's id  ARGV[2] now (ms)  ARGV[3] session id
-- ARGV[4] prompt tokens to add  ARGV[5] completion tokens to add
-- ARGV[6] most messages a session may hold
-- ARGV[7] the record field the caller's id must equal: agent_id, worker_id
-- ARGV[8] the account the caller may write to ('' any: a pool's worker)
-- ARGV[9..] sealed messages
-- Returns {1, messages, prompt_tokens, completion_tokens} or {0, reason},
-- reason one of not_found, ended, full.
local f = redis.call('HMGET', KEYS[1], 'status', ARGV[7], 'account_id')
if not f[1] or f[2] ~= ARGV[1] then return {0, 'not_found'} end
if ARGV[8] ~= '' and f[3] ~= ARGV[8] then return {0, 'not_found'} end
if f[1] ~= 'active' then return {0, 'ended'} end
local adding = #ARGV - 8
if redis.call('LLEN', KEYS[2]) + adding > tonumber(ARGV[6]) then return {0, 'full'} end
if adding > 0 then redis.call('RPUSH', KEYS[2], unpack(ARGV, 9)) end
local prompt = tonumber(ARGV[4])
local completion = tonumber(ARGV[5])
-- (Zero amounts are skipped: Lua's -0 reads as "-0", which HINCRBY refuses.)
if prompt > 0 then redis.call('HINCRBY', KEYS[1], 'prompt_tokens', prompt) end
if completion > 0 then redis.call('HINCRBY', KEYS[1], 'completion_tokens', completion) end
redis.call('HSET', KEYS[1], 'updated_at_ms', ARGV[2])
redis.call('ZADD', KEYS[3], 'XX', ARGV[2], ARGV[3])
local t = redis.call('HMGET', KEYS[1], 'prompt_tokens', 'completion_tokens')
return {1, redis.call('LLEN', KEYS[2]), tonumber(t[1]) or 0, tonumber(t[2]) or 0}
