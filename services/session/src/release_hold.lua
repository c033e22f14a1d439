-- Gives back, in the account's home region, the hold of a session another
-- region ran: frees both slots, turns the reservation into the seconds it
-- ran (nothing for a failed start, which also gives its link use back),
-- and drops the hold. Idempotent: a hold already released or dropped by
-- the lease sweep (admit.lua) releases nothing.
--
-- KEYS[1] hold T:<acct>:hold:<sid>, KEYS[2] account slots, KEYS[3] agent
-- slots, KEYS[4] minutes, KEYS[5] link uses (as in admit.lua)
-- ARGV[1] session id  ARGV[2] '1' failed start, '0' ended
-- ARGV[3] seconds it ran
-- Returns 1 released, 0 nothing held.
local f = redis.call('HMGET', KEYS[1], 'reserved_seconds', 'link_id', 'billed')
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if not f[1] then return 0 end
redis.call('DEL', KEYS[1])
if f[3] == '1' then return 0 end
-- (Lua's -0 reads as "-0", which HINCRBY refuses: zero amounts are skipped.)
local r = tonumber(f[1]) or 0
if r > 0 then redis.call('HINCRBY', KEYS[4], 'reserved_seconds', -r) end
if ARGV[2] == '1' then
  if f[2] and f[2] ~= '' and (tonumber(redis.call('HGET', KEYS[5], f[2])) or 0) > 0 then
    redis.call('HINCRBY', KEYS[5], f[2], -1)
  end
else
  local used = math.min(r, tonumber(ARGV[3]) or 0)
  if used > 0 then redis.call('HINCRBY', KEYS[4], 'used_seconds', used) end
end
return 1
