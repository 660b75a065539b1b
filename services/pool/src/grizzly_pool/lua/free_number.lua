-- Shared function (prepended by load_lua to finish.lua and release.lua, so a release frees a number exactly as a
-- finish does): give an activation's module and number back. Touches dev:{device} (active - 1), num:{number} (act
-- cleared if it is still this activation, last_act), and when the number is online: its free set, the group's
-- blocked-free counters (one per service the number is blocked for) and the claim indexes of the group.
local function free_number(prefix, id, number, free_key, bf_key, dev_key)
  redis.call('HINCRBY', dev_key, 'active', -1)
  local num_key = prefix .. 'num:' .. number
  local f = redis.call('HMGET', num_key, 'act', 'online')
  if f[1] ~= id then return end
  redis.call('HSET', num_key, 'act', '', 'last_act', f[1])
  if f[2] ~= '1' then return end
  redis.call('SADD', free_key, number)
  if redis.call('SCARD', free_key) == 1 then
    -- the group has a free number again: back into the claim indexes (free_key = prefix .. 'free:' .. group)
    local group = string.sub(free_key, #prefix + 6)
    local country, operator = string.match(group, '^([^|]*)|([^|]*)|')
    redis.call('SADD', prefix .. 'cg:' .. country, group)
    redis.call('SADD', prefix .. 'og:' .. country .. '|' .. operator, group)
  end
  for _, field in ipairs(redis.call('HKEYS', prefix .. 'hist:' .. number)) do
    if string.sub(field, 1, 2) == 'b:' then redis.call('HINCRBY', bf_key, string.sub(field, 3), 1) end
  end
end
