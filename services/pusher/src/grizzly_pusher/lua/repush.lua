-- An operator's re-push: hand a parked push back to the retry schedule and remove it from the parked stream, in one
-- step (it is never in both, nor in neither). The retrier then claims it like any retry: a new owner token, the
-- ledger checked again in begin_many.lua, so it is never pushed after a SUCCESS, with the same smsId.
-- KEYS[1] due      pusher:retry:due    ZSET task id -> due time ms (ZSCORE, ZADD)
-- KEYS[2] tasks    pusher:retry:tasks  HASH task id -> PushTask JSON (HSET, HSETNX)
-- KEYS[3] parked   pusher:parked       stream of parked records (XRANGE, XDEL)
-- KEYS[4] ledger   pusher:ledger:{upstream}:{smsId} (EXISTS; for a push whose upstream is not known yet, a key that
--                  never exists: the retrier looks the number up and the ledger is checked when it begins)
-- KEYS[5] audit    audit:act:{activationId} (audit_append when the event is not empty)
-- ARGV[1] parked entry id, ARGV[2] task id, ARGV[3] PushTask JSON, ARGV[4] audit event ('' = none),
-- ARGV[5] audit retention s
-- returns 'gone' (no such parked entry: re-pushed or deleted meanwhile), 'delivered' (the ledger says delivered:
-- removed from the parked stream, nothing scheduled), 'scheduled' (due now; if the push already had an entry, that
-- entry keeps its owner and due time and only gets the body if it had none, as offer.lua does)
if #redis.call('XRANGE', KEYS[3], ARGV[1], ARGV[1]) == 0 then
  return 'gone'
end
local outcome = 'scheduled'
if redis.call('EXISTS', KEYS[4]) == 1 then
  outcome = 'delivered'
elseif redis.call('ZSCORE', KEYS[1], ARGV[2]) then
  redis.call('HSETNX', KEYS[2], ARGV[2], ARGV[3])
else
  redis.call('ZADD', KEYS[1], now_ms(), ARGV[2])
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
end
redis.call('XDEL', KEYS[3], ARGV[1])
if ARGV[4] ~= '' then
  audit_append(KEYS[5], ARGV[4], ARGV[5])
end
return outcome
