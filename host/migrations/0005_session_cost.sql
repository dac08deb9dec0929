-- The session's estimated model cost, in millionths of a US dollar (from
-- the operator's price table when each call's usage arrived).
ALTER TABLE sessions ADD COLUMN cost_micros BIGINT NOT NULL DEFAULT 0;
