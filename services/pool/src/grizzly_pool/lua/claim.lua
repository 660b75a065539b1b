-- GET_NUMBER: pick a number that fits and open an activation on it, atomically (check and claim in one script).
-- KEYS[1]  activation id counter   {prefix}actid
-- KEYS[2]  candidate index         {prefix}cg:{country} (operator `any`) or {prefix}og:{country}|{operator}: set
--          of the groups (country|operator|device) whose free set is not empty (kept by every script that
--          changes a free set)
-- KEYS[3]  groups hash             {prefix}groups (read only to build the indexes once, see KEYS[4])
-- KEYS[4]  index marker            {prefix}gix:v1 (missing: the indexes are rebuilt from KEYS[3] first, e.g.
--          after an upgrade from a version without them)
-- KEYS[5]  held                    {prefix}held: zset, activation id -> when it is released unless api-edge
--          confirms it first (ms, Redis clock; see release.lua)
-- KEYS[6]  claim record            {prefix}claim:{claim id}: the activation id of this claim, or "released"
-- ARGV[1] key prefix   ARGV[2] service   ARGV[3] upstream   ARGV[4] sum (decimal text)   ARGV[5] currency ('' = none)
-- ARGV[6] request JSON (key-free)   ARGV[7] now (ms)   ARGV[8] sample size (SRANDMEMBER count, numbers)
-- ARGV[9] group sample size (SRANDMEMBER count on the index)
-- ARGV[10] audit key prefix (the activation id is appended; the list gets no TTL while the activation is open:
-- finish.lua sets it)
-- ARGV[11] audit event before the number   ARGV[12] audit event after the number (grizzly_common.audit format)
-- ARGV[13] claim id ('' = a caller that does not track its claims: no deadline, nothing held)
-- ARGV[14] deadline (ms since the epoch; 0 = none): past it, api-edge has answered the platform without this
-- claim, so it is refused   ARGV[15] hold (ms): how long an unconfirmed claim is held (record: twice as long)
-- ARGV[16] number of excluded prefixes n, ARGV[17..16+n] the prefixes (digit strings, any length)
-- ARGV[17+n] random seed (the order groups are tried in; from the caller, so a seeded test replays exactly)
-- Also touched (key.* from grizzly_pool.keys, built from the chosen group, number and new id; no Redis Cluster):
-- per group free:{group}, bf:{group}, dev:{device}; num:{number} (read, then act set), hist:{number} (read),
-- act:{id} (created), the audit list of the activation (no TTL while open), cg:/og: of an emptied group
-- (remove_free and set_indexed, pool.lua).
-- Constraints (the same as the counts): device online, device below its module cap, number free and online
-- (= member of the free set), service not blocked for the number, no excluded prefix.
-- Cost: a few groups from a random sample of the index in the usual case; only when the sample misses is the
-- whole index walked (bounded by the groups of the country), never the groups of other countries.
-- Returns {} when nothing fits, {'refused'} when the claim id was released already (or used before) or the
-- deadline has passed, else {number, activation_id, flashcall, voice}.
local key = pool_keys(ARGV[1])
local service, upstream = ARGV[2], ARGV[3]
local sample = tonumber(ARGV[8])
local group_sample = tonumber(ARGV[9])
local claim_id, deadline, hold = ARGV[13], tonumber(ARGV[14]), tonumber(ARGV[15])
local nprefixes = tonumber(ARGV[16])
local prefixes = {}
for i = 1, nprefixes do prefixes[i] = ARGV[16 + i] end
math.randomseed(tonumber(ARGV[17 + nprefixes]))
local blocked_field = 'b:' .. service

local now_ms = 0
if claim_id ~= '' then
  -- a release that came first left its record: the edge has given up on this claim (release.lua)
  if redis.call('EXISTS', KEYS[6]) == 1 then return {'refused'} end
  local t = redis.call('TIME')
  now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  if deadline > 0 and now_ms > deadline then return {'refused'} end
end

if redis.call('EXISTS', KEYS[4]) == 0 then
  for _, group in ipairs(redis.call('HKEYS', KEYS[3])) do
    if redis.call('SCARD', key.free(group)) > 0 then set_indexed(key, group, true) end
  end
  redis.call('SET', KEYS[4], '1')
