-- FINISH_ACTIVATION: close an activation once (first status wins), update the number's per-service history and
-- free the number. A repeat changes nothing (except that a later 5 counts one more refund in the history).
-- KEYS[1] act:{id}   KEYS[2] held: claims api-edge has not confirmed yet (see release.lua); a finish settles it
-- KEYS[3] earn:{day} of today (UTC): sold, refused, cancelled, refunded, amount   KEYS[4] suspects set
-- ARGV[1] key prefix   ARGV[2] upstream asking   ARGV[3] status (1, 3, 4, 5)   ARGV[4] cancel limit (status 4)
-- ARGV[5] now (ms)   ARGV[6] activation id
-- ARGV[7] audit key (the activation's list)   ARGV[8] retention (s): act:{id} and its audit list expire this long
-- after the last finish (an open activation has no TTL)   ARGV[9..11] audit event around its name and first
-- status: ARGV[9] .. '"finish"' or '"finish_repeat"' .. ARGV[10] .. first .. ARGV[11]
-- (grizzly_common.audit format; nothing is recorded for an unknown activation)
-- ARGV[12] suspect streak: this many activations in a row ended without an SMS make the SIM suspect
-- ARGV[13] "1": take a SIM offline when it becomes suspect   ARGV[14..16] its audit event around the number and
-- the offline flag: ARGV[14] .. number .. ARGV[15] .. 'true'/'false' .. ARGV[16] (grizzly_common.audit format)
-- Also touched (key.* from grizzly_pool.keys, built from the number and the group the activation hash names; no
-- Redis Cluster): hist:{number}, sh:{number} (SIM health), num:{number} (online, for a suspect taken offline), and
-- what free_number and the tracker touch (pool.lua: dev:{device},
-- num:{number}, free:{group}, bf:{group}, totals, the count terms cs:/ca:, the claim indexes cg:/og:)
-- History fields in hist:{number}: b:{service} = why blocked ("1" never again, "3" sold, "4" cancel limit),
-- c:{service} = cancels, r:{service} = refunds.
-- Returns {"unknown"} | {"repeat", first_status} | {"finished", status, country, currency, earned} | {"repeat",
-- "3", country, currency, -sum} (a refund of a sold activation) | {"released"} (the activation was released
-- because api-edge never gave it to the platform, release.lua: the finish changes nothing)
local key = pool_keys(ARGV[1])
local upstream, status = ARGV[2], ARGV[3]
local limit = tonumber(ARGV[4])
local a = redis.call('HMGET', KEYS[1], 'upstream', 'status', 'number', 'service', 'country', 'operator', 'device',
  'currency', 'sum_u', 'sms', 'refunded')
if not a[1] or a[1] ~= upstream then return {'unknown'} end
local number, service = a[3], a[4]
local hist_key = key.hist(number)

local function audit(event, first)
  redis.call('RPUSH', ARGV[7], ARGV[9] .. event .. ARGV[10] .. first .. ARGV[11])
  redis.call('EXPIRE', ARGV[7], ARGV[8])
  redis.call('EXPIRE', KEYS[1], ARGV[8])
end

if a[2] == 'released' then
  audit('"finish_repeat"', '"released"')
  return {'released'}
end
local sh_key = key.sh(number)
local earn = upstream .. '|' .. service .. '|' .. (a[5] or '') .. '|' .. ((a[8] or '') == '' and 'none' or a[8]) .. '|'
local sum_u = tonumber(a[9] or '0') or 0

if a[2] ~= 'open' then
  redis.call('HINCRBY', KEYS[1], 'repeats', 1)
  if status == '5' then
    redis.call('HINCRBY', hist_key, 'r:' .. service, 1)
    -- a refund of a sold activation takes its sum back, once
    if a[2] == '3' and a[11] ~= '1' then
      redis.call('HSET', KEYS[1], 'refunded', '1')
      redis.call('HINCRBY', sh_key, 'refunded', 1)
      redis.call('HINCRBY', KEYS[3], earn .. 'refunded', 1)
      redis.call('HINCRBY', KEYS[3], earn .. 'amount', -sum_u)
      audit('"finish_repeat"', a[2])
      return {'repeat', a[2], a[5] or '', a[8] or '', -sum_u}
    end
  end
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
-- SIM health and earnings of the first status
local metric = ({['1'] = 'refused', ['3'] = 'sold', ['4'] = 'cancelled', ['5'] = 'refunded'})[status]
redis.call('HINCRBY', sh_key, metric, 1)
redis.call('HINCRBY', KEYS[3], earn .. metric, 1)
if status == '3' then redis.call('HINCRBY', KEYS[3], earn .. 'amount', sum_u) end
if status == '5' then redis.call('HSET', KEYS[1], 'refunded', '1') end
if a[10] == '1' then
  redis.call('HSET', sh_key, 'streak', 0)
elseif redis.call('HINCRBY', sh_key, 'streak', 1) >= tonumber(ARGV[12]) and redis.call('SADD', KEYS[4], number) == 1 then
  -- the SIM became suspect: recorded in this activation's trail; offline when the operator asked for it (the
  -- number is busy here, so it only changes its flag and stays out of the free set when the module is freed)
  local offline = ARGV[13] == '1'
  if offline then redis.call('HSET', key.num(number), 'online', '0') end
  redis.call('RPUSH', ARGV[7], ARGV[14] .. number .. ARGV[15] .. (offline and 'true' or 'false') .. ARGV[16])
end
redis.call('ZREM', KEYS[2], ARGV[6])
local t = tracker(key, true)
free_number(t, ARGV[6], number, a[5], a[6], a[7])
t:commit()
audit('"finish"', status)
return {'finished', status, a[5] or '', a[8] or '', status == '3' and sum_u or 0}
