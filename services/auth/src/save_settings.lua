-- Writes one record's share of an account's admission settings (read by the
-- session service's admission script), unless a newer version of that
-- record's settings is already there: two concurrent saves land in order.
--
-- KEYS[1] settings hash  T:<account_id>:settings   (see lobby_kit::keys)
-- ARGV[1] the version field ("account:v" or "agent:<id>:v")
-- ARGV[2] the record's version
-- ARGV[3..] field, value pairs
-- Returns 1 written, 0 a newer version was already there.
local current = tonumber(redis.call('HGET', KEYS[1], ARGV[1])) or -1
if tonumber(ARGV[2]) < current then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
for i = 3, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
return 1
