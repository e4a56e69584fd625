-- Regulated entities (issue 17): the enterprises and sites that supervision is about. Risk
-- scores, random inspection draws and joint inspections are per entity. The registry folder's
-- entities.csv (id,name,credit_class,owner_dept,licence,zones) is imported like the other
-- kinds (storage/registry.py): upsert by id, retire instead of delete, audited, announced with
-- NOTIFY offsite_registry, 'entity'.
--
-- credit_class is the grade of the enterprise environmental credit evaluation (A best,
-- D worst); the credit system's export can be re-imported at any time as an entities.csv of
-- id,credit_class, which changes only that column. zones lists the enterprise-site zone ids
-- of the entity (no foreign key: zones and entities are imported in one transaction in any
-- order, and the registry check refuses unknown ids).
--
-- Stations and cameras name the entity they watch in their entity column (NULL: ambient
-- monitoring, or a camera on public land).

CREATE TABLE IF NOT EXISTS entities (
    id            text PRIMARY KEY,
    name          text NOT NULL DEFAULT '',
    credit_class  text CHECK (credit_class IN ('A', 'B', 'C', 'D')),
    owner_dept    text REFERENCES departments(id),
    licence       text,
    zones         text[] NOT NULL DEFAULT '{}',
    status        text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'retired')),
    properties    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS entities_owner_idx ON entities (owner_dept) WHERE status = 'active';

ALTER TABLE stations ADD COLUMN IF NOT EXISTS entity text;
ALTER TABLE cameras ADD COLUMN IF NOT EXISTS entity text;
CREATE INDEX IF NOT EXISTS stations_entity_idx ON stations (entity) WHERE entity IS NOT NULL;
CREATE INDEX IF NOT EXISTS cameras_entity_idx ON cameras (entity) WHERE entity IS NOT NULL;
