-- A session's switches set by its person (ask before acting, ...), as JSON.
ALTER TABLE sessions ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';
