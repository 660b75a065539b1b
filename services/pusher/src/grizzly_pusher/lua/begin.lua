-- Before a push attempt: is it already delivered? take the push lease; first time this SMS is seen?
-- KEYS[1] ledger   pusher:ledger:{upstream}:{smsId}  (read)
-- KEYS[2] lease    pusher:lease:{upstream}:{smsId}   (SET NX PX)
-- KEYS[3] seen     pusher:seen:{upstream}:{smsId}    (SET NX EX)
-- ARGV[1] lease token (unique per attempt), ARGV[2] lease ms, ARGV[3] seen TTL s
-- returns {delivered 0|1, lease acquired 0|1, first seen 0|1}
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {1, 0, 0}
end
local first = redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[3]) and 1 or 0
local got = redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0
return {0, got, first}
