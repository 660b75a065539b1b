-- A device's online flag and module cap (simultaneously active modules, 0 = no limit). Both change the device's
-- room, so its count terms and claim index entries are taken before and after (the tracker, pool.lua).
-- KEYS[1] devices set   {prefix}devices
-- ARGV[1] key prefix   ARGV[2] device   ARGV[3] online ('1', '0', '' = unchanged)   ARGV[4] cap ('' = unchanged)
-- Keys touched (key.* from grizzly_pool.keys; no Redis Cluster): dev:{device}, dg:{device} (read), and what the
-- tracker touches for the device's groups (free: and bf: (read), the count terms cs:/ca:, the indexes cg:/og:)
-- Returns 0 when the device holds no number, else 1.
local key = pool_keys(ARGV[1])
local device = ARGV[2]
if redis.call('SISMEMBER', KEYS[1], device) == 0 then return 0 end
local t = tracker(key)
t:touch(device, nil, true)
if ARGV[3] ~= '' then redis.call('HSET', key.dev(device), 'online', ARGV[3]) end
if ARGV[4] ~= '' then redis.call('HSET', key.dev(device), 'cap', ARGV[4]) end
t:commit()
return 1
