-- wrk script of bench/wrkgen.py: the same load for the trivial endpoint and the partner URL.
-- wrk <options> -s bench/wrk.lua URL -- post BODY
-- wrk <options> -s bench/wrk.lua URL -- cycle KEY COUNTRY OPERATOR FINISH_STATUS SERVICE [SERVICE ...]
-- post: the same body every time. cycle: GET_NUMBER, and after each number a FINISH_ACTIVATION of it (the next
-- request this thread sends), so the pool never drains and requests alternate GET_NUMBER / FINISH.
-- done() prints one JSON line: requests, duration and latency (µs), answers that were not SUCCESS.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

local mode, post_body, key, country, operator, finish_status
local services, next_service = {}, 1
local pending, head, tail = {}, 1, 0 -- activation ids waiting for their FINISH (a FIFO)
local headers = { ["Content-Type"] = "application/json" }
ok, no_numbers, errors, other = 0, 0, 0, 0 -- globals: done() reads them with thread:get

function init(args)
  mode = args[1]
  if mode == "post" then
    post_body = wrk.format("POST", nil, headers, args[2])
  else
    key, country, operator, finish_status = args[2], args[3], args[4], args[5]
    for i = 6, #args do table.insert(services, args[i]) end
  end
end

function request()
  if mode == "post" then return post_body end
  if head <= tail then
    local id = pending[head]
    pending[head] = nil
    head = head + 1
    return wrk.format("POST", nil, headers, '{"action":"FINISH_ACTIVATION","key":"' .. key ..
      '","activationId":' .. id .. ',"status":' .. finish_status .. '}')
  end
  local service = services[next_service]
  next_service = next_service % #services + 1
  return wrk.format("POST", nil, headers, '{"action":"GET_NUMBER","key":"' .. key .. '","country":"' .. country ..
    '","operator":"' .. operator .. '","service":"' .. service .. '","sum":0.35}')
end

function response(status, hdrs, body)
  if status ~= 200 then
    other = other + 1
  elseif string.find(body, '"status":"SUCCESS"', 1, true) then
    ok = ok + 1
    local id = string.match(body, '"activationId":(%d+)')
    if id then
      tail = tail + 1
      pending[tail] = id
    end
  elseif string.find(body, '"status":"NO_NUMBERS"', 1, true) then
    no_numbers = no_numbers + 1
  elseif string.find(body, '"status":"ERROR"', 1, true) then
    errors = errors + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local sums = { ok = 0, no_numbers = 0, errors = 0, other = 0 }
  for _, thread in ipairs(threads) do
    for name, _ in pairs(sums) do sums[name] = sums[name] + thread:get(name) end
  end
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,' ..
    '"ok":%d,"no_numbers":%d,"errors":%d,"other":%d,"socket_errors":%d,"timeouts":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max, latency.mean,
    sums.ok, sums.no_numbers, sums.errors, sums.other, e.connect + e.read + e.write, e.timeout))
end
