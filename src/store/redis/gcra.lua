-- GCRA check-and-consume (or peek) for one key, timed by the Redis server clock.
--
-- KEYS[1]  the key holding the theoretical arrival time (TAT), in µs since the Unix epoch
-- ARGV[1]  emission interval, µs
-- ARGV[2]  tau (the full bucket), µs
-- ARGV[3]  cost, cells
-- ARGV[4]  "1" to consume when allowed, "0" to peek
--
-- Returns {allowed (1/0, or -1 when the stored value is not a number), now, stored TAT or 0}.
-- The client derives remaining / retry_after / reset_after from now and the TAT, with the
-- same arithmetic as every other store. All numbers are integers below 2^53, so Lua's doubles
-- hold them exactly (µs since the epoch is about 2^51; a period is at most 366 days).
--
-- The key expires when its bucket is full again: an absent key and an old TAT are the same.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])

local tat = 0
local raw = redis.call('GET', KEYS[1])
if raw then
  tat = tonumber(raw)
  if not tat then
    return {-1, now, 0}
  end
end

local new_tat = math.max(tat, now) + interval * cost
if new_tat - now > tau then
  return {0, now, tat}
end
if ARGV[4] == '1' and cost > 0 then
  local ttl_ms = math.ceil((new_tat - now) / 1000)
  redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', string.format('%d', ttl_ms))
end
return {1, now, tat}
