-- Device liveness from the hardware's own heartbeats (GoIP keepalive, Android SMS Gateway's system:ping, Ejoin's
-- port status, relayed by sms-ingest). A device that has sent one is swept as dead once it is silent for longer
-- than the timeout, and counts again at its next heartbeat; a device that never sent one is never swept. Dead is
-- a flag of its own (`alive` 0 in dev:{device}), apart from the operator's `online`, so neither undoes the other.
--   mode "seen":  ARGV[3..] devices that sent a heartbeat now; returns {known, revived...}
--   mode "sweep": ARGV[3] timeout (ms), ARGV[4] the most to mark per run; returns the devices marked dead
-- KEYS[1] devices set   {prefix}devices
-- KEYS[2] seen zset     {prefix}seen: device -> last heartbeat (ms, Redis clock), for devices not marked dead
-- ARGV[1] key prefix   ARGV[2] mode
-- Keys touched (key.* from grizzly_pool.keys; no Redis Cluster): dev:{device} (seen_ms, alive), and what the
-- tracker touches when a device dies or comes back (pool.lua: the count terms cs:/ca:, the indexes cg:/og:)
local key = pool_keys(ARGV[1])
local clock = redis.call('TIME')
local now_ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local t = tracker(key)
local out = {}
if ARGV[2] == 'seen' then
  local known = 0
  for i = 3, #ARGV do
    local device = ARGV[i]
    if redis.call('SISMEMBER', KEYS[1], device) == 1 then
      known = known + 1
      local dev_key = key.dev(device)
      redis.call('ZADD', KEYS[2], now_ms, device)
      if redis.call('HGET', dev_key, 'alive') == '0' then
        t:touch(device, nil, true)
        out[#out + 1] = device
      end
      redis.call('HSET', dev_key, 'seen_ms', now_ms, 'alive', '1')
    end
  end
  t:commit()
  table.insert(out, 1, known)
  return out
end
for _, device in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now_ms - tonumber(ARGV[3]), 'LIMIT', 0,
    tonumber(ARGV[4]))) do
  redis.call('ZREM', KEYS[2], device)
  if redis.call('SISMEMBER', KEYS[1], device) == 1 then
    t:touch(device, nil, true)
    redis.call('HSET', key.dev(device), 'alive', '0')
    out[#out + 1] = device
  end
end
t:commit()
return out
