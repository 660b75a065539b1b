-- The smsId of one source message, assigned once: a retried source gets the same id back.
-- KEYS[1] fingerprint hash  {prefix}ingest:fp:{sha256}   fields: id, state (new | published)
-- KEYS[2] id counter        {prefix}ingest:next-id        (same scheme as grizzly_common NEXT_ID_LUA)
-- ARGV[1] TTL of the fingerprint in seconds
-- Returns {id, state}: state "new" = publish it; "published" = Kafka already acknowledged it (a duplicate).
local cur = redis.call('HMGET', KEYS[1], 'id', 'state')
if cur[1] then
  return {tonumber(cur[1]), cur[2]}
end
local id = redis.call('INCR', KEYS[2])
if id < 1000000000000 then
  local t = redis.call('TIME')
  id = (tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)) * 1000
  redis.call('SET', KEYS[2], id)
end
redis.call('HSET', KEYS[1], 'id', id, 'state', 'new')
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
return {id, 'new'}
