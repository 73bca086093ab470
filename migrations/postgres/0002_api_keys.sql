-- tower-mcp-auth KeyStore, PostgreSQL: API keys with a lifecycle. Applied by
-- PostgresStore::migrate() after 0001. Only SHA-256 hashes of keys are stored. Times are
-- microseconds since the Unix epoch, from the clock of the process that made the change.

CREATE TABLE IF NOT EXISTS mcp_auth_api_keys (
    id           TEXT PRIMARY KEY,
    hash         BYTEA NOT NULL UNIQUE CHECK (octet_length(hash) = 32),
    name         TEXT NOT NULL,
    user_id      TEXT,
    role         TEXT,
    -- A JSON array of strings.
    permissions  TEXT NOT NULL DEFAULT '[]',
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    revoked_at   BIGINT,
    rotated_to   TEXT,
    last_used_at BIGINT
);

-- One row: bumped in the transaction of every insert, revoke and rotation (never by usage
-- writes), so instances syncing keys skip the full load while nothing changed.
CREATE TABLE IF NOT EXISTS mcp_auth_api_key_revision (
    id       SMALLINT PRIMARY KEY CHECK (id = 1),
    revision BIGINT NOT NULL
);
INSERT INTO mcp_auth_api_key_revision (id, revision) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
