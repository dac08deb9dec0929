-- Plugins shared by a fleet: each component once by content, and the log
-- of installs, activations, removals and grant changes made through any
-- host's API, which every host applies in order to its own registry.

CREATE TABLE fleet_components (
    sha256 TEXT PRIMARY KEY,
    manifest TEXT NOT NULL,   -- plugin.toml
    data TEXT NOT NULL        -- base64
);

CREATE TABLE fleet_plugin_changes (
    id BIGSERIAL PRIMARY KEY,
    origin TEXT NOT NULL,     -- the host whose API made the change
    change TEXT NOT NULL,     -- JSON
    at BIGINT NOT NULL
);
