-- A push is settled: delivered (ledger written) or parked; drop its retry entry and release the lease.
-- KEYS[1] ledger   pusher:ledger:{upstream}:{smsId}  (SET EX, only when ARGV[2] is not empty)
-- KEYS[2] lease    pusher:lease:{upstream}:{smsId}   (DEL if it still holds our token)
-- KEYS[3] due      pusher:retry:due   ZSET task id -> due time ms (ZREM)
-- KEYS[4] tasks    pusher:retry:tasks HASH task id -> PushTask JSON (HDEL)
-- ARGV[1] lease token, ARGV[2] ledger value ('' = do not write the ledger), ARGV[3] ledger TTL s, ARGV[4] task id
if ARGV[2] ~= '' then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
end
if ARGV[1] ~= '' and redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[2])
end
redis.call('ZREM', KEYS[3], ARGV[4])
redis.call('HDEL', KEYS[4], ARGV[4])
return 1
