-- Shared pool functions, prepended by load_lua (after the key functions of grizzly_pool.keys) to every script that
-- changes a free set or a device: claim, finish, release, add_numbers, remove_numbers, set_online, set_device,
-- migrate. Redis scripts cannot import, and these rules must be the same everywhere, or the counts and the claim
-- indexes drift:
--   free:{group}          numbers of the group that are online and not in an open activation
--   bf:{group}            service -> how many of those are blocked for it (b:{service} in hist:{number})
--   cs:{country}|{op}     count terms of the split rows: '_' = T, service -> D; count = T - D (see below)
--   ca:{country}          the same for the country's `any` row
--   cg:{country}, og:{country}|{operator}   claim indexes: the groups whose free set is not empty and whose
--                         device can take an activation now (online, below its module cap)
--   totals                `free`: how many numbers are free (the size of every free set together)
-- `key` is pool_keys(prefix); a group is "country|operator|device".
--
-- The counts are kept per device, as its contribution to each row. With L the device's room (0 when offline or dead,
-- cap - active when capped, unbounded when cap is 0), F the size of a group's free set and B(s) its blocked-free
-- counter for service s, a group gives its split row min(F, L) - [min(F, L) - min(F - B(s), L)] and the device
-- gives its country's `any` row the same with F and B summed over its groups of that country. The first part
-- (T, one value per row) and the bracket (D, only for services with B(s) > 0) are kept in cs:/ca:, so a count is
-- T - D(s), read without looking at any device. Every change to a device goes through a tracker: touch() takes
-- the device's contribution before the change, commit() takes it after and adds the difference. An uncapped,
-- online device contributes F - B(s) per group, additively, so only the groups that changed are read; a capped or
-- offline one is read whole (its room is shared by all its groups).

-- a device's room (the most activations it can take now); nil = no limit. dev = HMGET online, cap, active, alive:
-- offline by the operator (online 0) or by its heartbeats (alive 0, seen.lua) gives no room
local function room(dev)
  if dev[1] == '0' or dev[4] == '0' then return 0 end
  local cap = tonumber(dev[2] or '0')
  if cap <= 0 then return nil end
  return math.max(0, cap - tonumber(dev[3] or '0'))
end

local function limit(value, left)
  if left and left < value then return left end
  return value
end

local function add_term(acc, term, field, value)
  if value == 0 then return end
  local row = acc[term]
  if not row then
    row = {}
    acc[term] = row
  end
  row[field] = (row[field] or 0) + value
end

-- a group's free-set size and blocked-free counters ({f = F, b = {service = B(s)}}), read once per script: the
-- tracker keeps them up to date as add_free / remove_free change them, so commit() need not read them again (f may
-- be known before b: touch() with read.size)
local function group_state(key, cache, group)
  local g = cache[group]
  if not g then
    g = {f = redis.call('SCARD', key.free(group))}
    cache[group] = g
  end
  if not g.b then
    g.b = {}
    if g.f > 0 then
      local blocked = redis.call('HGETALL', key.bf(group))
      for i = 1, #blocked, 2 do g.b[blocked[i]] = tonumber(blocked[i + 1]) end
    end
  end
  return g
end

-- add sign * (the contribution of these groups of one device, with room `left`) to acc; returns group -> F
local function contribute(key, cache, groups, left, acc, sign)
  local sizes, countries = {}, {}
  for _, group in ipairs(groups) do
    local country, operator = split_group(group)
    local g = group_state(key, cache, group)
    local f = g.f
    sizes[group] = f
    local c = countries[country]
    if not c then
      c = {f = 0, b = {}}
      countries[country] = c
    end
    c.f = c.f + f
    if f > 0 then
      local term = key.cs(country, operator)
      local t = limit(f, left)
      add_term(acc, term, '_', sign * t)
      for service, b in pairs(g.b) do
        if b > 0 then
          add_term(acc, term, service, sign * (t - limit(f - b, left)))
          c.b[service] = (c.b[service] or 0) + b
        end
      end
    end
  end
  for country, c in pairs(countries) do
    if c.f > 0 then
      local term = key.ca(country)
      local t = limit(c.f, left)
      add_term(acc, term, '_', sign * t)
      for service, b in pairs(c.b) do add_term(acc, term, service, sign * (t - limit(c.f - b, left))) end
    end
  end
  return sizes
end

local function set_indexed(key, group, on)
  local country, operator = split_group(group)
  local command = on and 'SADD' or 'SREM'
  redis.call(command, key.cg(country), group)
  redis.call(command, key.og(country, operator), group)
end

local function members(key, device)
  return redis.call('SMEMBERS', key.dg(device))
