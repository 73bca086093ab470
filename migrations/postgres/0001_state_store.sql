-- tower-mcp-auth StateStore, PostgreSQL. Applied by PostgresStore::migrate(), which records
-- it in tower_mcp_auth_migrations (not _sqlx_migrations: that table belongs to the app).
-- Every object is created in the first schema of the connection's search_path.
-- All times are microseconds since the Unix epoch, read from the server clock.

-- Rate-limit state: one theoretical arrival time (TAT) per key. UNLOGGED: losing it in a crash
-- only refills buckets, and skipping the WAL makes the hot update path much cheaper. No index
-- on tat: it changes on every request, and purge_expired() can afford a sequential scan.
CREATE UNLOGGED TABLE IF NOT EXISTS mcp_auth_gcra (
    key TEXT PRIMARY KEY,
    tat BIGINT NOT NULL
);

-- Single-use values and plain TTL'd key/value data (OAuth state, tokens, sessions).
CREATE TABLE IF NOT EXISTS mcp_auth_kv (
    key        TEXT PRIMARY KEY,
    value      BYTEA NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS mcp_auth_kv_expires_at ON mcp_auth_kv (expires_at);

CREATE OR REPLACE FUNCTION mcp_auth_now_us() RETURNS BIGINT
LANGUAGE sql VOLATILE AS $$
    SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::BIGINT
$$;

-- GCRA in one round trip. Locks the key's row (creating it if needed) so concurrent callers
-- serialise on it, reads the server clock *after* the lock, and stores the new TAT only when
-- the request is allowed. Returns the clock and the TAT it found (0 when absent); the client
-- derives the full decision from them with the same arithmetic as every other store.
CREATE OR REPLACE FUNCTION mcp_auth_gcra_step(
    p_key TEXT, p_interval BIGINT, p_tau BIGINT, p_cost BIGINT, p_consume BOOLEAN,
    OUT out_now BIGINT, OUT out_tat BIGINT
)
LANGUAGE plpgsql AS $$
DECLARE
    v_new BIGINT;
BEGIN
    IF p_consume THEN
        -- A row to lock must exist; the unique index serialises concurrent first inserts.
        -- Loop because purge_expired() may delete the row between the insert and the lock.
        LOOP
            INSERT INTO mcp_auth_gcra AS g (key, tat) VALUES (p_key, 0)
            ON CONFLICT (key) DO NOTHING;
            SELECT g.tat INTO out_tat FROM mcp_auth_gcra AS g WHERE g.key = p_key FOR UPDATE;
            EXIT WHEN FOUND;
        END LOOP;
    ELSE
        SELECT g.tat INTO out_tat FROM mcp_auth_gcra AS g WHERE g.key = p_key;
        out_tat := COALESCE(out_tat, 0);
    END IF;
    out_now := mcp_auth_now_us();
    v_new := GREATEST(out_tat, out_now) + p_interval * p_cost;
    IF p_consume AND v_new - out_now <= p_tau THEN
        UPDATE mcp_auth_gcra AS g SET tat = v_new WHERE g.key = p_key;
    END IF;
END
$$;
