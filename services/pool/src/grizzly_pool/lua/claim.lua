-- GET_NUMBER: pick a number that fits and open an activation on it, atomically (check and claim in one script).
-- KEYS[1]  activation id counter   {prefix}actid
-- KEYS[2]  candidate index         {prefix}cg:{country} (operator `any`) or {prefix}og:{country}|{operator}: set
--          of the groups (country|operator|device) whose free set is not empty and whose device has room (kept by
--          the tracker, pool.lua)
-- KEYS[3]  count terms of the row  {prefix}ca:{country} (operator `any`) or {prefix}cs:{country}|{operator}
-- KEYS[4]  held                    {prefix}held: zset, activation id -> when it is released unless api-edge
--          confirms it first (ms, Redis clock; see release.lua)
-- KEYS[5]  claim record            {prefix}claim:{claim id}: the activation id of this claim, or "released"
-- KEYS[6]  earnings of the day     {prefix}earn:{day}: the claim counts as issued there (release.lua takes it back)
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
-- ARGV[18+n] budget: the most Redis calls this run may spend looking (so no run blocks Redis for long)
-- ARGV[19+n] sum in millionths (integer, for the earnings)   ARGV[20+n] the day of KEYS[6] (UTC, YYYY-MM-DD)
-- ARGV[21+n] where a walk resumes: '' = first run; else the index SSCAN cursor of the page to (re)read
-- ARGV[22+n] the group whose free set the last run was scanning ('' = none)   ARGV[23+n] its SSCAN cursor
-- ARGV[24+n..] the groups of that index page the last run finished with (skipped)
-- Also touched (key.* from grizzly_pool.keys, built from the chosen group, number and new id; no Redis Cluster):
-- per group free:{group}, bf:{group}, dev:{device}; num:{number} (read, then act set), hist:{number} (read),
-- act:{id} (created; prev = num:{number}.last_act), sh:{number} (issued), the audit list of the activation (no TTL while open), and what
-- remove_free and the tracker
-- touch (pool.lua: totals, dg:{device}, the count terms cs:/ca:, the indexes cg:/og:).
-- Constraints (the same as the counts): device online, device below its module cap, number free and online
-- (= member of the free set), service not blocked for the number, no excluded prefix.
-- Cost: nothing at all when the row's count is 0; a few groups from a random sample of the index in the usual case;
-- only when the sample misses is the index walked, in runs of at most `budget` calls, each resumed by the caller.
-- Returns {} when nothing fits, {'refused'} when the claim id was released already (or used before) or the
-- deadline has passed, {'more', cursor, group, group cursor, done groups...} when the budget ran out (call again
-- with them), else {number, activation_id, flashcall, voice}.
local key = pool_keys(ARGV[1])
local service, upstream = ARGV[2], ARGV[3]
local sample = tonumber(ARGV[8])
local group_sample = tonumber(ARGV[9])
local claim_id, deadline, hold = ARGV[13], tonumber(ARGV[14]), tonumber(ARGV[15])
local nprefixes = tonumber(ARGV[16])
local prefixes = {}
for i = 1, nprefixes do prefixes[i] = ARGV[16 + i] end
local base = 16 + nprefixes
math.randomseed(tonumber(ARGV[base + 1]))
local units = tonumber(ARGV[base + 2])
local sum_u, day = ARGV[base + 3], ARGV[base + 4]
local walk_cursor, resume_group, resume_cursor = ARGV[base + 5], ARGV[base + 6], ARGV[base + 7]
local done = {}
for i = base + 8, #ARGV do done[ARGV[i]] = true end
local blocked_field = 'b:' .. service

local now_ms = 0
if claim_id ~= '' then
  -- a release that came first left its record: the edge has given up on this claim (release.lua)
  if redis.call('EXISTS', KEYS[5]) == 1 then return {'refused'} end
  local t = redis.call('TIME')
  now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  if deadline > 0 and now_ms > deadline then return {'refused'} end
end

-- the row's exact count (pool.lua): 0 means no group can give this service a number, whatever the prefixes
local terms = redis.call('HMGET', KEYS[3], '_', service)
if tonumber(terms[1] or '0') - tonumber(terms[2] or '0') <= 0 then return {} end

