-- Build what the counting and claim design keeps per device (count terms, dg:{device}, co, totals, the claim
-- indexes) from the inventory, for a pool written by a version without them (PoolStore.migrate). Run in pages, so
-- no run blocks Redis for long, while no other pool writes:
--   mode "reset":   ARGV[3..] groups: delete what an interrupted migration may have left for them
--   mode "groups":  ARGV[3..] pairs of group, numbers held: dg:{device} and co
--   mode "devices": ARGV[3..] devices: their count terms, index entries and free numbers (the tracker's commit,
--                   pool.lua, with nothing subtracted)
-- KEYS none (every key depends on the groups and devices)   ARGV[1] key prefix   ARGV[2] mode
-- Returns how many groups or devices it handled.
local key = pool_keys(ARGV[1])
local mode = ARGV[2]
if mode == 'reset' then
  for i = 3, #ARGV do
    local country, operator, device = split_group(ARGV[i])
    redis.call('DEL', key.dg(device), key.cs(country, operator), key.ca(country), key.cg(country),
      key.og(country, operator))
  end
  return #ARGV - 2
end
if mode == 'groups' then
  for i = 3, #ARGV, 2 do
    local country, operator, device = split_group(ARGV[i])
    redis.call('SADD', key.dg(device), ARGV[i])
    redis.call('HINCRBY', key.fixed('co'), country .. '|' .. operator, tonumber(ARGV[i + 1]))
  end
  return (#ARGV - 2) / 2
end
local t = tracker(key)
for i = 3, #ARGV do
  t.devices[ARGV[i]] = {whole = true, groups = {}}
  for _, group in ipairs(members(key, ARGV[i])) do
    redis.call('HINCRBY', key.fixed('totals'), 'free', redis.call('SCARD', key.free(group)))
  end
end
t:commit()
return #ARGV - 2
