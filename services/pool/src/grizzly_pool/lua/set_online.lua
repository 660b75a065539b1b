-- Mark SIMs online or offline. An offline number leaves its group's free set (so it is neither counted nor
-- claimed); a busy number only changes its flag and returns to the free set (if online) when its activation ends.
-- KEYS    none (all keys depend on the numbers)
-- ARGV[1] key prefix; ARGV[2] "1" (online) or "0" (offline); ARGV[3..] numbers
-- Keys touched per number (built here from the number's stored fields; no Redis Cluster): num:{number},
-- hist:{number} (read), free:{group}, bf:{group}, and the claim indexes cg:{country} and og:{country}|{operator}
-- (sets of groups with a non-empty free set, see claim.lua)
-- Returns {changed, missing}
local prefix, online = ARGV[1], ARGV[2]
local changed, missing = 0, 0
for i = 3, #ARGV do
  local number = ARGV[i]
  local num_key = prefix .. 'num:' .. number
  local f = redis.call('HMGET', num_key, 'country', 'operator', 'device', 'online', 'act')
  if not f[1] then
    missing = missing + 1
  elseif f[4] ~= online then
    redis.call('HSET', num_key, 'online', online)
    if not f[5] or f[5] == '' then
      local group = f[1] .. '|' .. f[2] .. '|' .. f[3]
      local free_key = prefix .. 'free:' .. group
      local delta = 1
      if online == '1' then
        redis.call('SADD', free_key, number)
        if redis.call('SCARD', free_key) == 1 then
          redis.call('SADD', prefix .. 'cg:' .. f[1], group)
          redis.call('SADD', prefix .. 'og:' .. f[1] .. '|' .. f[2], group)
        end
      else
        redis.call('SREM', free_key, number)
        if redis.call('SCARD', free_key) == 0 then
          redis.call('SREM', prefix .. 'cg:' .. f[1], group)
          redis.call('SREM', prefix .. 'og:' .. f[1] .. '|' .. f[2], group)
        end
        delta = -1
      end
      local hist = redis.call('HKEYS', prefix .. 'hist:' .. number)
      for _, field in ipairs(hist) do
        if string.sub(field, 1, 2) == 'b:' then
          redis.call('HINCRBY', prefix .. 'bf:' .. group, string.sub(field, 3), delta)
        end
      end
    end
    changed = changed + 1
  end
end
return {changed, missing}
