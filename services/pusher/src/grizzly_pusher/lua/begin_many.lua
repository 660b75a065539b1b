-- begin.lua for many pushes in one round trip, plus the "sms" audit event of a push seen for the first time.
-- Per push i (4 keys, 2 args), in order; each push is handled exactly as begin.lua handles one:
-- KEYS[4i-3] ledger   pusher:ledger:{upstream}:{smsId}  (read)
-- KEYS[4i-2] lease    pusher:lease:{upstream}:{smsId}   (SET NX PX)
-- KEYS[4i-1] seen     pusher:seen:{upstream}:{smsId}    (SET NX EX)
-- KEYS[4i]   audit    audit:act:{activationId}          (RPUSH + EXPIRE when first seen and the event is not empty)
-- ARGV[1] lease ms, ARGV[2] seen TTL s, ARGV[3] audit retention s; ARGV[2+2i] lease token, ARGV[3+2i] audit event
-- returns {delivered, lease acquired, first seen} x N (0|1 each)
local out = {}
local n = #KEYS / 4
for i = 1, n do
  local k = 4 * (i - 1)
  if redis.call('EXISTS', KEYS[k + 1]) == 1 then
    out[#out + 1] = 1
    out[#out + 1] = 0
    out[#out + 1] = 0
  else
    local first = redis.call('SET', KEYS[k + 3], '1', 'NX', 'EX', ARGV[2]) and 1 or 0
    local got = redis.call('SET', KEYS[k + 2], ARGV[2 + 2 * i], 'NX', 'PX', ARGV[1]) and 1 or 0
    local event = ARGV[3 + 2 * i]
    if first == 1 and event ~= '' then
      redis.call('RPUSH', KEYS[k + 4], event)
      redis.call('EXPIRE', KEYS[k + 4], ARGV[3])
    end
    out[#out + 1] = 0
    out[#out + 1] = got
    out[#out + 1] = first
  end
end
return out
