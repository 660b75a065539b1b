-- Claim due retry tasks: each claimed task's due time moves to now + lease, so if this pusher dies
-- the task becomes due again once the lease runs out. A finished task is removed by settle.lua or
-- moved to its next due time by schedule.lua.
-- KEYS[1] due      pusher:retry:due   ZSET task id -> due time ms (ZRANGEBYSCORE, ZADD, ZREM orphans)
-- KEYS[2] tasks    pusher:retry:tasks HASH task id -> PushTask JSON (HGET)
-- ARGV[1] now ms, ARGV[2] lease ms, ARGV[3] max tasks
-- returns {id1, body1, id2, body2, ...}
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
local until_ms = tonumber(ARGV[1]) + tonumber(ARGV[2])
for _, id in ipairs(ids) do
  local body = redis.call('HGET', KEYS[2], id)
  if body then
    redis.call('ZADD', KEYS[1], until_ms, id)
    table.insert(out, id)
    table.insert(out, body)
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
