-- Gives back, in the account's home region, the hold of a session another
-- region ran: frees both slots, turns the reservation into the seconds it
-- ran (never more than the hold itself has lasted: a hold taken again after
-- it ran out was billed up to then already; nothing for a failed start,
-- which also gives its link use back), and leaves a tombstone so that a
-- renewal already on its way cannot take the hold again. Idempotent: a hold
-- already released, or dropped by the lease sweep (admit.lua), releases
-- nothing.
--
-- KEYS[1] hold T:<acct>:hold:<sid>, KEYS[2] account slots, KEYS[3] agent
-- slots, KEYS[4] minutes, KEYS[5] link uses (as in admit.lua)
-- ARGV[1] session id  ARGV[2] '1' failed start, '0' ended
-- ARGV[3] seconds it ran  ARGV[4] how long the tombstone stays (ms)
-- Returns 1 released, 0 nothing held.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local f = redis.call('HMGET', KEYS[1], 'reserved_seconds', 'link_id', 'started_at_ms', 'released')
if redis.call('ZREM', KEYS[2], ARGV[1]) == 1 then
  -- The bucket's count of slots held (as in admit.lua).
  local slots_in_use = string.match(KEYS[1], '^({[^}]*})') .. ':slots_in_use'
  if redis.call('DECR', slots_in_use) < 0 then redis.call('SET', slots_in_use, 0) end
end
redis.call('ZREM', KEYS[3], ARGV[1])
if f[4] == '1' then return 0 end
-- A tombstone, whether or not there was a hold to give back.
local function tombstone()
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'released', '1')
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]))
end
if not f[1] then
  tombstone()
  return 0
end
-- (Lua's -0 reads as "-0", which HINCRBY refuses: zero amounts are skipped.)
local r = tonumber(f[1]) or 0
if r > 0 then redis.call('HINCRBY', KEYS[4], 'reserved_seconds', -r) end
if ARGV[2] == '1' then
  if f[2] and f[2] ~= '' and (tonumber(redis.call('HGET', KEYS[5], f[2])) or 0) > 0 then
    redis.call('HINCRBY', KEYS[5], f[2], -1)
  end
else
  local held = math.max(0, math.floor((now - (tonumber(f[3]) or now)) / 1000))
  local used = math.min(r, tonumber(ARGV[3]) or 0, held)
  if used > 0 then redis.call('HINCRBY', KEYS[4], 'used_seconds', used) end
end
tombstone()
return 1
