-- GET_SERVICES snapshot: the counters of every group and device, read in one atomic step. Cost: groups x services,
-- independent of how many numbers the pool holds (no number is looked at).
-- KEYS[1..2g]      per group i: free:{group}, bf:{group}
-- KEYS[2g+1..]     dev:{device} for each device
-- ARGV[1] g (number of groups)   ARGV[2..] services
-- Returns {groups..., devices...}: per group {free size, blocked-free per service...}; per device {online, cap, active}
local g = tonumber(ARGV[1])
local services = {}
for i = 2, #ARGV do services[#services + 1] = ARGV[i] end
local out = {}
for i = 1, g do
  local row = {redis.call('SCARD', KEYS[2 * i - 1])}
  if #services > 0 then
    local blocked = redis.call('HMGET', KEYS[2 * i], unpack(services))
    for j = 1, #services do row[j + 1] = tonumber(blocked[j] or '0') end
  end
  out[#out + 1] = row
end
for k = 2 * g + 1, #KEYS do
  local d = redis.call('HMGET', KEYS[k], 'online', 'cap', 'active')
  out[#out + 1] = {d[1] or '1', tonumber(d[2] or '0'), tonumber(d[3] or '0')}
end
return out
