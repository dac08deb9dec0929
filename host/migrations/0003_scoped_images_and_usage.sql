-- Images belong to the sessions that stored them: readable only through one
-- of them, deleted with the last. Existing images are linked to the sessions
-- whose tool results name them.
CREATE TABLE session_images (
    session_id  TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    PRIMARY KEY (session_id, sha256)
);
CREATE INDEX session_images_by_image ON session_images (sha256);
INSERT INTO session_images (session_id, sha256)
    SELECT DISTINCT e.session_id, i.sha256 FROM events e JOIN images i
        ON e.kind = 'tool_result' AND e.payload LIKE '%' || i.sha256 || '%';
DELETE FROM images WHERE NOT EXISTS (SELECT 1 FROM session_images s WHERE s.sha256 = images.sha256);

-- LLM tokens spent per user per UTC day, for the daily per-user cap.
CREATE TABLE user_usage (
    user_id     TEXT NOT NULL,
    day         BIGINT NOT NULL,       -- days since the epoch (UTC)
    tokens      BIGINT NOT NULL,
    PRIMARY KEY (user_id, day)
);
