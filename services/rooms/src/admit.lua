-- Admits one session: atomically drops expired leases, then takes a slot in
-- the account's and the agent's semaphores, or refuses with what to wait for.
-- Every key shares the account's hash tag, so this runs on Redis Cluster.
--
-- KEYS[1] account semaphore  {<account_id>}:slots               zset member=session id, score=lease deadline (ms)
-- KEYS[2] agent semaphore    {<account_id>}:agent:<agent>:slots same shape
-- ARGV[1] session id
-- ARGV[2] lease length in ms
-- ARGV[3] account limit (>= 1)
-- ARGV[4] agent limit (0 = no agent limit)
-- Returns {1, deadline_ms} admitted (also when the session already held its
-- slot: a retried call renews it), or {0, scope, limit, in_use, retry_after_ms}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local sid = ARGV[1]
local deadline = now + tonumber(ARGV[2])
local account_limit = tonumber(ARGV[3])
local agent_limit = tonumber(ARGV[4])

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)

if not redis.call('ZSCORE', KEYS[1], sid) then
  local function refusal(key, scope, limit)
    local in_use = redis.call('ZCARD', key)
    if in_use < limit then return nil end
    local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    return {0, scope, limit, in_use, math.max(0, tonumber(first[2]) - now)}
  end
  local refused = refusal(KEYS[1], 'account', account_limit)
  if not refused and agent_limit > 0 then
    refused = refusal(KEYS[2], 'agent', agent_limit)
  end
  if refused then return refused end
end

redis.call('ZADD', KEYS[1], deadline, sid)
redis.call('ZADD', KEYS[2], deadline, sid)
-- The sets outlive no lease: expire them with the latest one.
local ttl = tonumber(ARGV[2]) + 60000
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
if redis.call('PTTL', KEYS[2]) < ttl then redis.call('PEXPIRE', KEYS[2], ttl) end
return {1, deadline}
