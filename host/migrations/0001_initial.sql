-- One schema for SQLite and PostgreSQL: portable types only (TEXT, BIGINT,
-- and bytes as base64 TEXT), times as milliseconds since the epoch.

CREATE TABLE tokens (
    hash        TEXT PRIMARY KEY,      -- SHA-256 of the token; the token itself is never stored
    user_id     TEXT NOT NULL,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT                 -- NULL: does not expire
);

CREATE TABLE sessions (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL,
    title       TEXT NOT NULL,
    status      TEXT NOT NULL,
    policy      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    last_seq    BIGINT NOT NULL        -- seq of the newest event; events are 1..=last_seq, no gaps
);
CREATE INDEX sessions_by_user ON sessions (user_id, created_at);

CREATE TABLE events (
    session_id  TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    seq         BIGINT NOT NULL,
    id          TEXT NOT NULL,
    kind        TEXT NOT NULL,
    source      TEXT NOT NULL,
    ts          BIGINT NOT NULL,
    payload     TEXT NOT NULL,         -- JSON
    PRIMARY KEY (session_id, seq)
);

CREATE TABLE images (
    sha256      TEXT PRIMARY KEY,      -- content address: one row per distinct image
    media_type  TEXT NOT NULL,
    width       BIGINT NOT NULL,
    height      BIGINT NOT NULL,
    data        TEXT NOT NULL          -- base64
);
