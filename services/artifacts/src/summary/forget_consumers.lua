-- Removes the group's consumers that are gone: idle longer than ARGV[2] ms
-- with nothing pending (a restarted process is a new consumer, so each
-- restart leaves one behind). The check and the removal are one step, so a
-- consumer that took a job meanwhile is never removed with it.
-- KEYS[1] the stream   ARGV[1] the group   ARGV[2] idle threshold (ms)
-- ARGV[3] the caller's own consumer (kept)
-- Returns how many were removed.
local removed = 0
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local f = {}
  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
  if f['name'] ~= ARGV[3] and tonumber(f['pending']) == 0
      and tonumber(f['idle']) > tonumber(ARGV[2]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], f['name'])
    removed = removed + 1
  end
end
return removed
