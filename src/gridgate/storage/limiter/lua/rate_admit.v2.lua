-- gridgate rate limits, v2: admit one request against every limit or none, atomically.
-- The contract is in src/gridgate/storage/limiter/port.py; the layout in storage/limiter/redis.py.
-- v2 keeps v1's layout and invariants (a tokens HASH holds the tickets of its ZSET, the STRING
-- their total), so v1 and v2 processes may share a Redis during an upgrade; it makes fewer calls:
-- a ticket's tokens are read once, the total is written with its TTL in one SET, and the
-- request's own arguments come first (the rest is the same for every request of a key, and
-- the limiter sends it pre-encoded).
--
-- KEYS, per limit in order: requests -> its ZSET (ticket -> admitted ms);
--   tokens -> its ZSET (ticket -> admitted ms), HASH (ticket -> tokens), STRING (their total);
--   concurrent -> its ZSET (ticket -> slot expiry ms).
-- ARGV: ticket, tokens, now_ms (-1: Redis's clock), window_ms, slot_ttl_ms, key_margin_ms,
--   slot_wait_cap_ms, then per limit: kind ('r' | 't' | 'c'), limit.
-- Returns {admitted (0|1), blocked (1-based index, 0: none), retry_after_ms, never (0|1),
--   then per limit: remaining, reset_ms}.

local ticket = ARGV[1]
local tokens = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local window = tonumber(ARGV[4])
local ttl = tonumber(ARGV[5])
local margin = tonumber(ARGV[6])
local cap = tonumber(ARGV[7])
local n = (#ARGV - 7) / 2
local cutoff = now - window
local BATCH, BATCH_S = 256, '256'
-- what goes to Redis as a number goes as the string of an integer, made once: Redis prints a Lua
-- number argument with %.17g, each time (the costliest part of v1's calls)
local fmt = string.format
local now_s, cutoff_s, slot_until = fmt('%d', now), fmt('%d', cutoff), fmt('%d', now + ttl)
local keep, slot_keep = fmt('%d', window + margin), fmt('%d', ttl + margin)

-- the score of the i-th lowest member (0-based)
local function nth_score(key, i)
  local at = fmt('%d', i)
  return tonumber(redis.call('ZRANGE', key, at, at, 'WITHSCORES')[2])
end

-- drop the entries that left the window; returns the total of those that remain
local function prune_tokens(z, h, s)
  while true do
    local gone = redis.call('ZRANGEBYSCORE', z, '-inf', cutoff_s, 'LIMIT', '0', BATCH_S)
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
    redis.call('ZREMRANGEBYSCORE', z, '-inf', kind == 'r' and cutoff_s or now_s)
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
local written = {}
for i = 1, n do
  local z, lim = KEYS[first[i]], lims[i]
  local remaining, reset = 0, window
  if kinds[i] == 'r' then
    redis.call('ZADD', z, now_s, ticket)
    redis.call('PEXPIRE', z, keep)
    remaining = lim - used[i] - 1
  elseif kinds[i] == 't' then
    -- a counter named twice is written once: the second time would change nothing (v1 read
    -- the ticket's tokens again here, and added 0)
    if not written[z] then
      written[z] = true
      local h, s = KEYS[first[i] + 1], KEYS[first[i] + 2]
      redis.call('ZADD', z, now_s, ticket)
      redis.call('HSET', h, ticket, ARGV[2])
      -- the total after pruning, less what this ticket held, plus what it now holds
      redis.call('SET', s, fmt('%d', used[i] + tokens), 'PX', keep)
      redis.call('PEXPIRE', z, keep)
      redis.call('PEXPIRE', h, keep)
    end
    remaining = lim - used[i] - tokens
  else
    redis.call('ZADD', z, slot_until, ticket)
    redis.call('PEXPIRE', z, slot_keep)
    remaining = lim - used[i] - 1
    reset = slot_wait(z, used[i] + 1, lim)
  end
  out[#out + 1] = math.max(0, remaining)
  out[#out + 1] = reset
end
return out
