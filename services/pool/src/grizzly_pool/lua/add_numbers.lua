-- Add numbers to the inventory (bulk: one call per batch of rows). Existing numbers are left untouched.
-- KEYS[1]  groups hash   {prefix}groups   "country|operator|device" -> how many numbers the group holds
-- KEYS[2]  devices set   {prefix}devices  every device that holds a number
-- ARGV[1]  key prefix (e.g. "gp:")
-- ARGV[2..] rows of 8 fields: number, country, operator, device, slot, online (1/0), flashcall (1/0), voice (1/0)
-- Keys touched per row (key.* from grizzly_pool.keys, because they depend on the row's values; Redis Cluster is
-- not supported by this script): num:{number}, hist:{number}, slots:{device}, dev:{device}, dg:{device}, co, and
-- for an online row what add_free and the tracker touch (pool.lua: free:{group}, bf:{group}, totals, the count
-- terms cs:/ca:, the claim indexes cg:/og:)
-- Returns {added, existing, conflicts...}: conflicts are the numbers skipped because their (device, slot) already
-- holds another number.
local key = pool_keys(ARGV[1])
local t = tracker(key)
-- the first numbers of an empty inventory: this layout from the start, nothing for migrate.lua to build
if redis.call('HLEN', KEYS[1]) == 0 then redis.call('SET', key.fixed('layout'), '2') end
local added, existing = 0, 0
local conflicts = {}
for i = 2, #ARGV, 8 do
  local number, country, operator, device, slot = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local online, flashcall, voice = ARGV[i + 5], ARGV[i + 6], ARGV[i + 7]
  local num_key = key.num(number)
  local slots_key = key.slots(device)
  if redis.call('EXISTS', num_key) == 1 then
    existing = existing + 1
  else
    local holder = redis.call('HGET', slots_key, slot)
    if holder and holder ~= number then
      conflicts[#conflicts + 1] = number
    else
      local group = group_of(country, operator, device)
      local dev_key = key.dev(device)
      redis.call('HSET', num_key, 'country', country, 'operator', operator, 'device', device, 'slot', slot,
        'online', online, 'flashcall', flashcall, 'voice', voice, 'act', '')
      redis.call('HSET', slots_key, slot, number)
      if redis.call('SADD', KEYS[2], device) == 1 then
        -- a new device (or one removed before, whose hash may still count open activations)
        redis.call('HSETNX', dev_key, 'online', '1')
        redis.call('HSETNX', dev_key, 'cap', '0')
        redis.call('HSETNX', dev_key, 'active', '0')
      end
      if redis.call('HINCRBY', KEYS[1], group, 1) == 1 then redis.call('SADD', key.dg(device), group) end
      redis.call('HINCRBY', key.fixed('co'), country .. '|' .. operator, 1)
      redis.call('HINCRBY', dev_key, 'numbers', 1)
      -- a re-added number keeps its per-service history, so add_free counts it as blocked where it is blocked
      if online == '1' then add_free(t, group, number) end
      added = added + 1
    end
  end
end
t:commit()
local result = {added, existing}
for _, number in ipairs(conflicts) do result[#result + 1] = number end
return result
