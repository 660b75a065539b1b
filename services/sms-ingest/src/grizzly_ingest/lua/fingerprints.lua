-- Fingerprint operations of many concurrent requests in one round trip, applied in order:
--   'd' dedupe: the smsId of a source message, assigned once (a retried source gets the same id back)
--   'm' mark:   Kafka acknowledged the message: state published (a retried source is answered "duplicate")
-- KEYS[1]   id counter        {prefix}ingest:next-id   (next_id: grizzly_common NEXT_ID_FUNCTION)
-- KEYS[1+i] fingerprint hash  {prefix}ingest:fp:{sha256}   fields: id, state (new | published)
-- ARGV[2i-1] operation 'd' | 'm', ARGV[2i] TTL of fingerprint i in seconds
-- Returns {id, state} per operation; dedupe: state "new" = publish it, "published" = a duplicate; mark: {0, "ok"}.
local out = {}
for i = 2, #KEYS do
  local key = KEYS[i]
  local ttl = tonumber(ARGV[2 * i - 2])
  if ARGV[2 * i - 3] == 'm' then
    redis.call('HSET', key, 'state', 'published')
    redis.call('EXPIRE', key, ttl)
    out[#out + 1] = 0
    out[#out + 1] = 'ok'
  else
    local cur = redis.call('HMGET', key, 'id', 'state')
    if cur[1] then
      out[#out + 1] = tonumber(cur[1])
      out[#out + 1] = cur[2]
    else
      local id = next_id(KEYS[1])
      redis.call('HSET', key, 'id', id, 'state', 'new')
      redis.call('EXPIRE', key, ttl)
      out[#out + 1] = id
      out[#out + 1] = 'new'
    end
  end
end
return out
