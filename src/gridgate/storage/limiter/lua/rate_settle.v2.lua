-- gridgate rate limits, v2: settle one admission, atomically and idempotently: its entry in
-- every tokens limit (while still in the window) now counts what it used; its slots are freed.
-- The contract is in src/gridgate/storage/limiter/port.py; the layout in storage/limiter/redis.py.
-- v2 keeps v1's layout and invariants (so v1 and v2 processes may share a Redis) with fewer
-- calls: once pruned, a tokens HASH holds exactly the tickets still in the window, so the
-- ticket's tokens in it say whether it is there (no ZSCORE); the ZSET is counted only when
-- something was pruned (it can only have become empty then: admission, settle and pruning
-- write the three keys together, with one TTL); nothing is written when what the ticket used
-- is what it reserved. The request's own arguments come first, as in rate_admit.v2.lua.
--
-- KEYS, per limit in order: tokens -> its ZSET, HASH and STRING (as in rate_admit.v2.lua);
--   concurrent -> its ZSET.
-- ARGV: ticket, tokens used, now_ms (-1: Redis's clock), window_ms, then per limit: 't' | 'c'.

local ticket = ARGV[1]
local tokens = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- numbers go to Redis as strings made once (Redis prints a Lua number with %.17g)
local cutoff = string.format('%d', now - tonumber(ARGV[4]))
local BATCH_S = '256'

local function prune_tokens(z, h, s)
  local pruned = false
  while true do
    local gone = redis.call('ZRANGEBYSCORE', z, '-inf', cutoff, 'LIMIT', '0', BATCH_S)
    if #gone == 0 then break end
    pruned = true
    local vals = redis.call('HMGET', h, unpack(gone))
    local freed = 0
    for i = 1, #vals do freed = freed + (tonumber(vals[i]) or 0) end
    redis.call('HDEL', h, unpack(gone))
    redis.call('ZREM', z, unpack(gone))
    redis.call('DECRBY', s, freed)
  end
  if pruned and redis.call('ZCARD', z) == 0 then redis.call('DEL', h, s) end
end

local k = 1
for i = 5, #ARGV do
  if ARGV[i] == 't' then
    local z, h, s = KEYS[k], KEYS[k + 1], KEYS[k + 2]
    k = k + 3
    prune_tokens(z, h, s)
    local old = tonumber(redis.call('HGET', h, ticket))
    if old and old ~= tokens then
      redis.call('HSET', h, ticket, ARGV[2])
      redis.call('INCRBY', s, string.format('%d', tokens - old))
    end
  else
    redis.call('ZREM', KEYS[k], ticket)
    k = k + 1
  end
end
return 0
