-- Mark SIMs online or offline. An offline number leaves its group's free set (so it is neither counted nor
-- claimed); a busy number only changes its flag and returns to the free set (if online) when its activation ends.
-- KEYS    none (all keys depend on the numbers)
-- ARGV[1] key prefix; ARGV[2] "1" (online) or "0" (offline); ARGV[3..] numbers
-- Keys touched per number (key.* from grizzly_pool.keys, built from the number's stored fields; no Redis Cluster):
-- num:{number}, and what add_free / remove_free and the tracker touch (pool.lua: hist:{number} (read),
-- free:{group}, bf:{group}, totals, the count terms cs:/ca:, the claim indexes cg:/og:)
-- Returns {changed, missing}
local key = pool_keys(ARGV[1])
local t = tracker(key)
local online = ARGV[2]
local changed, missing = 0, 0
for i = 3, #ARGV do
  local number = ARGV[i]
  local num_key = key.num(number)
  local f = redis.call('HMGET', num_key, 'country', 'operator', 'device', 'online', 'act')
  if not f[1] then
    missing = missing + 1
  elseif f[4] ~= online then
    redis.call('HSET', num_key, 'online', online)
    if not f[5] or f[5] == '' then
      local group = group_of(f[1], f[2], f[3])
      if online == '1' then add_free(t, group, number) else remove_free(t, group, number) end
    end
    changed = changed + 1
  end
end
t:commit()
return {changed, missing}
