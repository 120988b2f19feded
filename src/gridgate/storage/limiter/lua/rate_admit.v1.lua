-- gridgate rate limits, v1: admit one request against every limit or none, atomically.
-- The contract is in src/gridgate/storage/limiter/port.py; the layout in storage/limiter/redis.py.
--
-- KEYS, per limit in order: requests -> its ZSET (ticket -> admitted ms);
--   tokens -> its ZSET (ticket -> admitted ms), HASH (ticket -> tokens), STRING (their total);
--   concurrent -> its ZSET (ticket -> slot expiry ms).
-- ARGV: now_ms (-1: Redis's clock), window_ms, slot_ttl_ms, key_margin_ms, slot_wait_cap_ms,
--   ticket, tokens, then per limit: kind ('r' | 't' | 'c'), limit.
-- Returns {admitted (0|1), blocked (1-based index, 0: none), retry_after_ms, never (0|1),
--   then per limit: remaining, reset_ms}.

local now = tonumber(ARGV[1])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local window = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local margin = tonumber(ARGV[4])
local cap = tonumber(ARGV[5])
local ticket = ARGV[6]
local tokens = tonumber(ARGV[7])
local n = (#ARGV - 7) / 2
local cutoff = now - window
local BATCH = 256

-- the score of the i-th lowest member (0-based)
local function nth_score(key, i)
  return tonumber(redis.call('ZRANGE', key, i, i, 'WITHSCORES')[2])
end

-- drop the entries that left the window; returns the total of those that remain
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
  if redis.call('ZCARD', z) == 0 then
    redis.call('DEL', h, s)
    return 0
  end
  return tonumber(redis.call('GET', s)) or 0
end

-- ms until the oldest entries holding `needed` tokens have left the window
local function tokens_wait(z, h, needed)
  local freed, start = 0, 0
  while true do
    local r = redis.call('ZRANGE', z, start, start + BATCH - 1, 'WITHSCORES')
    if #r == 0 then return window end
    local ids = {}
    for i = 1, #r, 2 do ids[#ids + 1] = r[i] end
    local vals = redis.call('HMGET', h, unpack(ids))
    for i = 1, #ids do
      freed = freed + (tonumber(vals[i]) or 0)
      if freed >= needed then return tonumber(r[2 * i]) + window - now end
    end
    start = start + BATCH
  end
end

-- ms until one more slot is free (0: one is); for limit 0, until all are
local function slot_wait(z, count, lim)
  if count == 0 or count < lim then return 0 end
  return math.min(cap, nth_score(z, math.min(count - lim, count - 1)) - now)
end

-- 1. drop what expired, and see whether every limit admits. `used` leaves out what this
-- ticket itself holds, so a replay (the limiter retrying after a dropped connection) decides alike.
local kinds, lims, first, used = {}, {}, {}, {}
local k = 1
local blocked, longest = 0, 0 -- longest: the blocking wait, -1 for never
for i = 1, n do
  local kind = ARGV[6 + 2 * i]
  local lim = tonumber(ARGV[7 + 2 * i])
  local z = KEYS[k]
  kinds[i], lims[i], first[i] = kind, lim, k
  local wait = 0
  if kind == 't' then
    local h, s = KEYS[k + 1], KEYS[k + 2]
    k = k + 3
    used[i] = prune_tokens(z, h, s) - (tonumber(redis.call('HGET', h, ticket)) or 0)
    if lim < 1 or tokens > lim then
      wait = -1
    elseif used[i] + tokens > lim then
      wait = tokens_wait(z, h, used[i] + tokens - lim)
    end
  else
    k = k + 1
    redis.call('ZREMRANGEBYSCORE', z, '-inf', kind == 'r' and cutoff or now)
    local count = redis.call('ZCARD', z)
    if redis.call('ZSCORE', z, ticket) then count = count - 1 end
    used[i] = count
    if lim < 1 then
      wait = -1
    elseif kind == 'r' then
      if count >= lim then wait = nth_score(z, count - lim) + window - now end
    else
      wait = slot_wait(z, count, lim)
    end
  end
  if wait == -1 then
    if longest ~= -1 then blocked, longest = i, -1 end
  elseif wait > 0 and longest ~= -1 and wait > longest then
    blocked, longest = i, wait
  end
end

local out = {0, blocked, 0, 0}
if blocked ~= 0 then
  -- 2a. refused: nothing changes; where every limit stands
  if longest == -1 then out[3], out[4] = window, 1 else out[3] = longest end
  for i = 1, n do
    local z, lim, reset = KEYS[first[i]], lims[i], 0
    if kinds[i] == 'c' then
      reset = slot_wait(z, used[i], lim)
    elseif redis.call('EXISTS', z) == 1 then
      reset = nth_score(z, -1) + window - now
    end
    out[#out + 1] = math.max(0, lim - used[i])
    out[#out + 1] = reset
  end
  return out
end

-- 2b. admitted: count it everywhere; where every limit stands
out[1] = 1
for i = 1, n do
  local z, lim = KEYS[first[i]], lims[i]
  local remaining, reset = 0, window
  if kinds[i] == 'r' then
    redis.call('ZADD', z, now, ticket)
    redis.call('PEXPIRE', z, window + margin)
    remaining = lim - used[i] - 1
  elseif kinds[i] == 't' then
    local h, s = KEYS[first[i] + 1], KEYS[first[i] + 2]
    local old = tonumber(redis.call('HGET', h, ticket)) or 0
    redis.call('ZADD', z, now, ticket)
    redis.call('HSET', h, ticket, tokens)
    redis.call('INCRBY', s, tokens - old)
    redis.call('PEXPIRE', z, window + margin)
    redis.call('PEXPIRE', h, window + margin)
    redis.call('PEXPIRE', s, window + margin)
    remaining = lim - used[i] - tokens
  else
    redis.call('ZADD', z, now + ttl, ticket)
    redis.call('PEXPIRE', z, ttl + margin)
    remaining = lim - used[i] - 1
    reset = slot_wait(z, used[i] + 1, lim)
  end
  out[#out + 1] = math.max(0, remaining)
  out[#out + 1] = reset
end
return out
