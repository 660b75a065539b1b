-- Add numbers to the inventory (bulk: one call per batch of rows). Existing numbers are left untouched.
-- KEYS[1]  groups hash   {prefix}groups   "country|operator|device" -> how many numbers the group holds
-- KEYS[2]  numbers set   {prefix}numbers  every number in the inventory
-- KEYS[3]  devices set   {prefix}devices  every device that holds a number
-- ARGV[1]  key prefix (e.g. "gp:")
-- ARGV[2..] rows of 8 fields: number, country, operator, device, slot, online (1/0), flashcall (1/0), voice (1/0)
-- Keys touched per row (built here from the prefix and the row, because they depend on the row's values; Redis
-- Cluster is not supported by this script): num:{number}, hist:{number}, slots:{device}, dev:{device},
-- free:{country|operator|device}, bf:{country|operator|device}, and the claim indexes of an online row's group:
-- cg:{country} and og:{country}|{operator} (sets of groups with a non-empty free set, see claim.lua)
-- Returns {added, existing, conflicts...}: conflicts are the numbers skipped because their (device, slot) already
-- holds another number.
local prefix = ARGV[1]
local added, existing = 0, 0
local indexed = {}  -- groups already put in the claim indexes by this call
local conflicts = {}
for i = 2, #ARGV, 8 do
  local number, country, operator, device, slot = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local online, flashcall, voice = ARGV[i + 5], ARGV[i + 6], ARGV[i + 7]
  local num_key = prefix .. 'num:' .. number
  local slots_key = prefix .. 'slots:' .. device
  if redis.call('EXISTS', num_key) == 1 then
    existing = existing + 1
  else
    local holder = redis.call('HGET', slots_key, slot)
    if holder and holder ~= number then
      conflicts[#conflicts + 1] = number
    else
      local group = country .. '|' .. operator .. '|' .. device
      local dev_key = prefix .. 'dev:' .. device
      redis.call('HSET', num_key, 'country', country, 'operator', operator, 'device', device, 'slot', slot,
        'online', online, 'flashcall', flashcall, 'voice', voice, 'act', '')
      redis.call('HSET', slots_key, slot, number)
      redis.call('SADD', KEYS[2], number)
      redis.call('SADD', KEYS[3], device)
      redis.call('HINCRBY', KEYS[1], group, 1)
      redis.call('HSETNX', dev_key, 'online', '1')
      redis.call('HSETNX', dev_key, 'cap', '0')
      redis.call('HSETNX', dev_key, 'active', '0')
      redis.call('HINCRBY', dev_key, 'numbers', 1)
      if online == '1' then
        redis.call('SADD', prefix .. 'free:' .. group, number)
        if not indexed[group] then
          redis.call('SADD', prefix .. 'cg:' .. country, group)
          redis.call('SADD', prefix .. 'og:' .. country .. '|' .. operator, group)
          indexed[group] = true
        end
        -- a re-added number keeps its per-service history: count it as blocked-and-free where it is blocked
        local hist = redis.call('HKEYS', prefix .. 'hist:' .. number)
        for _, field in ipairs(hist) do
          if string.sub(field, 1, 2) == 'b:' then
            redis.call('HINCRBY', prefix .. 'bf:' .. group, string.sub(field, 3), 1)
          end
        end
      end
      added = added + 1
    end
  end
end
local result = {added, existing}
for _, number in ipairs(conflicts) do result[#result + 1] = number end
return result
