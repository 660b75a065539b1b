-- The multipart groups whose deadline passed, leased to this caller: their deadline moves lease_ms ahead,
-- so another ingest instance does not publish them at the same time, and a failed publish is retried later.
-- KEYS[1] pending zset {prefix}ingest:mp-pending (member = group key, score = deadline ms)
-- ARGV[1] now ms  ARGV[2] lease ms  ARGV[3] max groups
-- Returns the group keys.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local until_ms = tonumber(ARGV[1]) + tonumber(ARGV[2])
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], until_ms, member)
end
return due
