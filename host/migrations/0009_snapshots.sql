-- Snapshots of a session's desktop files (its home, as a tar archive),
-- taken after runs and for forks: where each is kept, and after which
-- event it was taken.
CREATE TABLE snapshots (
    session_id  TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    seq         BIGINT NOT NULL,       -- the session's last event when taken
    location    TEXT NOT NULL,         -- a file path on the host that took it
    bytes       BIGINT NOT NULL,
    created_ms  BIGINT NOT NULL,
    PRIMARY KEY (session_id, seq)
);
-- The snapshot a session's next desktop starts from (a fork's), and where
-- a fork came from.
ALTER TABLE sessions ADD COLUMN restore_from TEXT;
ALTER TABLE sessions ADD COLUMN forked_from TEXT;
ALTER TABLE sessions ADD COLUMN forked_at BIGINT;
