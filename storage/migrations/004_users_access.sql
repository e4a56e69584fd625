-- Users, bearer tokens, department access requests and grants, the audit log, and the
-- clue change feed behind the API's Server-Sent Events.
--
-- Tokens are stored as sha256 of a random 32-byte secret (high entropy, so a plain hash
-- is enough); the secret is shown once when issued and never stored.
-- A grant lets a department use another department's resource (station, camera, scene
-- collection) with some permissions (live, history, evidence) between valid_from and
-- valid_until, unless revoked. The access rules themselves are in api/access.py.

CREATE TABLE IF NOT EXISTS users (
    id          text PRIMARY KEY,
    department  text NOT NULL REFERENCES departments(id),
    role        text NOT NULL
                CHECK (role IN ('center_operator', 'inspector', 'department_user', 'admin')),
    disabled    boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS api_tokens (
    id            text PRIMARY KEY,
    user_id       text NOT NULL REFERENCES users(id),
    token_sha256  text NOT NULL UNIQUE CHECK (token_sha256 ~ '^[0-9a-f]{64}$'),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    revoked_at    timestamptz,
    last_used_at  timestamptz
);
CREATE INDEX IF NOT EXISTS api_tokens_user_idx ON api_tokens (user_id);

-- One row per requested resource (a request for several resources is split per resource,
-- since each goes to that resource's owner).
CREATE TABLE IF NOT EXISTS access_requests (
    id              bigserial PRIMARY KEY,
    requester_dept  text NOT NULL REFERENCES departments(id),
    requested_by    text NOT NULL REFERENCES users(id),
    resource_kind   text NOT NULL CHECK (resource_kind IN ('station', 'camera', 'scene_collection')),
    resource_id     text NOT NULL,
    owner_dept      text NOT NULL REFERENCES departments(id),
    purpose         text NOT NULL,
    permissions     text[] NOT NULL
                    CHECK (permissions <@ ARRAY['live', 'history', 'evidence']::text[]
                           AND cardinality(permissions) > 0),
    valid_from      timestamptz NOT NULL,
    valid_until     timestamptz NOT NULL CHECK (valid_until > valid_from),
    state           text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'approved', 'denied', 'withdrawn')),
    decided_by      text REFERENCES users(id),
    decided_at      timestamptz,
    decision_note   text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS access_requests_owner_idx ON access_requests (owner_dept, state);
CREATE INDEX IF NOT EXISTS access_requests_requester_idx ON access_requests (requester_dept, state);

CREATE TABLE IF NOT EXISTS grants (
    id             bigserial PRIMARY KEY,
    request_id     bigint UNIQUE REFERENCES access_requests(id),
    grantee_dept   text NOT NULL REFERENCES departments(id),
    resource_kind  text NOT NULL CHECK (resource_kind IN ('station', 'camera', 'scene_collection')),
    resource_id    text NOT NULL,
    permissions    text[] NOT NULL,
    valid_from     timestamptz NOT NULL,
    valid_until    timestamptz NOT NULL,
    granted_by     text NOT NULL REFERENCES users(id),
    granted_at     timestamptz NOT NULL DEFAULT now(),
    revoked_at     timestamptz,
    revoked_by     text REFERENCES users(id)
);
CREATE INDEX IF NOT EXISTS grants_lookup_idx
    ON grants (grantee_dept, resource_kind, resource_id) WHERE revoked_at IS NULL;

-- Who read which evidence or media, under which grant, when.
CREATE TABLE IF NOT EXISTS audit_log (
    time           timestamptz NOT NULL DEFAULT now(),
    id             bigserial,
    user_id        text NOT NULL,
    department     text NOT NULL,
    action         text NOT NULL,
    resource_kind  text,
    resource_id    text,
    owner_dept     text,
    clue_id        text,
    evidence_id    text,
    grant_id       bigint,
    detail         jsonb NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (id, time)
) /*@partitioned(time)*/;
/*@timeseries(audit_log, time, chunk=30 days, segmentby=owner_dept, compress_after=90 days, retain=10 years)*/
CREATE INDEX IF NOT EXISTS audit_log_owner_idx ON audit_log (owner_dept, time DESC);

-- Change feed: every insert or update of a clue takes the next event_seq and notifies
-- channel offsite_clues with the clue id and that number. Listeners treat the notice as
-- a wake-up and read clues with event_seq above the last one they sent, so a reconnecting
-- client (Last-Event-ID) replays what it missed from the table itself.
CREATE SEQUENCE IF NOT EXISTS clue_event_seq;
ALTER TABLE clues ADD COLUMN IF NOT EXISTS event_seq bigint;
UPDATE clues SET event_seq = nextval('clue_event_seq') WHERE event_seq IS NULL;
CREATE UNIQUE INDEX IF NOT EXISTS clues_event_seq_idx ON clues (event_seq);

CREATE OR REPLACE FUNCTION offsite_clue_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.event_seq := nextval('clue_event_seq');
    PERFORM pg_notify('offsite_clues',
                      json_build_object('clue_id', NEW.clue_id, 'event_id', NEW.event_seq)::text);
    RETURN NEW;
END $$;

DROP TRIGGER IF EXISTS clues_changed ON clues;
CREATE TRIGGER clues_changed BEFORE INSERT OR UPDATE ON clues
    FOR EACH ROW EXECUTE FUNCTION offsite_clue_changed();

-- Bounding box [minlon, minlat, maxlon, maxlat] of a GeoJSON geometry (NULL if none).
CREATE OR REPLACE FUNCTION offsite_geojson_bbox(geom jsonb) RETURNS double precision[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN count(*) = 0 THEN NULL ELSE
           ARRAY[min((p->>0)::float8), min((p->>1)::float8),
                 max((p->>0)::float8), max((p->>1)::float8)] END
    FROM jsonb_path_query(geom,
         'strict $.**.coordinates.** ? (@.type() == "array" && @[0].type() == "number")') AS p
$$;

-- Every owned resource, for access checks: kind is the resource_kind of requests and grants.
CREATE OR REPLACE VIEW resources AS
    SELECT 'station'::text AS kind, id, owner_dept FROM stations
    UNION ALL SELECT 'camera'::text, id, owner_dept FROM cameras
    UNION ALL SELECT 'scene_collection'::text, id, owner_dept FROM scene_collections;

CREATE OR REPLACE FUNCTION offsite_owner(p_kind text, p_id text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT owner_dept FROM resources WHERE kind = p_kind AND id = p_id LIMIT 1
$$;

-- The live grant (latest ending first) that lets p_dept use a resource with p_perm, if any.
CREATE OR REPLACE FUNCTION offsite_live_grant(p_dept text, p_kind text, p_id text, p_perm text)
RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT id FROM grants
    WHERE grantee_dept = p_dept AND resource_kind = p_kind AND resource_id = p_id
      AND p_perm = ANY (permissions) AND revoked_at IS NULL
      AND valid_from <= now() AND now() < valid_until
    ORDER BY valid_until DESC LIMIT 1
$$;
