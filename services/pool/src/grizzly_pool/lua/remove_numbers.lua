-- Remove numbers from the inventory. A number in an open activation is not removed (finish it first); its
-- per-service history (hist:{number}) is kept, so a number removed and added again is still blocked where it was.
-- KEYS[1]  groups hash  {prefix}groups
-- KEYS[2]  devices set  {prefix}devices
-- ARGV[1]  key prefix; ARGV[2..] numbers
-- Keys touched per number (key.* from grizzly_pool.keys, built from the number's stored fields; no Redis Cluster):
-- num:{number}, slots:{device}, dev:{device}, dg:{device}, co, and for an online number what remove_free and the
-- tracker touch (pool.lua: hist:{number} (read), free:{group}, bf:{group}, totals, the count terms cs:/ca:, the
-- claim indexes cg:/og:)
-- Returns {removed, missing, busy...}: busy lists the numbers left in place because an activation is open.
local key = pool_keys(ARGV[1])
local t = tracker(key)
local removed, missing = 0, 0
local busy = {}
for i = 2, #ARGV do
  local number = ARGV[i]
  local num_key = key.num(number)
  local f = redis.call('HMGET', num_key, 'country', 'operator', 'device', 'slot', 'online', 'act')
  if not f[1] then
    missing = missing + 1
  elseif f[6] and f[6] ~= '' then
    busy[#busy + 1] = number
  else
    local group = group_of(f[1], f[2], f[3])
    t:touch(f[3], group)
    if f[5] == '1' then remove_free(t, group, number) end
    local slots_key = key.slots(f[3])
    if redis.call('HGET', slots_key, f[4]) == number then redis.call('HDEL', slots_key, f[4]) end
    if redis.call('HINCRBY', KEYS[1], group, -1) <= 0 then
      redis.call('HDEL', KEYS[1], group)
      redis.call('SREM', key.dg(f[3]), group)
    end
    local co = f[1] .. '|' .. f[2]
    if redis.call('HINCRBY', key.fixed('co'), co, -1) <= 0 then redis.call('HDEL', key.fixed('co'), co) end
    local dev_key = key.dev(f[3])
    if redis.call('HINCRBY', dev_key, 'numbers', -1) <= 0 and tonumber(redis.call('HGET', dev_key, 'active') or '0') <= 0 then
      redis.call('DEL', dev_key)
      redis.call('SREM', KEYS[2], f[3])
    end
    redis.call('DEL', num_key)
    removed = removed + 1
  end
end
t:commit()
local result = {removed, missing}
for _, number in ipairs(busy) do result[#result + 1] = number end
return result
