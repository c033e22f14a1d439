-- Seed 004's delete: the record, its events and messages, and every index
-- entry, in one step. The caller read the record's blind-index tokens (to
-- name their sets); if they changed meanwhile nothing is deleted.
--
-- KEYS[1] record, KEYS[2] events, KEYS[3] messages, KEYS[4] the account's
-- records, KEYS[5..8] the agent's records by creation, by update, ids,
-- named-records version (as in create_record.lua), KEYS[9] named ids,
-- KEYS[10] unnamed ids, KEYS[11] the sweep index, KEYS[12..] blind-index
-- sets
-- ARGV[3] the record's sweep member
-- ARGV[1] id  ARGV[2] the tokens as read
-- Returns 1 deleted, 0 no such record, -1 it changed since it was read.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if (redis.call('HGET', KEYS[1], 'bidx') or '') ~= ARGV[2] then return -1 end
local id = ARGV[1]
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('ZREM', KEYS[4], id)
redis.call('ZREM', KEYS[5], id)
redis.call('ZREM', KEYS[6], id)
redis.call('ZREM', KEYS[7], id)
if redis.call('ZREM', KEYS[9], id) == 1 then redis.call('INCR', KEYS[8]) end
redis.call('ZREM', KEYS[10], id)
redis.call('ZREM', KEYS[11], ARGV[3])
for i = 12, #KEYS do redis.call('SREM', KEYS[i], id) end
return 1
