-- SMS read by the pusher, for SIM health: each counts for its SIM (sms, last_sms_ms, and the streak of activations
-- without an SMS ends), and marks the number's open activation as having got one (finish.lua reads it) when that
-- activation was opened before the SMS reached ingest (an older SMS belongs to no current buyer).
-- KEYS[1] suspects set   ARGV[1] key prefix   ARGV[2] slack (ms) on the activation's start
-- ARGV[3..] pairs of number, received_ms
-- Keys touched (key.* from grizzly_pool.keys; no Redis Cluster): sh:{number}, num:{number} (read), act:{id}
-- Returns how many SMS reached an open activation.
local key = pool_keys(ARGV[1])
local slack = tonumber(ARGV[2])
local matched = 0
for i = 3, #ARGV, 2 do
  local number, received = ARGV[i], tonumber(ARGV[i + 1])
  local num = redis.call('HMGET', key.num(number), 'country', 'act')
  if num[1] then
    local sh_key = key.sh(number)
    redis.call('HINCRBY', sh_key, 'sms', 1)
    local last = tonumber(redis.call('HGET', sh_key, 'last_sms_ms') or '0')
    if received > last then redis.call('HSET', sh_key, 'last_sms_ms', received) end
    redis.call('HSET', sh_key, 'streak', 0)
    redis.call('SREM', KEYS[1], number)
    if num[2] and num[2] ~= '' then
      local act_key = key.act(num[2])
      local a = redis.call('HMGET', act_key, 'status', 'created_ms')
      if a[1] == 'open' and tonumber(a[2] or '0') <= received + slack then
        redis.call('HSET', act_key, 'sms', '1')
        matched = matched + 1
      end
    end
  end
end
return matched
