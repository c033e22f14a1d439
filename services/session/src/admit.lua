-- Admits one session in one step: settles the account's expired leases,
-- checks the link's uses, both semaphores and the minutes, and only then
-- writes anything: the slots, the minutes reservation, the link use, the
-- session record and its entry in the sweepers' index. A refusal writes
-- nothing for its start (settling expired leases is every admission's
-- first step, refused or not). Every key carries the account's bucket tag, so this runs
-- unchanged on Redis Cluster (the expired sessions' keys are derived here;
-- they share the tag).
--
-- KEYS[1] record          T:<acct>:session:<sid>     hash
-- KEYS[2] account slots   T:<acct>:slots             zset sid -> lease deadline (ms)
-- KEYS[3] agent slots     T:<acct>:agent:<agent>:slots
-- KEYS[4] minutes         T:<acct>:minutes           hash used_seconds, reserved_seconds
-- KEYS[5] settings        T:<acct>:settings          hash (written by auth; read only here)
-- KEYS[6] link uses       T:<acct>:link_uses         hash link id -> uses
-- KEYS[7] sweep index     T:due                      zset "<acct>|<sid>" -> next check (ms)
-- KEYS[8] the id -> account lookup T:session_account:<sid>, when it shares
--         the account's slot (every id Lobby mints names the account's
--         bucket) or on a single Redis; otherwise it is written beside this
-- ARGV[1] session id      ARGV[2] account id        ARGV[3] agent id
-- ARGV[4..7] the principal's account limit, agent limit (0: none),
--         max session seconds and quota seconds: used only while the
--         settings hash has no entry (it is exact; these may be cached)
-- ARGV[8] link id ('' for none)   ARGV[9] its use limit (0: unlimited)
-- ARGV[10] lease (ms)             ARGV[11] longest retry hint (ms)
-- ARGV[12] first sweep check, ms after admission
-- ARGV[13] mode: 'local' admits a session here and writes its record;
--          'hold' admits, in the account's home region, a session starting
--          in another region: KEYS[1] is then its hold (T:<acct>:hold:<sid>),
--          which keeps what the lease sweep and the release need and nothing
--          the records contract lists; 'held' writes the record of a session
--          its home region admitted: no refusal here (ARGV[7] is the seconds
--          home reserved), the local slots only keep its lease for the sweeper,
--          and its minutes are reserved and billed at home, not here
-- ARGV[14..] field, value pairs of the new record (of the hold: its region)
-- The bucket's count of slots held, T:slots_in_use (for the slots gauge),
-- follows every slot taken or freed here, as in finish.lua and
-- release_hold.lua.
-- The records contract's indexes of the agent's sessions (seed 004 lists
-- them) are derived here too: T:<acct>:records and
-- T:<acct>:agent:<agent>:records:{created,updated,ids,unnamed}.
-- Returns {1, deadline_ms, reserved_seconds, lease_deadline_ms, started_at_ms},
-- or {0, scope, limit, in_use, retry_after_ms} with scope one of account,
-- agent, minutes, link_used_up, agent_unpublished, released (a hold asked
-- for after it was given back, or a start arriving after it was withdrawn).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local sid, acct, agent = ARGV[1], ARGV[2], ARGV[3]
local mode = ARGV[13]
local tag = string.match(KEYS[1], '^({[^}]*})')
local prefix = tag .. ':' .. acct

if mode == 'hold' then
  local h = redis.call('HMGET', KEYS[1], 'released', 'deadline_ms', 'reserved_seconds',
    'lease_deadline_ms', 'started_at_ms')
  -- A hold that arrives after its release (delayed on the way, its start
  -- given up on) finds the release's tombstone: taking the slot now would
  -- hold it for a lease with nobody to renew or release it.
  if h[1] == '1' then return {0, 'released', 0, 0, 0} end
  -- The same hold asked again (a retried or repeated call) is the hold
  -- already taken: reserving its minutes twice would leave the first
  -- reservation counted against the account's minutes for good.
  local lease = tonumber(redis.call('ZSCORE', KEYS[2], sid))
  if h[2] and lease and lease > now then
    return {1, tonumber(h[2]), tonumber(h[3]), lease, tonumber(h[5])}
  end
end

-- A start given up on (its admission's answer was lost, and finish.lua
-- withdrew it) left a tombstone where its record would go: arriving late,
-- it takes nothing.
if mode ~= 'hold' and redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, 'released', 0, 0, 0}
end

-- The exact settings, where auth has written them.
local account_limit = tonumber(ARGV[4])
local agent_limit = tonumber(ARGV[5])
local max_seconds = tonumber(ARGV[6])
local quota = tonumber(ARGV[7])
local s = {}
if mode ~= 'held' then
  s = redis.call('HMGET', KEYS[5], 'max_concurrency', 'quota_seconds', 'agent:' .. agent)
end
if s[1] then account_limit = tonumber(s[1]) end
if s[2] then quota = tonumber(s[2]) end
if s[3] then
  local published, limit, seconds = string.match(s[3], '^(%d+),(%d+),(%d+)')
  if published == '0' then return {0, 'agent_unpublished', 0, 0, 0} end
  if published then
    agent_limit = tonumber(limit)
    max_seconds = tonumber(seconds)
  end
end

