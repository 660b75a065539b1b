-- Store one part of a multipart SMS durably; the group gets its smsId when its first part arrives.
-- KEYS[1] group hash    {prefix}ingest:mp:{sha256(number, sender, ref, total)}
--                       fields: id, state (pending | published), total, n (parts stored), meta (JSON of the
--                       first part: number, sender, device, slot, source, received_at_ms), t:{seq} part text,
--                       d:{seq} part digest (text + source timestamp) telling a retried part from a new one
-- KEYS[2] pending zset  {prefix}ingest:mp-pending   member = group key, score = deadline (ms)
-- KEYS[3] id counter    {prefix}ingest:next-id
-- ARGV[1] seq  ARGV[2] part text  ARGV[3] part digest  ARGV[4] meta JSON  ARGV[5] total
-- ARGV[6] deadline ms  ARGV[7] TTL of the group in seconds
-- Returns {id, state, parts stored}; state: duplicate (this exact part of a published group),
-- pending (parts missing), complete (every part stored, not yet published).
local seq = ARGV[1]
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'published' then
  if redis.call('HGET', KEYS[1], 'd:' .. seq) == ARGV[3] then
    return {tonumber(redis.call('HGET', KEYS[1], 'id')), 'duplicate', tonumber(redis.call('HGET', KEYS[1], 'n'))}
  end
  -- the same reference reused by a later message (or a part arriving after a partial publish): a new message
  redis.call('DEL', KEYS[1])
  state = false
end
local id
if not state then
  id = next_id(KEYS[3])
  redis.call('HSET', KEYS[1], 'id', id, 'state', 'pending', 'total', ARGV[5], 'n', 0, 'meta', ARGV[4])
  redis.call('ZADD', KEYS[2], tonumber(ARGV[6]), KEYS[1])
else
  id = tonumber(redis.call('HGET', KEYS[1], 'id'))
end
local n
if redis.call('HSETNX', KEYS[1], 't:' .. seq, ARGV[2]) == 1 then
  redis.call('HSET', KEYS[1], 'd:' .. seq, ARGV[3])
  n = redis.call('HINCRBY', KEYS[1], 'n', 1)
else
  n = tonumber(redis.call('HGET', KEYS[1], 'n'))
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[7]))
if n >= tonumber(redis.call('HGET', KEYS[1], 'total')) then
  return {id, 'complete', n}
end
return {id, 'pending', n}
