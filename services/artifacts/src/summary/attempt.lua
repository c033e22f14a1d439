-- One attempt at a summary job, in three phases.
--   take: a consumer took a delivered job. Counts the attempt, or settles a
--         job that must not run: superseded ("stale", acked) or out of
--         attempts, its last consumer having died or failed ("dead").
--   ok:   the summary is stored. Acks the job, marks the run done.
--   fail: records the error and leaves the job pending, so that it is
--         claimed again (XAUTOCLAIM) once idle ("retry"), unless that was
--         the last attempt ("dead").
-- A dead job is acked and copied to the dead-letter stream with its
-- attempts and last error; its run shows as failed.
-- KEYS[1] {summaries}:run:<acct>:<sid>  KEYS[2] {summaries}:jobs
-- KEYS[3] {summaries}:dead
-- ARGV: phase, entry id, group, run_id, max_attempts, now_ms, error
local r = redis.call('HMGET', KEYS[1], 'run_id', 'state', 'attempts', 'last_error')
local phase, id, group = ARGV[1], ARGV[2], ARGV[3]
local attempts = tonumber(r[3] or '0')
local function settle(outcome)
  redis.call('XACK', KEYS[2], group, id)
  redis.call('XDEL', KEYS[2], id)
  return outcome
end
local function dead(last_error)
  redis.call('HSET', KEYS[1], 'state', 'failed', 'last_error', last_error, 'finished_ms', ARGV[6])
  local entry = redis.call('XRANGE', KEYS[2], id, id)
  local fields = entry[1] and entry[1][2] or {}
  for _, v in ipairs({'attempts', tostring(attempts), 'last_error', last_error,
                      'dead_at_ms', ARGV[6]}) do
    table.insert(fields, v)
  end
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', 10000, '*', unpack(fields))
  return settle('dead')
end
local mine = r[1] == ARGV[4] and r[2] == 'running'
if not mine then return settle('stale') end
if phase == 'take' then
  if attempts >= tonumber(ARGV[5]) then
    local last = r[4] or ''
    return dead(last ~= '' and last or 'the consumer stopped during its last attempt')
  end
  redis.call('HSET', KEYS[1], 'attempts', attempts + 1)
  return 'go'
elseif phase == 'ok' then
  redis.call('HSET', KEYS[1], 'state', 'done', 'last_error', '', 'finished_ms', ARGV[6])
  return settle('done')
end
redis.call('HSET', KEYS[1], 'last_error', ARGV[7])
if attempts >= tonumber(ARGV[5]) then return dead(ARGV[7]) end
return 'retry'