local function fits(number)
  for _, p in ipairs(prefixes) do
    if string.sub(number, 1, #p) == p then return false end
  end
  return redis.call('HEXISTS', key.hist(number), blocked_field) == 0
end

local function claim(group, read, number)
  -- leave the free set (and the blocked-free counters), take a module, open the activation
  local _, _, device = split_group(group)
  local t = tracker(key, true)
  t:touch(device, group, false, read)
  remove_free(t, group, number)
  t:add_active(device, 1)
  t:commit()
  -- numeric unique id that survives a Redis wipe (next_id: grizzly_common.redis_client.NEXT_ID_FUNCTION)
  local id = next_id(KEYS[1])
  id = string.format('%.0f', id)  -- as text: Lua would print a large number as 1.7e+15
  local num_key = key.num(number)
  local f = redis.call('HMGET', num_key, 'country', 'operator', 'device', 'flashcall', 'voice', 'last_act')
  redis.call('HSET', num_key, 'act', id)
  local act_key = key.act(id)
  -- country, operator, device: the group finish.lua and release.lua give the number back to; prev: the number's
  -- previous activation (its last_act: a number has one open activation at a time), so the admin API walks a
  -- number's history act by act without an index of its own (the chain ends where an activation expired)
  local fields = {'number', number, 'upstream', upstream, 'service', service,
    'country', f[1], 'operator', f[2], 'device', f[3], 'sum', ARGV[4], 'currency', ARGV[5],
    'request', ARGV[6], 'created_ms', ARGV[7], 'status', 'open', 'sum_u', sum_u, 'day', day, 'prev', f[6] or ''}
  if claim_id ~= '' then
    fields[#fields + 1] = 'claim'
    fields[#fields + 1] = claim_id
  end
  redis.call('HSET', act_key, unpack(fields))
  redis.call('HINCRBY', key.sh(number), 'issued', 1)
  local currency = ARGV[5] == '' and 'none' or ARGV[5]
  redis.call('HINCRBY', KEYS[6], upstream .. '|' .. service .. '|' .. f[1] .. '|' .. currency .. '|issued', 1)
  redis.call('RPUSH', ARGV[10] .. id, ARGV[11] .. number .. ARGV[12])
  if claim_id ~= '' then
    redis.call('SET', KEYS[5], id, 'PX', 2 * hold)
    redis.call('ZADD', KEYS[4], now_ms + hold, id)
  end
  return {number, id, f[4], f[5]}
end

-- when the group can give the service a number now, what was read of it (the tracker's touch() reuses it), else
-- nil (a stale index entry is dropped)
local function viable(group)
  units = units - 3
  local size = redis.call('SCARD', key.free(group))
  local _, _, device = split_group(group)
  local dev = redis.call('HMGET', key.dev(device), 'online', 'cap', 'active', 'alive')
  local left = room(dev)
  if size == 0 or left == 0 then
    set_indexed(key, group, false)
    return nil
  end
  local blocked = tonumber(redis.call('HGET', key.bf(group), service) or '0')
  if size - blocked <= 0 then return nil end
  return {dev = dev, size = size}
end

-- look through a group's free set from an SSCAN cursor: the number that fits, or nil and where to resume ('0': done)
local function scan_group(group, cursor)
  local free_key = key.free(group)
  repeat
    local page = redis.call('SSCAN', free_key, cursor, 'COUNT', 64)
    cursor = page[1]
    units = units - 1 - #page[2]
    for _, number in ipairs(page[2]) do
      if fits(number) then return number, cursor end
    end
  until cursor == '0' or units <= 0
  return nil, cursor
end

local function more(cursor, group, group_cursor)
  local out = {'more', cursor, group, group_cursor}
  for g in pairs(done) do out[#out + 1] = g end
  return out
end

if walk_cursor == '' then
  -- a random sample of the candidate groups first, in random order (spreads activations over devices)
  local groups = redis.call('SRANDMEMBER', KEYS[2], group_sample)
  for i = #groups, 2, -1 do
    local j = math.random(i)
    groups[i], groups[j] = groups[j], groups[i]
  end
  for _, group in ipairs(groups) do
    local read = viable(group)
    if read then
      local numbers = redis.call('SRANDMEMBER', key.free(group), sample)
      units = units - 1 - #numbers
      for _, number in ipairs(numbers) do
        if fits(number) then return claim(group, read, number) end
      end
    end
  end
  walk_cursor = '0'
end

-- then the whole index, page by page, so a miss means nothing fits; a run that spends its budget returns where the
-- next run resumes (the page is read again, without the groups it finished)
if resume_group ~= '' then
  local read = viable(resume_group)
  if read then
    local number, cursor = scan_group(resume_group, resume_cursor)
    if number then return claim(resume_group, read, number) end
    if cursor ~= '0' then return more(walk_cursor, resume_group, cursor) end
  end
  done[resume_group] = true
end
local cursor = walk_cursor
repeat
  if units <= 0 then return more(cursor, '', '0') end
  local page = redis.call('SSCAN', KEYS[2], cursor, 'COUNT', 16)
  units = units - 1
  for _, group in ipairs(page[2]) do
    if not done[group] then
      if units <= 0 then return more(cursor, '', '0') end
      local read = viable(group)
      if read then
        local number, group_cursor = scan_group(group, '0')
        if number then return claim(group, read, number) end
        if group_cursor ~= '0' then return more(cursor, group, group_cursor) end
      end
      done[group] = true
    end
  end
  cursor = page[1]
  done = {}
until cursor == '0'
return {}
