-- tower-mcp-auth StateStore, SQLite. Applied by SqliteStore::migrate(), which records it in
-- tower_mcp_auth_migrations. Times are microseconds since the Unix epoch (host clock).

-- Rate-limit state: one theoretical arrival time (TAT) per key.
CREATE TABLE IF NOT EXISTS mcp_auth_gcra (
    key TEXT PRIMARY KEY NOT NULL,
    tat INTEGER NOT NULL
) WITHOUT ROWID;

-- Single-use values and plain TTL'd key/value data (OAuth state, tokens, sessions).
CREATE TABLE IF NOT EXISTS mcp_auth_kv (
    key        TEXT PRIMARY KEY NOT NULL,
    value      BLOB NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS mcp_auth_kv_expires_at ON mcp_auth_kv (expires_at);
