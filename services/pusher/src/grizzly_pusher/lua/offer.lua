-- Hand a push to the retry schedule without owning it: the task body goes into the push's entry.
-- KEYS[1] due      pusher:retry:due    ZSET task id -> due time ms (ZSCORE, ZADD)
-- KEYS[2] tasks    pusher:retry:tasks  HASH task id -> PushTask JSON (HSETNX)
-- ARGV[1] task id, ARGV[2] ms until it is due (Redis's clock), ARGV[3] PushTask JSON,
-- ARGV[4] '1' = create the entry if there is none | '0' = only fill an existing entry that has no body yet
-- (a record read again while another pusher owns its push: that owner's death must not lose it)
-- returns 1 when the entry holds a body now, 0 when there was no entry to fill
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[3])
  return 1
end
if ARGV[4] == '1' then
  redis.call('ZADD', KEYS[1], now_ms() + tonumber(ARGV[2]), ARGV[1])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
  return 1
end
return 0
