-- The smsId of each source message, assigned once (a retried source gets the same id back); many per call.
-- KEYS[1]   id counter        {prefix}ingest:next-id   (same scheme as grizzly_common NEXT_ID_LUA)
-- KEYS[1+i] fingerprint hash  {prefix}ingest:fp:{sha256}   fields: id, state (new | published)
-- ARGV[i]   TTL of fingerprint i in seconds
-- Returns {id, state} x N; state "new" = publish it; "published" = Kafka already acknowledged it (a duplicate).
local out = {}
for i = 2, #KEYS do
  local cur = redis.call('HMGET', KEYS[i], 'id', 'state')
  if cur[1] then
    out[#out + 1] = tonumber(cur[1])
    out[#out + 1] = cur[2]
  else
    local id = redis.call('INCR', KEYS[1])
    if id < 1000000000000 then
      local t = redis.call('TIME')
      id = (tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)) * 1000
      redis.call('SET', KEYS[1], id)
    end
    redis.call('HSET', KEYS[i], 'id', id, 'state', 'new')
    redis.call('EXPIRE', KEYS[i], tonumber(ARGV[i - 1]))
    out[#out + 1] = id
    out[#out + 1] = 'new'
  end
end
return out
