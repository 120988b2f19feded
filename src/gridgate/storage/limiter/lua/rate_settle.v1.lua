-- gridgate rate limits, v1: settle one admission, atomically and idempotently: its entry in
-- every tokens limit (while still in the window) now counts what it used; its slots are freed.
-- The contract is in src/gridgate/storage/limiter/port.py; the layout in storage/limiter/redis.py.
--
-- KEYS, per limit in order: tokens -> its ZSET, HASH and STRING (as in rate_admit.v1.lua);
--   concurrent -> its ZSET.
-- ARGV: now_ms (-1: Redis's clock), window_ms, ticket, tokens used, then per limit: 't' | 'c'.

local now = tonumber(ARGV[1])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local cutoff = now - tonumber(ARGV[2])
local ticket = ARGV[3]
local tokens = tonumber(ARGV[4])
local BATCH = 256

local function prune_tokens(z, h, s)
  while true do
    local gone = redis.call('ZRANGEBYSCORE', z, '-inf', cutoff, 'LIMIT', 0, BATCH)
    if #gone == 0 then break end
    local vals = redis.call('HMGET', h, unpack(gone))
    local freed = 0
    for i = 1, #vals do freed = freed + (tonumber(vals[i]) or 0) end
    redis.call('HDEL', h, unpack(gone))
    redis.call('ZREM', z, unpack(gone))
    redis.call('DECRBY', s, freed)
  end
  if redis.call('ZCARD', z) == 0 then redis.call('DEL', h, s) end
end

local k = 1
for i = 5, #ARGV do
  if ARGV[i] == 't' then
    local z, h, s = KEYS[k], KEYS[k + 1], KEYS[k + 2]
    k = k + 3
    prune_tokens(z, h, s)
    if redis.call('ZSCORE', z, ticket) then
      local old = tonumber(redis.call('HGET', h, ticket)) or 0
      redis.call('HSET', h, ticket, tokens)
      redis.call('INCRBY', s, tokens - old)
    end
  else
    redis.call('ZREM', KEYS[k], ticket)
    k = k + 1
  end
end
return 0