end

-- tracker: call t:touch(device, group) before changing anything a device's contribution depends on (its free
-- sets, blocked-free counters, active, online, cap), t:commit() once at the end of the script.
-- exact: the script changes device hashes only through t:add_active (claim, finish, release), so commit() takes
-- the device's room from what touch() read and add_active changed, without reading the device again
local Tracker = {}
Tracker.__index = Tracker

local function tracker(key, exact)
  return setmetatable({key = key, devices = {}, acc = {}, groups = {}, exact = exact}, Tracker)
end

-- whole: read the whole device even if it has no limit (set_device: the limit itself changes). read: what this
-- run read already and has not changed since, not read again: dev (HMGET online, cap, active, alive of the
-- device), size (SCARD of the group's free set)
function Tracker:touch(device, group, whole, read)
  local d = self.devices[device]
  if not d then
    if read and read.size and group and not self.groups[group] then self.groups[group] = {f = read.size} end
    local dev = (read and read.dev) or redis.call('HMGET', self.key.dev(device), 'online', 'cap', 'active', 'alive')
    local left = room(dev)
    d = {whole = whole or left ~= nil, groups = {}, dev = dev}
    self.devices[device] = d
    if d.whole then
      local all = members(self.key, device)
      for _, g in ipairs(all) do d.groups[g] = true end
      contribute(self.key, self.groups, all, left, self.acc, -1)
    end
  end
  if group and not d.groups[group] then
    -- a device read whole has no other group with numbers: this one is new (nothing to subtract)
    d.groups[group] = true
    if not d.whole then contribute(self.key, self.groups, {group}, nil, self.acc, -1) end
  end
end

-- a touched device takes (delta 1) or gives back (-1) a module
function Tracker:add_active(device, delta)
  local active = redis.call('HINCRBY', self.key.dev(device), 'active', delta)
  self.devices[device].dev[3] = tostring(active)
end

function Tracker:commit()
  local key = self.key
  for device, d in pairs(self.devices) do
    local dev = d.dev
    if not self.exact then dev = redis.call('HMGET', key.dev(device), 'online', 'cap', 'active', 'alive') end
    local left = room(dev)
    if d.whole then
      for _, g in ipairs(members(key, device)) do d.groups[g] = true end
    elseif left ~= nil then
      error('pool: a device became limited without touch(whole)')
    end
    local groups = {}
    for g in pairs(d.groups) do groups[#groups + 1] = g end
    local sizes = contribute(key, self.groups, groups, left, self.acc, 1)
    local open = left == nil or left > 0
    for _, g in ipairs(groups) do set_indexed(key, g, open and sizes[g] > 0) end
  end
  for term, row in pairs(self.acc) do
    for field, delta in pairs(row) do
      if delta ~= 0 and redis.call('HINCRBY', term, field, delta) == 0 then redis.call('HDEL', term, field) end
    end
  end
end

-- a number joins (delta 1) or leaves (-1) the free set: its group's size and one blocked-free counter per service
-- it is blocked for change (in Redis, and in the tracker's copy when it has read the group)
local function count_free(t, group, number, delta)
  local key = t.key
  redis.call('HINCRBY', key.fixed('totals'), 'free', delta)
  local g = t.groups[group]
  if g then g.f = g.f + delta end
  for _, field in ipairs(redis.call('HKEYS', key.hist(number))) do
    if string.sub(field, 1, 2) == 'b:' then
      local service = string.sub(field, 3)
      local b = redis.call('HINCRBY', key.bf(group), service, delta)
      if g and g.b then g.b[service] = b end
    end
  end
end

local function add_free(t, group, number)
  local _, _, device = split_group(group)
  t:touch(device, group)
  if redis.call('SADD', t.key.free(group), number) == 1 then count_free(t, group, number, 1) end
end

local function remove_free(t, group, number)
  local _, _, device = split_group(group)
  t:touch(device, group)
  if redis.call('SREM', t.key.free(group), number) == 1 then count_free(t, group, number, -1) end
end

-- an activation ends (finish or release, so both free a number the same way): its device module comes back, the
-- number's act is cleared if it is still this activation, and an online number returns to its free set
local function free_number(t, id, number, country, operator, device)
  local key = t.key
  local group = group_of(country, operator, device)
  t:touch(device, group)
  t:add_active(device, -1)
  local num_key = key.num(number)
  local f = redis.call('HMGET', num_key, 'act', 'online')
  if f[1] ~= id then return end
  redis.call('HSET', num_key, 'act', '', 'last_act', f[1])
  if f[2] ~= '1' then return end
  add_free(t, group, number)
end
