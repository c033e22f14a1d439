-- Claims up to ARGV[2] sweep entries of one bucket that are due, pushing each
-- to ARGV[3] so that another sweeper does not take it meanwhile (a sweeper
-- that dies mid-way leaves it to come due again then).
-- KEYS[1] sweep index T:due   ARGV[1] now (ms)  ARGV[2] limit  ARGV[3] claimed until (ms)
-- Returns the claimed members ("<acct>|<sid>").
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[3], member)
end
return due
