-- FINISH_ACTIVATION: close an activation once (first status wins), update the number's per-service history and
-- free the number. A repeat changes nothing (except that a later 5 counts one more refund in the history).
-- KEYS[1] act:{id}
-- ARGV[1] key prefix   ARGV[2] upstream asking   ARGV[3] status (1, 3, 4, 5)   ARGV[4] cancel limit (status 4)
-- ARGV[5] now (ms)   ARGV[6] activation id
-- ARGV[7] audit key (the activation's list)   ARGV[8] retention (s): act:{id} and its audit list expire this long
-- after the last finish (an open activation has no TTL)   ARGV[9..11] audit event around its name and first
-- status: ARGV[9] .. '"finish"' or '"finish_repeat"' .. ARGV[10] .. first .. ARGV[11]
-- (grizzly_common.audit format; nothing is recorded for an unknown activation)
-- Also touched (key names read from the activation hash, written there by claim.lua, or built here from the
-- number; no Redis Cluster): num:{number}, hist:{number}, free:{group}, bf:{group}, dev:{device}, and the claim
-- indexes cg:{country} and og:{country}|{operator} when the group's free set was empty (see claim.lua)
-- History fields in hist:{number}: b:{service} = why blocked ("1" never again, "3" sold, "4" cancel limit),
-- c:{service} = cancels, r:{service} = refunds.
-- Returns {"unknown"} | {"repeat", first_status} | {"finished", status}
local prefix, upstream, status = ARGV[1], ARGV[2], ARGV[3]
local limit = tonumber(ARGV[4])
local a = redis.call('HMGET', KEYS[1], 'upstream', 'status', 'number', 'service', 'free_key', 'bf_key', 'dev_key')
if not a[1] or a[1] ~= upstream then return {'unknown'} end
local number, service = a[3], a[4]
local hist_key = prefix .. 'hist:' .. number

local function audit(event, first)
  redis.call('RPUSH', ARGV[7], ARGV[9] .. event .. ARGV[10] .. first .. ARGV[11])
  redis.call('EXPIRE', ARGV[7], ARGV[8])
  redis.call('EXPIRE', KEYS[1], ARGV[8])
end

if a[2] ~= 'open' then
  redis.call('HINCRBY', KEYS[1], 'repeats', 1)
  if status == '5' then redis.call('HINCRBY', hist_key, 'r:' .. service, 1) end
  audit('"finish_repeat"', a[2])
  return {'repeat', a[2]}
end
redis.call('HSET', KEYS[1], 'status', status, 'finished_ms', ARGV[5])
-- the number is busy (outside the free set) here, so history changes need no counter update yet
local blocked_field = 'b:' .. service
if status == '1' then
  redis.call('HSETNX', hist_key, blocked_field, '1')
elseif status == '3' then
  redis.call('HSET', hist_key, blocked_field, '3')
elseif status == '4' then
  if redis.call('HINCRBY', hist_key, 'c:' .. service, 1) >= limit then
    redis.call('HSETNX', hist_key, blocked_field, '4')
  end
elseif status == '5' then
  redis.call('HINCRBY', hist_key, 'r:' .. service, 1)
end
redis.call('HINCRBY', a[7], 'active', -1)
local num_key = prefix .. 'num:' .. number
local f = redis.call('HMGET', num_key, 'act', 'online')
if f[1] == ARGV[6] then
  redis.call('HSET', num_key, 'act', '', 'last_act', f[1])
  if f[2] == '1' then
    redis.call('SADD', a[5], number)
    if redis.call('SCARD', a[5]) == 1 then
      -- the group has a free number again: back into the claim indexes (free_key = prefix .. 'free:' .. group)
      local group = string.sub(a[5], #prefix + 6)
      local country, operator = string.match(group, '^([^|]*)|([^|]*)|')
      redis.call('SADD', prefix .. 'cg:' .. country, group)
      redis.call('SADD', prefix .. 'og:' .. country .. '|' .. operator, group)
    end
    local hist = redis.call('HKEYS', hist_key)
    for _, field in ipairs(hist) do
      if string.sub(field, 1, 2) == 'b:' then redis.call('HINCRBY', a[6], string.sub(field, 3), 1) end
    end
  end
end
audit('"finish"', status)
return {'finished', status}
