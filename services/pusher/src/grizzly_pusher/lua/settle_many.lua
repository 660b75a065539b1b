-- settle.lua for many pushes in one round trip, plus each push's audit event (written after its ledger).
-- KEYS[1] due      pusher:retry:due   ZSET task id -> due time ms (ZREM)
-- KEYS[2] tasks    pusher:retry:tasks HASH task id -> PushTask JSON (HDEL)
-- Per push i (3 keys, 4 args), in order:
-- KEYS[3i]   ledger  pusher:ledger:{upstream}:{smsId}  (SET EX, only when the ledger value is not empty)
-- KEYS[3i+1] lease   pusher:lease:{upstream}:{smsId}   (DEL if it still holds our token)
-- KEYS[3i+2] audit   audit:act:{activationId}          (RPUSH + EXPIRE when the event is not empty)
-- ARGV[1] ledger TTL s, ARGV[2] audit retention s
-- ARGV[4i-1] lease token ('' = none), ARGV[4i] ledger value ('' = do not write), ARGV[4i+1] task id,
-- ARGV[4i+2] audit event ('' = none)
local n = (#KEYS - 2) / 3
for i = 1, n do
  local k = 3 * i
  local a = 4 * i - 1
  if ARGV[a + 1] ~= '' then
    redis.call('SET', KEYS[k], ARGV[a + 1], 'EX', ARGV[1])
  end
  if ARGV[a] ~= '' and redis.call('GET', KEYS[k + 1]) == ARGV[a] then
    redis.call('DEL', KEYS[k + 1])
  end
  redis.call('ZREM', KEYS[1], ARGV[a + 2])
  redis.call('HDEL', KEYS[2], ARGV[a + 2])
  if ARGV[a + 3] ~= '' then
    redis.call('RPUSH', KEYS[k + 2], ARGV[a + 3])
    redis.call('EXPIRE', KEYS[k + 2], ARGV[2])
  end
end
return n
