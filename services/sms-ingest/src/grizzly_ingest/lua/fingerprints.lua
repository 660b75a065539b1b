-- Fingerprint operations of many concurrent requests in one round trip, applied in order:
--   'd' dedupe: the smsId of a source message, assigned once (a retried source gets the same id back); unless
--               another ingest instance is publishing it, the caller gets the publish lease
--   'l' lease:  the caller's send is still in flight: its lease runs lease_ms from now
--   'r' release: the caller's send definitely failed (nothing landed): another instance may publish it now
--   'm' mark:   Kafka acknowledged the message: state published (a retried source is answered "duplicate")
-- KEYS[1]   id counter        {prefix}ingest:next-id   (next_id: grizzly_common NEXT_ID_FUNCTION)
-- KEYS[1+i] fingerprint hash  {prefix}ingest:fp:{sha256}
--           fields: id, state (new | sending | published), owner (instance holding the lease), until (ms)
-- ARGV[1] lease ms  ARGV[2] owner (the calling instance)
-- ARGV[2i+1] operation 'd' | 'l' | 'r' | 'm', ARGV[2i+2] TTL of fingerprint i in seconds
-- Returns {id, state} per operation. dedupe: "new" = publish it (the lease is the caller's), "sending" = another
-- instance holds the lease (retry later), "published" = a duplicate. lease, release, mark: {0, "ok"}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local until_ms = now + tonumber(ARGV[1])
local me = ARGV[2]
local out = {}
for i = 2, #KEYS do
  local key = KEYS[i]
  local op = ARGV[2 * i - 1]
  local ttl = tonumber(ARGV[2 * i])
  if op == 'm' then
    redis.call('HSET', key, 'state', 'published')
    redis.call('HDEL', key, 'owner', 'until')
    redis.call('EXPIRE', key, ttl)
    out[#out + 1] = 0
    out[#out + 1] = 'ok'
  elseif op == 'l' or op == 'r' then
    local cur = redis.call('HMGET', key, 'state', 'owner')
    if cur[1] == 'sending' and cur[2] == me then
      if op == 'l' then
        redis.call('HSET', key, 'until', until_ms)
      else
        redis.call('HSET', key, 'state', 'new')
      end
    end
    out[#out + 1] = 0
    out[#out + 1] = 'ok'
  else
    local cur = redis.call('HMGET', key, 'id', 'state', 'owner', 'until')
    if not cur[1] then
      local id = next_id(KEYS[1])
      redis.call('HSET', key, 'id', id, 'state', 'sending', 'owner', me, 'until', until_ms)
      redis.call('EXPIRE', key, ttl)
      out[#out + 1] = id
      out[#out + 1] = 'new'
    elseif cur[2] == 'published' then
      out[#out + 1] = tonumber(cur[1])
      out[#out + 1] = 'published'
    elseif cur[2] == 'sending' and cur[3] ~= me and tonumber(cur[4] or 0) > now then
      out[#out + 1] = tonumber(cur[1])
      out[#out + 1] = 'sending'
    else
      redis.call('HSET', key, 'state', 'sending', 'owner', me, 'until', until_ms)
      out[#out + 1] = tonumber(cur[1])
      out[#out + 1] = 'new'
    end
  end
end
return out
