-- Release claims the platform was never told about: the activation ends as "released" and its number goes back
-- exactly as a finish frees it (free_number, pool.lua), with no history change (no cancel
-- is counted: nobody saw the number). Two callers:
--   mode "claims": api-edge releases claims it did not answer with (timeout, error, crash of the request);
--                  idempotent, and it may arrive before the claim itself: then it leaves a record that makes
--                  claim.lua refuse that claim id.
--   mode "due":    the pool's sweeper releases held claims api-edge never confirmed (an edge that crashed before it
--                  could confirm or release), at most ARGV[6] of them per call.
-- A claim is held from claim.lua until exactly one of: confirmed by api-edge (ZREM by the store), finished
-- (finish.lua), or released here. Only a held claim is released, so a confirmed one never is.
-- KEYS[1] held: zset activation id -> release time (ms, Redis clock)
-- ARGV[1] key prefix   ARGV[2] mode   ARGV[3] retention (s) of the ended activation and its trail
-- ARGV[4] record TTL (ms) of a claim id released before (or without) its claim   ARGV[5] audit key prefix
-- ARGV[6] mode "due": the most to release; mode "claims": unused
-- ARGV[7], ARGV[8] the audit event before and after the number (grizzly_common.audit format)
-- ARGV[9..] mode "claims": claim ids
-- Also touched (key.* from grizzly_pool.keys, built from the ids; no Redis Cluster): claim:{claim id}, act:{id},
-- sh:{number} and earn:{day of the claim} (issued taken back),
-- the activation's audit list, and what free_number and the tracker touch (pool.lua: dev:, num:, hist: (read),
-- free:, bf:, totals, cs:, ca:, cg:, og:).
-- Returns the number of activations released.
local key = pool_keys(ARGV[1])
local t = tracker(key, true)
local mode, retention = ARGV[2], ARGV[3]
local clock = redis.call('TIME')
local now_ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)

local function release(id)
  if redis.call('ZREM', KEYS[1], id) == 0 then return 0 end  -- confirmed, finished or released already
  local act_key = key.act(id)
  local a = redis.call('HMGET', act_key, 'status', 'number', 'country', 'operator', 'device', 'upstream', 'service',
    'currency', 'day')
  if a[1] ~= 'open' then return 0 end
  -- never given to the platform: not issued (claim.lua counted it)
  redis.call('HINCRBY', key.sh(a[2]), 'issued', -1)
  if a[9] then
    local currency = (a[8] or '') == '' and 'none' or a[8]
    redis.call('HINCRBY', key.earn(a[9]), a[6] .. '|' .. a[7] .. '|' .. a[3] .. '|' .. currency .. '|issued', -1)
  end
  redis.call('HSET', act_key, 'status', 'released', 'finished_ms', now_ms)
  free_number(t, id, a[2], a[3], a[4], a[5])
  local audit_key = ARGV[5] .. id
  redis.call('RPUSH', audit_key, ARGV[7] .. a[2] .. ARGV[8])
  redis.call('EXPIRE', audit_key, retention)
  redis.call('EXPIRE', act_key, retention)
  return 1
end

local released = 0
if mode == 'claims' then
  for i = 9, #ARGV do
    local record_key = key.claim(ARGV[i])
    local id = redis.call('GET', record_key)
    if not id then
      redis.call('SET', record_key, 'released', 'PX', ARGV[4])
    elseif id ~= 'released' then
      released = released + release(id)
      redis.call('SET', record_key, 'released', 'KEEPTTL')
    end
  end
else
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms, 'LIMIT', 0, tonumber(ARGV[6]))) do
    released = released + release(id)
  end
end
t:commit()
return released