-- Leases that ran out: their holder stopped renewing them. Free the slot and
-- bill the reservation up to the lease's end; the sweeper ends the session.
-- A hold that ran out (its region stopped renewing it) is dropped.
local slots_in_use = tag .. ':slots_in_use'
local function slots_freed(n)
  -- Never below 0: sessions from before the count existed end uncounted.
  if n > 0 and redis.call('DECRBY', slots_in_use, n) < 0 then redis.call('SET', slots_in_use, 0) end
end
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, old in ipairs(expired) do
  local rec = prefix .. ':session:' .. old
  local hold = prefix .. ':hold:' .. old
  local is_hold = redis.call('EXISTS', rec) == 0 and redis.call('EXISTS', hold) == 1
  if is_hold then rec = hold end
  local f = redis.call('HMGET', rec, 'agent_id', 'reserved_seconds', 'started_at_ms', 'billed',
    'lease_deadline_ms', 'home_region')
  -- A session another region's home admitted is billed there, not here.
  local billed_here = is_hold or not f[6] or f[6] == ''
  slots_freed(redis.call('ZREM', KEYS[2], old))
  if f[1] then
    redis.call('ZREM', prefix .. ':agent:' .. f[1] .. ':slots', old)
    if f[4] ~= '1' then
      local r = tonumber(f[2]) or 0
      local lease_end = tonumber(f[5]) or now
      local ran = math.max(0, math.floor((lease_end - (tonumber(f[3]) or now)) / 1000))
      -- Zero amounts are skipped: Lua's -0 reads as "-0", which HINCRBY refuses.
      if billed_here and r > 0 then redis.call('HINCRBY', KEYS[4], 'reserved_seconds', -r) end
      if billed_here and math.min(r, ran) > 0 then
        redis.call('HINCRBY', KEYS[4], 'used_seconds', math.min(r, ran))
      end
      redis.call('HSET', rec, 'billed', '1', 'slot_released', '1')
    end
    if is_hold then
      redis.call('DEL', rec)
    else
      redis.call('ZADD', KEYS[7], now, acct .. '|' .. old)
    end
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)

-- Refusals, before any write (none for a session its home admitted).
local take = math.min(max_seconds, quota)
if mode ~= 'held' then
  if ARGV[8] ~= '' then
    local limit = tonumber(ARGV[9])
    local uses = tonumber(redis.call('HGET', KEYS[6], ARGV[8])) or 0
    if limit > 0 and uses >= limit then return {0, 'link_used_up', limit, uses, 0} end
  end
  local retry_cap = tonumber(ARGV[11])
  local function refusal(key, scope, limit)
    local in_use = redis.call('ZCARD', key)
    if in_use < limit then return nil end
    local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    local wait = math.min(retry_cap, math.max(1, tonumber(first[2]) - now))
    return {0, scope, limit, in_use, wait}
  end
  local refused = refusal(KEYS[2], 'account', account_limit)
  if not refused and agent_limit > 0 then
    refused = refusal(KEYS[3], 'agent', agent_limit)
  end
  if refused then return refused end
  local used = tonumber(redis.call('HGET', KEYS[4], 'used_seconds')) or 0
  local reserved = tonumber(redis.call('HGET', KEYS[4], 'reserved_seconds')) or 0
  local left = quota - used - reserved
  if left <= 0 then return {0, 'minutes', quota, used + reserved, 0} end
  take = math.min(max_seconds, left)
end

-- Admitted: write it all.
local deadline = now + take * 1000
local lease = math.min(now + tonumber(ARGV[10]), deadline)
if redis.call('ZADD', KEYS[2], lease, sid) == 1 then redis.call('INCR', slots_in_use) end
redis.call('ZADD', KEYS[3], lease, sid)
-- A session its home admitted has its minutes reserved there.
if take > 0 and mode ~= 'held' then redis.call('HINCRBY', KEYS[4], 'reserved_seconds', take) end
if ARGV[8] ~= '' and mode ~= 'held' then redis.call('HINCRBY', KEYS[6], ARGV[8], 1) end
local fields = {}
for i = 14, #ARGV do fields[#fields + 1] = ARGV[i] end
if mode == 'hold' then
  redis.call('HSET', KEYS[1], 'agent_id', agent, 'reserved_seconds', take, 'started_at_ms', now,
    'deadline_ms', deadline, 'lease_deadline_ms', lease, 'link_id', ARGV[8], unpack(fields))
  redis.call('PEXPIREAT', KEYS[1], deadline + 86400000)
  return {1, deadline, take, lease, now}
end
redis.call('HSET', KEYS[1], 'status', 'active', 'created_at_ms', now, 'started_at_ms', now,
  'reserved_seconds', take, 'max_session_seconds', max_seconds, 'deadline_ms', deadline,
  'lease_deadline_ms', lease, unpack(fields))
redis.call('ZADD', KEYS[7], math.min(deadline, now + tonumber(ARGV[12])), acct .. '|' .. sid)
local records = prefix .. ':agent:' .. agent .. ':records:'
redis.call('ZADD', prefix .. ':records', now, sid)
redis.call('ZADD', records .. 'created', now, sid)
redis.call('ZADD', records .. 'updated', now, sid)
redis.call('ZADD', records .. 'ids', 0, sid)
redis.call('ZADD', records .. 'unnamed', 0, sid)
if KEYS[8] then redis.call('SET', KEYS[8], acct) end
return {1, deadline, take, lease, now}
