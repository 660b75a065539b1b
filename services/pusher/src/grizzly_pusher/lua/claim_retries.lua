-- Claim due pushes from the retry schedule: each claimed push gets a new owner token and its due time moves to the
-- end of the hold, so if this pusher dies the push becomes due again then; a token of an earlier owner stops
-- counting at once (outcome_many.lua leaves the entry alone for it).
-- An entry without a task body is a first attempt whose owner died before recording its outcome: its Kafka record was not
-- committed and comes back, so the entry is dropped and the record makes a new one.
-- KEYS[1] due      pusher:retry:due    ZSET task id -> due time ms (ZRANGEBYSCORE, ZADD, ZREM)
-- KEYS[2] tasks    pusher:retry:tasks  HASH task id -> PushTask JSON (HGET)
-- KEYS[3] owner    pusher:retry:owner  HASH task id -> owner token (HSET, HDEL)
-- ARGV[1] hold ms, ARGV[2] max tasks, ARGV[3] token prefix (unique per call); times from Redis's clock
-- returns {id1, body1, token1, id2, body2, token2, ...}
local now = now_ms()
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
local until_ms = now + tonumber(ARGV[1])
for i, id in ipairs(ids) do
  local body = redis.call('HGET', KEYS[2], id)
  if body then
    local token = ARGV[3] .. ':' .. i
    redis.call('ZADD', KEYS[1], until_ms, id)
    redis.call('HSET', KEYS[3], id, token)
    out[#out + 1] = id
    out[#out + 1] = body
    out[#out + 1] = token
  else
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[3], id)
  end
end
return out
