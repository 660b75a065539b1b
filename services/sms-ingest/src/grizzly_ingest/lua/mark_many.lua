-- Kafka acknowledged these messages: mark each fingerprint published (a retried source gets "duplicate").
-- KEYS[i] fingerprint hash {prefix}ingest:fp:{sha256};  ARGV[i] its TTL in seconds
for i = 1, #KEYS do
  redis.call('HSET', KEYS[i], 'state', 'published')
  redis.call('EXPIRE', KEYS[i], tonumber(ARGV[i]))
end
return #KEYS
