-- GET_NUMBER: pick a number that fits and open an activation on it, atomically (check and claim in one script).
-- KEYS[1]        activation id counter   {prefix}actid
-- KEYS[2+3i..]   per candidate group i (country|operator|device, in the order to try):
--                free:{group} (set of free online numbers), bf:{group} (service -> blocked free numbers),
--                dev:{device} (online, cap, active)
-- ARGV[1] key prefix   ARGV[2] service   ARGV[3] upstream   ARGV[4] sum (decimal text)   ARGV[5] currency ('' = none)
-- ARGV[6] request JSON (key-free)   ARGV[7] now (ms)   ARGV[8] sample size (SRANDMEMBER count)
-- ARGV[9] number of excluded prefixes n, ARGV[10..9+n] the prefixes (digit strings, any length)
-- Also touched (built here from the chosen number and the new id; no Redis Cluster): num:{number} (read, then
-- act set), hist:{number} (read), act:{id} (created)
-- Constraints (the same as the counts): device online, device below its module cap, number free and online
-- (= member of the free set), service not blocked for the number, no excluded prefix.
-- Returns {} when nothing fits, else {number, activation_id, flashcall, voice}.
local prefix, service, upstream = ARGV[1], ARGV[2], ARGV[3]
local sample = tonumber(ARGV[8])
local nprefixes = tonumber(ARGV[9])
local prefixes = {}
for i = 1, nprefixes do prefixes[i] = ARGV[9 + i] end
local blocked_field = 'b:' .. service

local function fits(number)
  for _, p in ipairs(prefixes) do
    if string.sub(number, 1, #p) == p then return false end
  end
  return redis.call('HEXISTS', prefix .. 'hist:' .. number, blocked_field) == 0
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

for k = 2, #KEYS, 3 do
  local free_key, bf_key, dev_key = KEYS[k], KEYS[k + 1], KEYS[k + 2]
  local dev = redis.call('HMGET', dev_key, 'online', 'cap', 'active')
  local cap, active = tonumber(dev[2] or '0'), tonumber(dev[3] or '0')
  if dev[1] ~= '0' and (cap <= 0 or active < cap) then
    local size = redis.call('SCARD', free_key)
    local blocked = tonumber(redis.call('HGET', bf_key, service) or '0')
    if size - blocked > 0 then
      local number = pick(free_key, size)
      if number then
        -- claim: leave the free set (and the blocked-free counters), take a module, open the activation
        redis.call('SREM', free_key, number)
        local hist = redis.call('HKEYS', prefix .. 'hist:' .. number)
        for _, field in ipairs(hist) do
          if string.sub(field, 1, 2) == 'b:' then redis.call('HINCRBY', bf_key, string.sub(field, 3), -1) end
        end
        redis.call('HINCRBY', dev_key, 'active', 1)
        -- numeric unique id that survives a Redis wipe (same rule as grizzly_common.redis_client.NEXT_ID_LUA)
        local id = redis.call('INCR', KEYS[1])
        if id < 1000000000000 then
          local t = redis.call('TIME')
          id = (tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)) * 1000
          redis.call('SET', KEYS[1], id)
        end
        id = string.format('%.0f', id)  -- as text: Lua would print a large number as 1.7e+15
        local num_key = prefix .. 'num:' .. number
        local f = redis.call('HMGET', num_key, 'country', 'operator', 'device', 'flashcall', 'voice')
        redis.call('HSET', num_key, 'act', id)
        redis.call('HSET', prefix .. 'act:' .. id, 'number', number, 'upstream', upstream, 'service', service,
          'country', f[1], 'operator', f[2], 'device', f[3], 'sum', ARGV[4], 'currency', ARGV[5],
          'request', ARGV[6], 'created_ms', ARGV[7], 'status', 'open',
          'free_key', free_key, 'bf_key', bf_key, 'dev_key', dev_key)
        return {number, id, f[4], f[5]}
      end
    end
  end
end
return {}
