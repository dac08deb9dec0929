-- Each fleet host publishes how many desktops it could hand out now (warm
-- ones plus room to boot more), so a host without room can place a new
-- session on the host with the most.
ALTER TABLE fleet_hosts ADD COLUMN free_sandboxes BIGINT NOT NULL DEFAULT 0;
