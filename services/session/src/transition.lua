-- Moves a session record to a new status only from an expected one, so that
-- concurrent ends (or an end racing a start) change the record exactly once.
--
-- KEYS[1] session record hash  {<account_id>}:session:<session_id>
-- ARGV[1] comma-separated statuses the record may be in ("starting,active")
-- ARGV[2] the new status
-- ARGV[3..] field, value pairs written with the new status
-- Returns 1 moved, 0 the record is in another status, -1 no such record.
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return -1 end
local allowed = false
for s in string.gmatch(ARGV[1], '[^,]+') do
  if s == status then allowed = true end
end
if not allowed then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[2])
for i = 3, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
return 1
