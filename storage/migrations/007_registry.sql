-- The resource pool (issue 14): departments, stations, cameras, scene collections, zones
-- and routing rules, all in the database so that a province registers its own instead of
-- the shipped demo set. The registry folder (geo/registry_folder.py) is the one exchange
-- format; storage/registry.py imports and exports it.
--
-- Every resource has one owner department, a status and free properties (the extra columns
-- of the registry folder). Retiring sets status = 'retired' and never deletes: clues,
-- readings, grants and the audit log keep pointing at the row. updated_at moves only when
-- a row really changes, so it tells when the registry last changed.
--
-- Every import (and every API change) sends NOTIFY offsite_registry with the kind that
-- changed ('department', 'station', 'camera', 'scene_collection', 'zone', 'routing_rule')
-- inside its transaction: listeners (workers, ingesters, the API) reload on commit.

ALTER TABLE departments ADD COLUMN IF NOT EXISTS status text NOT NULL DEFAULT 'active';
ALTER TABLE departments ADD COLUMN IF NOT EXISTS properties jsonb NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE departments ADD COLUMN IF NOT EXISTS updated_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE departments ADD CONSTRAINT departments_status_check
    CHECK (status IN ('active', 'retired'));

ALTER TABLE stations ADD COLUMN IF NOT EXISTS status text NOT NULL DEFAULT 'active';
ALTER TABLE stations ADD COLUMN IF NOT EXISTS updated_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE stations ADD CONSTRAINT stations_status_check
    CHECK (status IN ('active', 'retired'));

ALTER TABLE cameras ADD COLUMN IF NOT EXISTS status text NOT NULL DEFAULT 'active';
ALTER TABLE cameras ADD COLUMN IF NOT EXISTS properties jsonb NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE cameras ADD COLUMN IF NOT EXISTS updated_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE cameras ADD CONSTRAINT cameras_status_check
    CHECK (status IN ('active', 'retired'));

ALTER TABLE scene_collections ADD COLUMN IF NOT EXISTS status text NOT NULL DEFAULT 'active';
ALTER TABLE scene_collections ADD COLUMN IF NOT EXISTS updated_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE scene_collections ADD CONSTRAINT scene_collections_status_check
    CHECK (status IN ('active', 'retired'));

-- Zones: jurisdictions and regulatory areas. geometry is a GeoJSON geometry (WGS84 lon/lat)
-- as jsonb, already repaired (valid) by the importer; shapes are used in Python (geo/), so
-- plain PostgreSQL needs no PostGIS. bbox = [minlon, minlat, maxlon, maxlat] for filters.
CREATE TABLE IF NOT EXISTS zones (
    id          text PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('jurisdiction', 'protected_farmland',
                    'ecological_redline', 'water_source', 'forest', 'enterprise_site',
                    'restricted_area')),
    name        text NOT NULL DEFAULT '',
    county      text NOT NULL DEFAULT '',
    owner_dept  text REFERENCES departments(id),
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'retired')),
    properties  jsonb NOT NULL DEFAULT '{}'::jsonb,
    geometry    jsonb NOT NULL,
    bbox        double precision[] GENERATED ALWAYS AS (offsite_geojson_bbox(geometry)) STORED,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS zones_kind_idx ON zones (kind) WHERE status = 'active';

-- Routing rules, in order (first match wins): as geo/data/routing_rules.csv. position is
-- the 1-based row number among the rules. A routing.csv is always the whole table: rows
-- past its end are retired on import. department is a role ("natural-resources", resolved
-- per county), @owner, or a plain department id.
CREATE TABLE IF NOT EXISTS routing_rules (
    position    integer PRIMARY KEY CHECK (position > 0),
    clue        text NOT NULL,
    zone_kind   text NOT NULL,
    department  text NOT NULL,
    why         text NOT NULL DEFAULT '',
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'retired')),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The directory of pooled resources (same first three columns as before, so access checks
-- keep working), now with name, status, location and properties for GET /resources.
-- Scene collections have no point location (lon/lat NULL).
CREATE OR REPLACE VIEW resources AS
    SELECT 'station'::text AS kind, id, owner_dept, name, status, lon, lat, properties,
           updated_at FROM stations
    UNION ALL SELECT 'camera'::text, id, owner_dept, name, status, lon, lat, properties,
           updated_at FROM cameras
    UNION ALL SELECT 'scene_collection'::text, id, owner_dept, name, status,
           NULL::double precision, NULL::double precision, properties, updated_at
           FROM scene_collections;
