-- Record the outcome of many push attempts in one round trip: the ledger (always), then, only while the caller still owns the push,
-- its retry entry (removed, or rescheduled with the ownership released), then the attempt's audit event.
-- A caller whose hold ran out (a Redis outage longer than the hold) no longer owns the push: a failed attempt then
-- only makes sure some entry holds the task (as offer.lua does), so the push is never lost; the ledger check at
-- every begin keeps it from being pushed after a SUCCESS.
-- KEYS[1] due      pusher:retry:due    ZSET task id -> due time ms (ZADD, ZREM)
-- KEYS[2] tasks    pusher:retry:tasks  HASH task id -> PushTask JSON (HSET, HDEL)
-- KEYS[3] owner    pusher:retry:owner  HASH task id -> owner token (HGET, HDEL)
-- Per push i (2 keys, 6 args), in order:
-- KEYS[2i+2] ledger  pusher:ledger:{upstream}:{smsId}  (SET EX when the ledger value is not empty)
-- KEYS[2i+3] audit   audit:act:{activationId}          (audit_append when the event is not empty)
-- ARGV[1] ledger TTL s, ARGV[2] audit retention s
-- ARGV[6i-3] task id, ARGV[6i-2] owner token, ARGV[6i-1] ledger value ('' = do not write),
-- ARGV[6i] ms until the next attempt, from Redis's clock ('' = done: remove the entry), ARGV[6i+1] PushTask JSON for the next attempt,
-- ARGV[6i+2] audit event ('' = none)
-- returns {owned} x N: 0 when another owner holds the push now (its entry was left alone)
local out = {}
local now = now_ms()
local n = (#KEYS - 3) / 2
for i = 1, n do
  local k = 2 * i + 2
  local a = 6 * i - 3
  local tid = ARGV[a]
  if ARGV[a + 2] ~= '' then
    redis.call('SET', KEYS[k], ARGV[a + 2], 'EX', ARGV[1])
  end
  local owned = redis.call('HGET', KEYS[3], tid) == ARGV[a + 1]
  if owned then
    redis.call('HDEL', KEYS[3], tid)
    if ARGV[a + 3] == '' then
      redis.call('ZREM', KEYS[1], tid)
      redis.call('HDEL', KEYS[2], tid)
    else
      redis.call('ZADD', KEYS[1], now + tonumber(ARGV[a + 3]), tid)
      redis.call('HSET', KEYS[2], tid, ARGV[a + 4])
    end
  elseif ARGV[a + 3] ~= '' then
    if redis.call('ZSCORE', KEYS[1], tid) then
      redis.call('HSETNX', KEYS[2], tid, ARGV[a + 4])
    else
      redis.call('ZADD', KEYS[1], now + tonumber(ARGV[a + 3]), tid)
      redis.call('HSET', KEYS[2], tid, ARGV[a + 4])
    end
  end
  if ARGV[a + 5] ~= '' then
    audit_append(KEYS[k + 1], ARGV[a + 5], ARGV[2])
  end
  out[#out + 1] = owned and 1 or 0
end
return out
