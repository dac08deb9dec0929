-- The sessions server: token usage and the policy's state blob per session,
-- and operator tokens (allowed to install, grant and remove plugins).

ALTER TABLE sessions ADD COLUMN input_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN output_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN policy_state TEXT;  -- base64; opaque to the host
ALTER TABLE tokens ADD COLUMN admin BIGINT NOT NULL DEFAULT 0;
