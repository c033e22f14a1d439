-- Ends a live session, or fails a start, in one idempotent step: frees both
-- slots, turns the minutes reservation into the seconds used (0 for a failed
-- start; never twice, whoever billed first), gives a failed start's link use
-- back, writes the final status, drops the sweep entry and, for an agent
-- run, its place among the agent's open runs.
--
-- KEYS[1] record, KEYS[2] account slots, KEYS[3] agent slots, KEYS[4] minutes,
-- KEYS[5] link uses, KEYS[6] sweep index (as in admit.lua), KEYS[7] the
-- session's event log, KEYS[8] the agent's open runs
-- ARGV[1] session id  ARGV[2] account id  ARGV[3] 'ended' or 'failed'
-- ARGV[4] ended_reason (ended) or failure_code (failed)
-- ARGV[5] end time (ms)
-- ARGV[6] agent id the caller must be ('' anyone: ownership checked here,
--         atomically with the end)
-- ARGV[7] seconds the finished record (and its event log) is kept (0: forever)
-- ARGV[8] when the sweeper purges it then (ms, the sweeper's clock); the
--         keys' own expiry comes a day later, a backstop
-- ARGV[9] '1' withdraws a start whose admission's answer was lost: failed
--         as above if the admission ran; if it has not (yet), a tombstone
--         record (status 'withdrawn', kept ARGV[7] seconds) makes admit.lua
--         refuse it should it still arrive
-- The records contract's update index of the agent is derived here (as in
-- admit.lua).
-- Returns 1 this call finished it, 0 it was already over, -1 no such
-- session (or not the caller's), -2 withdrawn before its admission ran.
local f = redis.call('HMGET', KEYS[1], 'status', 'agent_id', 'started_at_ms', 'reserved_seconds',
  'billed', 'link_id', 'home_region')
if not f[1] then
  if ARGV[9] ~= '1' then return -1 end
  redis.call('HSET', KEYS[1], 'status', 'withdrawn', 'failure_code', ARGV[4])
  redis.call('EXPIRE', KEYS[1], math.max(tonumber(ARGV[7]), 3600))
  return -2
end
if ARGV[6] ~= '' and f[2] ~= ARGV[6] then return -1 end
if f[1] ~= 'active' and f[1] ~= 'starting' then return 0 end
local sid, failed = ARGV[1], ARGV[3] == 'failed'
local ended_at = tonumber(ARGV[5])
local ran = math.max(0, math.floor((ended_at - (tonumber(f[3]) or ended_at)) / 1000))
if redis.call('ZREM', KEYS[2], sid) == 1 then
  -- The bucket's count of slots held (as in admit.lua).
  local slots_in_use = string.match(KEYS[1], '^({[^}]*})') .. ':slots_in_use'
  if redis.call('DECR', slots_in_use) < 0 then redis.call('SET', slots_in_use, 0) end
end
redis.call('ZREM', KEYS[3], sid)
redis.call('SREM', KEYS[8], sid)
-- (Lua's -0 reads as "-0", which HINCRBY refuses: zero amounts are skipped.)
local r = tonumber(f[4]) or 0
-- A session another region's home admitted is billed there (ReleaseHold).
local billed_here = not f[7] or f[7] == ''
if f[5] ~= '1' and r > 0 and billed_here then
  redis.call('HINCRBY', KEYS[4], 'reserved_seconds', -r)
  local used = math.min(r, ran)
  if not failed and used > 0 then redis.call('HINCRBY', KEYS[4], 'used_seconds', used) end
end
if failed then
  if billed_here and f[6] and f[6] ~= '' and (tonumber(redis.call('HGET', KEYS[5], f[6])) or 0) > 0 then
    redis.call('HINCRBY', KEYS[5], f[6], -1)
  end
  redis.call('HSET', KEYS[1], 'status', 'failed', 'failure_code', ARGV[4], 'billed', '1')
else
  redis.call('HSET', KEYS[1], 'status', 'ended', 'ended_reason', ARGV[4], 'ended_at_ms', ended_at,
    'duration_seconds', ran, 'billed', '1')
end
local tag = string.match(KEYS[1], '^({[^}]*})')
redis.call('ZADD', tag .. ':' .. ARGV[2] .. ':agent:' .. f[2] .. ':records:updated', 'XX', ended_at, sid)
if tonumber(ARGV[7]) > 0 then
  -- The sweeper purges the record with its index entries at ARGV[8].
  redis.call('HSET', KEYS[1], 'purge_at_ms', ARGV[8])
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[7]) + 86400)
  redis.call('EXPIRE', KEYS[7], tonumber(ARGV[7]) + 86400)
  redis.call('ZADD', KEYS[6], ARGV[8], ARGV[2] .. '|' .. sid)
else
  redis.call('ZREM', KEYS[6], ARGV[2] .. '|' .. sid)
end
return 1
