-- Unregistered sources (issue 14, point 6): readings from a station the registry does not
-- list (or lists as retired) are stored in readings as usual -- nothing is lost and no
-- stations row is invented -- and counted here, one row per source, by the readings sink
-- (storage/unregistered.py). The env detector raises one unregistered_source clue per
-- station (detectors/env_registry.py); this table is what an operator reads to decide
-- whether to register the station. readings counts values received, re-deliveries included.

CREATE TABLE IF NOT EXISTS unregistered_sources (
    kind         text NOT NULL DEFAULT 'station',
    id           text NOT NULL,
    first_seen   timestamptz NOT NULL,
    last_seen    timestamptz NOT NULL,
    readings     bigint NOT NULL DEFAULT 0,
    last_source  text NOT NULL DEFAULT '',
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, id)
);

-- The directory (GET /resources) looks up pending requests of a department per resource.
CREATE INDEX IF NOT EXISTS access_requests_pending_idx
    ON access_requests (requester_dept, resource_kind, resource_id) WHERE state = 'pending';
