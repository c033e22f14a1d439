-- Saves one catalog record (account or agent) and keeps the CORS pattern index
-- in step with the agents' allowlists, so a preflight (which names no agent)
-- can ask "does any agent allow this origin?" without scanning every agent.
--
-- KEYS[1] record key (JSON string)          {catalog}:account:<id> | {catalog}:agent:<id>
-- KEYS[2] id index set                      {catalog}:accounts | {catalog}:agents
-- KEYS[3] pattern refcount hash             {catalog}:origin_patterns
-- ARGV[1] record id
-- ARGV[2] new record JSON (its "stamp" is [version, updated_at_ms], version bumped by one)
-- ARGV[3] "create", or the version the caller read (optimistic update)
-- ARGV[4..] the new record's canonical allowed hostnames (agents only)
-- Returns 1 saved, 0 create found an existing record, -1 update found none,
-- -2 the record changed since the caller read it.
local old = redis.call('GET', KEYS[1])
if ARGV[3] == 'create' then
  if old then return 0 end
else
  if not old then return -1 end
  local o = cjson.decode(old)
  if tostring(o.stamp[1]) ~= ARGV[3] then return -2 end
  if type(o.allowed_hostnames) == 'table' then
    for _, p in ipairs(o.allowed_hostnames) do
      if redis.call('HINCRBY', KEYS[3], p, -1) <= 0 then
        redis.call('HDEL', KEYS[3], p)
      end
    end
  end
end
for i = 4, #ARGV do
  redis.call('HINCRBY', KEYS[3], ARGV[i], 1)
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
return 1
