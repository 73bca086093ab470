-- GCRA refund for one key: gives back cells an allowed check-and-consume took.
--
-- KEYS[1]  the key holding the theoretical arrival time (TAT), in µs since the Unix epoch
-- ARGV[1]  how far to move the TAT back, µs (cost x emission interval)
--
-- Returns 1, or -1 when the stored value is not a number. An absent key is a full bucket:
-- nothing to give back. A TAT moved to the server's now or before is a full bucket too: the
-- key is deleted, as it would have expired then.
local raw = redis.call('GET', KEYS[1])
if not raw then
  return 1
end
local tat = tonumber(raw)
if not tat then
  return -1
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local new_tat = tat - tonumber(ARGV[1])
if new_tat <= now then
  redis.call('DEL', KEYS[1])
  return 1
end
local ttl_ms = math.ceil((new_tat - now) / 1000)
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', string.format('%d', ttl_ms))
return 1
