-- Remove numbers from the inventory. A number in an open activation is not removed (finish it first); its
-- per-service history (hist:{number}) is kept, so a number removed and added again is still blocked where it was.
-- KEYS[1]  groups hash  {prefix}groups
-- KEYS[2]  numbers set  {prefix}numbers
-- KEYS[3]  devices set  {prefix}devices
-- ARGV[1]  key prefix; ARGV[2..] numbers
-- Keys touched per number (built here from the number's stored fields; no Redis Cluster): num:{number},
-- hist:{number} (read), slots:{device}, dev:{device}, free:{group}, bf:{group}, and the claim indexes
-- cg:{country} and og:{country}|{operator} (a group whose free set empties leaves them, see claim.lua)
-- Returns {removed, missing, busy...}: busy lists the numbers left in place because an activation is open.
local prefix = ARGV[1]
local removed, missing = 0, 0
local busy = {}
for i = 2, #ARGV do
  local number = ARGV[i]
  local num_key = prefix .. 'num:' .. number
  local f = redis.call('HMGET', num_key, 'country', 'operator', 'device', 'slot', 'online', 'act')
  if not f[1] then
    missing = missing + 1
  elseif f[6] and f[6] ~= '' then
    busy[#busy + 1] = number
  else
    local group = f[1] .. '|' .. f[2] .. '|' .. f[3]
    if f[5] == '1' then
      local free_key = prefix .. 'free:' .. group
      redis.call('SREM', free_key, number)
      if redis.call('SCARD', free_key) == 0 then
        redis.call('SREM', prefix .. 'cg:' .. f[1], group)
        redis.call('SREM', prefix .. 'og:' .. f[1] .. '|' .. f[2], group)
      end
      local hist = redis.call('HKEYS', prefix .. 'hist:' .. number)
      for _, field in ipairs(hist) do
        if string.sub(field, 1, 2) == 'b:' then
          redis.call('HINCRBY', prefix .. 'bf:' .. group, string.sub(field, 3), -1)
        end
      end
    end
    local slots_key = prefix .. 'slots:' .. f[3]
    if redis.call('HGET', slots_key, f[4]) == number then redis.call('HDEL', slots_key, f[4]) end
    redis.call('SREM', KEYS[2], number)
    if redis.call('HINCRBY', KEYS[1], group, -1) <= 0 then redis.call('HDEL', KEYS[1], group) end
    local dev_key = prefix .. 'dev:' .. f[3]
    if redis.call('HINCRBY', dev_key, 'numbers', -1) <= 0 and tonumber(redis.call('HGET', dev_key, 'active') or '0') <= 0 then
      redis.call('DEL', dev_key)
      redis.call('SREM', KEYS[3], f[3])
    end
    redis.call('DEL', num_key)
    removed = removed + 1
  end
end
local result = {removed, missing}
for _, number in ipairs(busy) do result[#result + 1] = number end
return result
