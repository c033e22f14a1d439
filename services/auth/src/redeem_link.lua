-- Redeems one use of a shareable link, atomically: the link must exist, be
-- active, be unexpired and be under its use limit; then its use counter goes
-- up by one. Concurrent redemptions of a link with use_limit N admit exactly N.
--
-- KEYS[1] link record hash  {catalog}:link:<link_id>
-- ARGV[1] now in ms (the auth service's clock, which tests can move)
-- Returns {1, uses} redeemed, or {0, reason} with reason one of
-- "not_found", "inactive", "expired", "used_up".
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, 'not_found'} end
local f = redis.call('HMGET', KEYS[1], 'active', 'expires_at_ms', 'use_limit', 'uses')
if f[1] ~= '1' then return {0, 'inactive'} end
local expires = tonumber(f[2]) or 0
if expires > 0 and tonumber(ARGV[1]) >= expires then return {0, 'expired'} end
local limit = tonumber(f[3]) or 0
local uses = tonumber(f[4]) or 0
if limit > 0 and uses >= limit then return {0, 'used_up'} end
return {1, redis.call('HINCRBY', KEYS[1], 'uses', 1)}
