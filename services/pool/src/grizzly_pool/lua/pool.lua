-- Shared pool functions, prepended by load_lua (after the key functions of grizzly_pool.keys) to every script that
-- changes a free set: claim, finish, release, add_numbers, remove_numbers, set_online. Redis scripts cannot import,
-- and these rules must be the same everywhere, or the counts and the claim indexes drift:
--   free:{group}          numbers of the group that are online and not in an open activation
--   bf:{group}            service -> how many of those are blocked for it (b:{service} in hist:{number})
--   cg:{country}, og:{country}|{operator}   claim indexes: the groups whose free set is not empty
-- `key` is pool_keys(prefix); a group is "country|operator|device".

-- the group joins (on) or leaves the claim indexes of its country and operator
local function set_indexed(key, group, on)
  local country, operator = split_group(group)
  local command = on and 'SADD' or 'SREM'
  redis.call(command, key.cg(country), group)
  redis.call(command, key.og(country, operator), group)
end

-- a number joins (delta 1) or leaves (-1) the free set: one blocked-free counter per service it is blocked for
local function count_blocked(key, group, number, delta)
  for _, field in ipairs(redis.call('HKEYS', key.hist(number))) do
    if string.sub(field, 1, 2) == 'b:' then redis.call('HINCRBY', key.bf(group), string.sub(field, 3), delta) end
  end
end

local function add_free(key, group, number)
  local free_key = key.free(group)
  redis.call('SADD', free_key, number)
  if redis.call('SCARD', free_key) == 1 then set_indexed(key, group, true) end
  count_blocked(key, group, number, 1)
end

local function remove_free(key, group, number)
  local free_key = key.free(group)
  redis.call('SREM', free_key, number)
  if redis.call('SCARD', free_key) == 0 then set_indexed(key, group, false) end
  count_blocked(key, group, number, -1)
end

-- an activation ends (finish or release, so both free a number the same way): its device module comes back, the
-- number's act is cleared if it is still this activation, and an online number returns to its free set
local function free_number(key, id, number, country, operator, device)
  redis.call('HINCRBY', key.dev(device), 'active', -1)
  local num_key = key.num(number)
  local f = redis.call('HMGET', num_key, 'act', 'online')
  if f[1] ~= id then return end
  redis.call('HSET', num_key, 'act', '', 'last_act', f[1])
  if f[2] ~= '1' then return end
  add_free(key, group_of(country, operator, device), number)
end
