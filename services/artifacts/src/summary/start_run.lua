-- Starts a summary run, or says why not.
-- KEYS[1] {summaries}:run:<acct>:<sid>  the session's run state (hash)
-- KEYS[2] {summaries}:jobs              the job stream
-- ARGV: force (1: always a new run), run_id (for a new run), workflow_id,
--       account, session, duration_seconds, now_ms,
--       summary_exists (1: summary.json is stored), state_ttl_seconds
-- Returns {outcome, run_id, workflow_id, attempts, last_error}; outcome is
-- "started", "running" (a run is in flight: its ids), "ready" (the stored
-- summary stands, or the last run finished: the caller reads it again) or
-- "failed" (the last run was dead-lettered).
local state = redis.call('HGET', KEYS[1], 'state')
local function current(outcome)
  local r = redis.call('HMGET', KEYS[1], 'run_id', 'workflow_id', 'attempts', 'last_error')
  return {outcome, r[1] or '', r[2] or '', r[3] or '0', r[4] or ''}
end
if ARGV[1] ~= '1' then
  if state == 'running' then return current('running') end
  -- A run that finished wrote summary.json before it was marked done; the
  -- caller may have looked for the file just before that.
  if ARGV[8] == '1' or state == 'done' then return {'ready', '', '', '0', ''} end
  if state == 'failed' then return current('failed') end
end
redis.call('HSET', KEYS[1], 'state', 'running', 'run_id', ARGV[2], 'workflow_id', ARGV[3],
  'attempts', 0, 'last_error', '', 'started_ms', ARGV[7])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[9]))
redis.call('XADD', KEYS[2], '*', 'account', ARGV[4], 'session', ARGV[5], 'run', ARGV[2],
  'duration', ARGV[6])
return {'started', ARGV[2], ARGV[3], '0', ''}
