-- Admits one session: atomically settles expired leases, then takes a slot in
-- the account's and the agent's semaphores and reserves minutes, or refuses
-- with what to wait for. Every key shares the account's hash tag, so this
-- runs unchanged on Redis Cluster.
--
-- KEYS[1] account semaphore  {<account_id>}:slots               zset member=session id, score=lease deadline (ms)
-- KEYS[2] agent semaphore    {<account_id>}:agent:<agent>:slots same shape
-- KEYS[3] account minutes    {<account_id>}:minutes             hash used_seconds, reserved_seconds
-- KEYS[4] reservations       {<account_id>}:reservations        hash session id -> reserved seconds
-- ARGV[1] session id
-- ARGV[2] wanted session length in seconds (the agent's max_session_seconds)
-- ARGV[3] account limit (>= 1)
-- ARGV[4] agent limit (0 = no agent limit)
-- ARGV[5] account quota in seconds (minutes_quota * 60)
-- Returns {1, deadline_ms, reserved_seconds} admitted (also when the session
-- already held its slot: a retried call keeps it), or
-- {0, scope, limit, in_use, retry_after_ms} with scope account|agent|minutes.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local sid = ARGV[1]
local wanted = tonumber(ARGV[2])
local account_limit = tonumber(ARGV[3])
local agent_limit = tonumber(ARGV[4])
local quota = tonumber(ARGV[5])

-- A lease that ran out bills its whole reservation: its holder stopped
-- renewing (crashed or lost) and may have run to the end.
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for _, old in ipairs(expired) do
  local r = tonumber(redis.call('HGET', KEYS[4], old))
  if r then
    redis.call('HDEL', KEYS[4], old)
    redis.call('HINCRBY', KEYS[3], 'reserved_seconds', -r)
    redis.call('HINCRBY', KEYS[3], 'used_seconds', r)
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)

local held = redis.call('ZSCORE', KEYS[1], sid)
if held then
  return {1, tonumber(held), tonumber(redis.call('HGET', KEYS[4], sid)) or 0}
end

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

local used = tonumber(redis.call('HGET', KEYS[3], 'used_seconds')) or 0
local reserved = tonumber(redis.call('HGET', KEYS[3], 'reserved_seconds')) or 0
local left = quota - used - reserved
if left <= 0 then
  return {0, 'minutes', quota, used + reserved, 0}
end
local take = math.min(wanted, left)
local deadline = now + take * 1000

redis.call('ZADD', KEYS[1], deadline, sid)
redis.call('ZADD', KEYS[2], deadline, sid)
redis.call('HSET', KEYS[4], sid, take)
redis.call('HINCRBY', KEYS[3], 'reserved_seconds', take)
return {1, deadline, take}
