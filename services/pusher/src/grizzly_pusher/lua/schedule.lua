-- Durably schedule a push for a later attempt (then release our lease, if we hold one).
-- KEYS[1] due      pusher:retry:due   ZSET task id -> due time ms (ZADD)
-- KEYS[2] tasks    pusher:retry:tasks HASH task id -> PushTask JSON (HSET)
-- KEYS[3] lease    pusher:lease:{upstream}:{smsId}  (DEL if it still holds our token)
-- ARGV[1] task id, ARGV[2] due ms, ARGV[3] PushTask JSON, ARGV[4] lease token ('' = none),
-- ARGV[5] 'nx' = keep an existing entry (someone else owns this push) | 'set' = overwrite
local exists = redis.call('ZSCORE', KEYS[1], ARGV[1])
if ARGV[5] ~= 'nx' or not exists or redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
end
if ARGV[4] ~= '' and redis.call('GET', KEYS[3]) == ARGV[4] then
  redis.call('DEL', KEYS[3])
end
return 1
