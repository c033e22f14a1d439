-- Gives back one use taken by a start that failed afterwards; never below 0.
-- KEYS[1] link record hash. Returns the uses after the call, or -1 if no link.
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local uses = tonumber(redis.call('HGET', KEYS[1], 'uses')) or 0
if uses > 0 then return redis.call('HINCRBY', KEYS[1], 'uses', -1) end
return 0
