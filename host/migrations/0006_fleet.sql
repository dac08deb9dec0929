-- A fleet: hosts sharing one PostgreSQL database. Each host row is its
-- heartbeat and the address other hosts forward commands to; each lease
-- says which host runs a session's actor until when (milliseconds, on the
-- database's clock so hosts' clocks need not agree). Single-machine
-- (SQLite) hosts leave both tables empty.

CREATE TABLE fleet_hosts (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    seen_at BIGINT NOT NULL
);

CREATE TABLE session_leases (
    session_id TEXT PRIMARY KEY REFERENCES sessions (id) ON DELETE CASCADE,
    host_id TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE INDEX session_leases_by_host ON session_leases (host_id);
