-- gridgate rate limits, v1: renew the concurrency slots of requests still in flight; a slot
-- that expired or was freed stays free.
-- The contract is in src/gridgate/storage/limiter/port.py; the layout in storage/limiter/redis.py.
--
-- KEYS: concurrent ZSETs (ticket -> slot expiry ms).
-- ARGV: now_ms (-1: Redis's clock), slot_ttl_ms, key_margin_ms, then the ticket of each key.

local now = tonumber(ARGV[1])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local ttl = tonumber(ARGV[2])
local margin = tonumber(ARGV[3])
for i = 1, #KEYS do
  local z = KEYS[i]
  redis.call('ZREMRANGEBYSCORE', z, '-inf', now)
  if redis.call('ZADD', z, 'XX', 'CH', now + ttl, ARGV[3 + i]) == 1 then
    redis.call('PEXPIRE', z, ttl + margin)
  end
end
return 0
