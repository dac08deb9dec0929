-- Each fleet host publishes what each user holds on it (desktops, running
-- agents), so the per-user caps hold across the fleet: a host counts what
-- the user holds on the other live hosts before granting more.
CREATE TABLE fleet_holdings (
    host_id     TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    sandboxes   BIGINT NOT NULL,
    runs        BIGINT NOT NULL,
    PRIMARY KEY (host_id, user_id)
);
CREATE INDEX fleet_holdings_by_user ON fleet_holdings (user_id);