end

local function fits(number)
  for _, p in ipairs(prefixes) do
    if string.sub(number, 1, #p) == p then return false end
  end
  return redis.call('HEXISTS', key.hist(number), blocked_field) == 0
end

local function pick(free_key, size)
  local seen = redis.call('SRANDMEMBER', free_key, math.min(size, sample))
  for _, number in ipairs(seen) do
    if fits(number) then return number end
  end
  if size <= sample then return nil end
  -- the samples kept hitting excluded or blocked numbers: walk the whole set (one device's SIMs, bounded)
  local cursor = '0'
  repeat
    local page = redis.call('SSCAN', free_key, cursor, 'COUNT', 256)
    cursor = page[1]
    for _, number in ipairs(page[2]) do
      if fits(number) then return number end
    end
  until cursor == '0'
  return nil
end

local function claim(group, dev_key, number)
  -- leave the free set (and the blocked-free counters), take a module, open the activation
  remove_free(key, group, number)
  redis.call('HINCRBY', dev_key, 'active', 1)
  -- numeric unique id that survives a Redis wipe (next_id: grizzly_common.redis_client.NEXT_ID_FUNCTION)
  local id = next_id(KEYS[1])
  id = string.format('%.0f', id)  -- as text: Lua would print a large number as 1.7e+15
  local num_key = key.num(number)
  local f = redis.call('HMGET', num_key, 'country', 'operator', 'device', 'flashcall', 'voice')
  redis.call('HSET', num_key, 'act', id)
  local act_key = key.act(id)
  -- country, operator, device: the group finish.lua and release.lua give the number back to
  redis.call('HSET', act_key, 'number', number, 'upstream', upstream, 'service', service,
    'country', f[1], 'operator', f[2], 'device', f[3], 'sum', ARGV[4], 'currency', ARGV[5],
    'request', ARGV[6], 'created_ms', ARGV[7], 'status', 'open')
  redis.call('RPUSH', ARGV[10] .. id, ARGV[11] .. number .. ARGV[12])
  if claim_id ~= '' then
    redis.call('HSET', act_key, 'claim', claim_id)
    redis.call('SET', KEYS[6], id, 'PX', 2 * hold)
    redis.call('ZADD', KEYS[5], now_ms + hold, id)
  end
  return {number, id, f[4], f[5]}
end

-- one group: nil when it cannot give a number now (an emptied group also leaves the indexes)
local function try(group)
  local free_key = key.free(group)
  local size = redis.call('SCARD', free_key)
  if size == 0 then
    set_indexed(key, group, false)
    return nil
  end
  local _, _, device = split_group(group)
  local dev_key = key.dev(device)
  local dev = redis.call('HMGET', dev_key, 'online', 'cap', 'active')
  local cap, active = tonumber(dev[2] or '0'), tonumber(dev[3] or '0')
  if dev[1] == '0' or (cap > 0 and active >= cap) then return nil end
  local bf_key = key.bf(group)
  local blocked = tonumber(redis.call('HGET', bf_key, service) or '0')
  if size - blocked <= 0 then return nil end
  local number = pick(free_key, size)
  if not number then return nil end
  return claim(group, dev_key, number)
end

-- a random sample of the candidate groups first, in random order (spreads activations over devices) ...
local tried = {}
local groups = redis.call('SRANDMEMBER', KEYS[2], group_sample)
for i = #groups, 2, -1 do
  local j = math.random(i)
  groups[i], groups[j] = groups[j], groups[i]
end
for _, group in ipairs(groups) do
  local result = try(group)
  if result then return result end
  tried[group] = true
end
if #groups < group_sample then return {} end
-- ... then every other candidate group (from a random starting point), so a miss means nothing fits
local all = redis.call('SMEMBERS', KEYS[2])
local n = #all
local start = n > 0 and math.random(n) or 1
for k = 0, n - 1 do
  local group = all[(start + k - 1) % n + 1]
  if not tried[group] then
    local result = try(group)
    if result then return result end
  end
end
return {}
