-- tower-mcp-auth KeyStore, Redis: every change to the API keys, in one atomic step.
-- KEYS[1] records (hash: id -> JSON), KEYS[2] hashes (hash: key hash hex -> id),
-- KEYS[3] revision (integer, bumped by every change).
-- ARGV[1] id, ARGV[2] key hash, ARGV[3] JSON: a record to add ('' id: none).
-- ARGV[4] id, ARGV[5] expected JSON, ARGV[6] new JSON: a record to change, only if it still
-- holds the expected JSON ('' id: none).
-- Returns 1 when done, 0 when the record changed since it was read (read again, retry),
-- -1 when the new record's id or hash is taken.
if ARGV[4] ~= '' and redis.call('HGET', KEYS[1], ARGV[4]) ~= ARGV[5] then
    return 0
end
if ARGV[1] ~= '' then
    if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 or redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then
        return -1
    end
    redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
    redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
end
if ARGV[4] ~= '' then
    redis.call('HSET', KEYS[1], ARGV[4], ARGV[6])
end
redis.call('INCR', KEYS[3])
return 1
