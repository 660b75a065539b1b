-- Begin many push attempts in one round trip. A push has exactly one owner at a time: the holder of the token in
-- pusher:retry:owner. Its entry in pusher:retry:due (score: when the owner's hold runs out, or when the next
-- attempt is due) brings the push back to some pusher if the owner dies; nobody else pushes it meanwhile.
-- KEYS[1] due      pusher:retry:due    ZSET task id -> due time ms (ZSCORE, ZADD, ZREM)
-- KEYS[2] tasks    pusher:retry:tasks  HASH task id -> PushTask JSON (HDEL)
-- KEYS[3] owner    pusher:retry:owner  HASH task id -> owner token (HGET, HSET, HDEL)
-- Per push i (3 keys, 4 args), in order:
-- KEYS[3i+1] ledger  pusher:ledger:{upstream}:{smsId}  (EXISTS)
-- KEYS[3i+2] seen    pusher:seen:{upstream}:{smsId}    (SET NX EX)
-- KEYS[3i+3] audit   audit:act:{activationId}          (audit_append when first seen and the event is not empty)
-- ARGV[1] hold ms (from Redis's clock: a first attempt's entry, or a claimed one's renewed hold)
-- ARGV[2] seen TTL s, ARGV[3] audit retention s
-- ARGV[4i]   task id, ARGV[4i+1] token,
-- ARGV[4i+2] mode: 'new' = a first attempt (from Kafka): become the owner unless the push has an entry already;
--                  'own' = an attempt by the owner the retry schedule named (claim_retries.lua)
-- ARGV[4i+3] audit event
-- returns {status, first seen} x N; status 0 = owner (push now), 1 = delivered already, 2 = another owner has it
-- (mode new: the caller makes sure that entry holds the task), 3 = ownership lost (mode own: claimed again since)
local out = {}
local hold_until = now_ms() + tonumber(ARGV[1])
local n = (#KEYS - 3) / 3
for i = 1, n do
  local k = 3 * i
  local a = 4 * i
  local tid, token, mode = ARGV[a], ARGV[a + 1], ARGV[a + 2]
  local status = 0
  if redis.call('EXISTS', KEYS[k + 1]) == 1 then
    status = 1
    if mode == 'own' and redis.call('HGET', KEYS[3], tid) == token then
      redis.call('ZREM', KEYS[1], tid)
      redis.call('HDEL', KEYS[2], tid)
      redis.call('HDEL', KEYS[3], tid)
    end
  elseif mode == 'new' then
    if redis.call('ZSCORE', KEYS[1], tid) then
      status = 2
    else
      redis.call('ZADD', KEYS[1], hold_until, tid)
      redis.call('HSET', KEYS[3], tid, token)
    end
  elseif redis.call('HGET', KEYS[3], tid) ~= token then
    status = 3
  else
    -- still ours: the hold starts again now, so a claim that waited for a free slot still has all of it to push
    redis.call('ZADD', KEYS[1], hold_until, tid)
  end
  local first = 0
  if status == 0 then
    first = redis.call('SET', KEYS[k + 2], '1', 'NX', 'EX', ARGV[2]) and 1 or 0
    if first == 1 and ARGV[a + 3] ~= '' then
      audit_append(KEYS[k + 3], ARGV[a + 3], ARGV[3])
    end
  end
  out[#out + 1] = status
  out[#out + 1] = first
end
return out
