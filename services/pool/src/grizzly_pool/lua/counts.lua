-- GET_SERVICES: the count terms of every row, read in one atomic step. Cost: (country, operator) rows plus
-- countries, times services; independent of how many numbers and devices the pool holds (the terms are kept by
-- every change, see pool.lua).
-- KEYS[1] co: "country|operator" -> numbers held (the rows that exist)
-- ARGV[1] key prefix   ARGV[2..] services
-- Also read (key.* from grizzly_pool.keys): cs:{country}|{operator} and ca:{country} of every row
-- Returns {split rows..., '', any rows...}: a split row is {country, operator, T, D per service...}, an `any` row
-- {country, T, D per service...}; count = max(0, T - D).
local key = pool_keys(ARGV[1])
local fields = {'_'}
for i = 2, #ARGV do fields[#fields + 1] = ARGV[i] end
local out, countries, seen = {}, {}, {}
for _, co in ipairs(redis.call('HKEYS', KEYS[1])) do
  local country, operator = string.match(co, '^([^|]*)|(.*)$')
  local row = {country, operator}
  for _, v in ipairs(redis.call('HMGET', key.cs(country, operator), unpack(fields))) do
    row[#row + 1] = tonumber(v or '0')
  end
  out[#out + 1] = row
  if not seen[country] then
    seen[country] = true
    countries[#countries + 1] = country
  end
end
out[#out + 1] = ''
for _, country in ipairs(countries) do
  local row = {country}
  for _, v in ipairs(redis.call('HMGET', key.ca(country), unpack(fields))) do row[#row + 1] = tonumber(v or '0') end
  out[#out + 1] = row
end
return out
