-- Power monitoring of pollution-control equipment (issue 18, 用电监控/分表计电).
--
-- power_channels: which meter channel measures which side of an entity (its production
-- line or its treatment equipment), from the registry folder's power_channels.csv. The id
-- is 'meter/channel' (geo/registry_power.py), so the registry import upserts, prunes and
-- exports these rows as every other kind. A meter listed here is a registered source: its
-- readings (station = meter, code = channel, value in kW) are not counted as unregistered
-- and the env rules leave them to the power rules.
--
-- shutdowns: declared shutdowns (heavy-pollution emergency lists) from shutdowns.csv;
-- scope is an entity id or a zone id; the id is 'scope@start' (start in UTC).
CREATE TABLE IF NOT EXISTS power_channels (
    id          text PRIMARY KEY,
    name        text NOT NULL DEFAULT '',
    entity      text NOT NULL,
    meter       text NOT NULL,
    channel     text NOT NULL,
    role        text NOT NULL CHECK (role IN ('production', 'treatment')),
    rated_kw    double precision CHECK (rated_kw >= 0),
    idle_kw     double precision NOT NULL DEFAULT 0 CHECK (idle_kw >= 0),
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'retired')),
    properties  jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (meter, channel)
);
CREATE INDEX IF NOT EXISTS power_channels_entity_idx ON power_channels (entity)
    WHERE status = 'active';

CREATE TABLE IF NOT EXISTS shutdowns (
    id          text PRIMARY KEY,
    name        text NOT NULL DEFAULT '',
    scope       text NOT NULL,
    level       text NOT NULL,
    start       timestamptz NOT NULL,
    "end"       timestamptz NOT NULL,
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'retired')),
    properties  jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ("end" > start)
);

-- Power clues are about an entity: its owner department owns them (access checks, grants),
-- as a station's owner owns its env clues.
CREATE OR REPLACE FUNCTION offsite_owner(p_kind text, p_id text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT owner_dept FROM (
        SELECT owner_dept FROM resources WHERE kind = p_kind AND id = p_id
        UNION ALL
        SELECT owner_dept FROM entities WHERE p_kind = 'entity' AND id = p_id
    ) o LIMIT 1
$$;
