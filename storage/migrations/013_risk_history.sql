-- Risk per regulated entity, part 2 (issue 17): which clues belong to an entity, the queue
-- of entities whose score must be recomputed, and the score's history.
--
-- An entity's clues: clues about a station or camera whose entity column names it, power
-- clues about the entity itself, and clues whose route touches one of its enterprise-site
-- zones (clues.zones, a list of {"id", "kind", ...} objects). offsite_clues_entities answers it for a set of clues.
--
-- Recompute on change: the formula is Python (oversight/risk.py), so the database only
-- marks what changed. Every insert or update of a clue, every change of a task's result,
-- of a station's or camera's entity and of an entity's zones puts the entities concerned
-- into entity_risk_dirty (one row per entity however often it changes) and notifies
-- channel offsite_risk when a row is new. The API's recomputer (api/risk_feed.py) LISTENs,
-- takes the queued rows (FOR UPDATE SKIP LOCKED, so several API instances share the work),
-- recomputes those entities and deletes their rows in the same transaction; a change
-- committed meanwhile queues the entity again. Decay needs no event: the recomputer also
-- recomputes every entity every Settings.risk_refresh_s.
--
-- entity_risk_history: one row per recompute that moved the score by
-- Settings.risk_history_step or more since the entity's last history row, or changed its
-- level (and the first one), what GET /risk/{entity} shows as history.

ALTER TABLE entity_risk ADD COLUMN IF NOT EXISTS clues integer NOT NULL DEFAULT 0;

CREATE TABLE IF NOT EXISTS entity_risk_history (
    entity       text NOT NULL REFERENCES entities(id),
    computed_at  timestamptz NOT NULL,
    score        double precision NOT NULL CHECK (score >= 0),
    level        text NOT NULL CHECK (level IN ('low', 'medium', 'high')),
    clues        integer NOT NULL DEFAULT 0,
    PRIMARY KEY (entity, computed_at)
);

CREATE TABLE IF NOT EXISTS entity_risk_dirty (
    entity  text PRIMARY KEY,
    since   timestamptz NOT NULL DEFAULT now()
);

-- the lookups an entity's recompute makes: clues by subject, clues by zone id
CREATE INDEX IF NOT EXISTS clues_subject_idx ON clues (subject);
-- fastupdate off: a zone lookup must not scan a long pending list (bench/bench_risk.py)
CREATE INDEX IF NOT EXISTS clues_zones_gin ON clues USING gin (zones jsonb_path_ops)
    WITH (fastupdate = off);
CREATE INDEX IF NOT EXISTS entities_zones_gin ON entities USING gin (zones);

-- The entities of a set of clues (given as aligned arrays: one call per statement, set-based,
-- since it runs for every batch of clues written).
CREATE OR REPLACE FUNCTION offsite_clues_entities(p_modality text[], p_subject text[],
                                                  p_zones jsonb[])
RETURNS text[] LANGUAGE sql STABLE AS $$
    WITH c AS (SELECT * FROM unnest(p_modality, p_subject, p_zones) AS c(modality, subject, zones))
    SELECT ARRAY(
        SELECT s.entity FROM c JOIN stations s ON s.id = c.subject
        WHERE c.modality = 'env' AND s.entity IS NOT NULL
        UNION
        SELECT k.entity FROM c JOIN cameras k ON k.id = c.subject
        WHERE c.modality = 'video' AND k.entity IS NOT NULL
        UNION
        SELECT e.id FROM c JOIN entities e ON e.id = c.subject WHERE c.modality = 'power'
        UNION
        SELECT e.id FROM entities e WHERE e.zones && ARRAY(
            SELECT DISTINCT coalesce(z->>'id', z #>> '{}') FROM c CROSS JOIN LATERAL
            jsonb_array_elements(CASE WHEN jsonb_typeof(c.zones) = 'array' THEN c.zones
                                      ELSE '[]'::jsonb END) z))
$$;

CREATE OR REPLACE FUNCTION offsite_risk_mark(p_entities text[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF cardinality(p_entities) = 0 THEN
        RETURN;
    END IF;
    INSERT INTO entity_risk_dirty (entity)
    SELECT DISTINCT x FROM unnest(p_entities) AS x WHERE x IS NOT NULL
    ON CONFLICT (entity) DO NOTHING;
    IF FOUND THEN
        PERFORM pg_notify('offsite_risk', '');
    END IF;
END $$;

-- Statement-level, over the transition tables: the clues sink writes a batch of clues in
-- one INSERT ... ON CONFLICT DO UPDATE, which queues and notifies once per batch.
CREATE OR REPLACE FUNCTION offsite_risk_clues_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM offsite_risk_mark(offsite_clues_entities(array_agg(modality), array_agg(subject),
                                                     array_agg(zones)))
    FROM new_rows;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION offsite_risk_clues_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- the new rows, and the old ones of a clue re-routed (another entity may lose it)
    PERFORM offsite_risk_mark(offsite_clues_entities(array_agg(modality), array_agg(subject),
                                                     array_agg(zones)))
    FROM (SELECT modality, subject, zones FROM new_rows
          UNION ALL
          SELECT o.modality, o.subject, o.zones FROM old_rows o
          JOIN new_rows n ON n.clue_id = o.clue_id
          WHERE o.zones IS DISTINCT FROM n.zones OR o.subject IS DISTINCT FROM n.subject) AS r;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS clues_risk ON clues;
DROP TRIGGER IF EXISTS clues_risk_inserted ON clues;
CREATE TRIGGER clues_risk_inserted AFTER INSERT ON clues REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION offsite_risk_clues_inserted();
DROP TRIGGER IF EXISTS clues_risk_updated ON clues;
CREATE TRIGGER clues_risk_updated AFTER UPDATE ON clues
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION offsite_risk_clues_updated();

CREATE OR REPLACE FUNCTION offsite_risk_task_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM offsite_risk_mark(offsite_clues_entities(ARRAY[c.modality], ARRAY[c.subject],
                                                     ARRAY[c.zones]))
    FROM clues c WHERE c.clue_id = NEW.clue_id;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS tasks_risk ON tasks;
CREATE TRIGGER tasks_risk AFTER UPDATE OF result ON tasks
    FOR EACH ROW WHEN (OLD.result IS DISTINCT FROM NEW.result)
    EXECUTE FUNCTION offsite_risk_task_changed();

CREATE OR REPLACE FUNCTION offsite_risk_monitor_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        PERFORM offsite_risk_mark(ARRAY[OLD.entity, NEW.entity]);
    ELSE
        PERFORM offsite_risk_mark(ARRAY[NEW.entity]);
    END IF;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS stations_risk ON stations;
CREATE TRIGGER stations_risk AFTER UPDATE OF entity ON stations
    FOR EACH ROW WHEN (OLD.entity IS DISTINCT FROM NEW.entity)
    EXECUTE FUNCTION offsite_risk_monitor_changed();
DROP TRIGGER IF EXISTS stations_risk_new ON stations;
CREATE TRIGGER stations_risk_new AFTER INSERT ON stations
    FOR EACH ROW WHEN (NEW.entity IS NOT NULL) EXECUTE FUNCTION offsite_risk_monitor_changed();
DROP TRIGGER IF EXISTS cameras_risk ON cameras;
CREATE TRIGGER cameras_risk AFTER UPDATE OF entity ON cameras
    FOR EACH ROW WHEN (OLD.entity IS DISTINCT FROM NEW.entity)
    EXECUTE FUNCTION offsite_risk_monitor_changed();
DROP TRIGGER IF EXISTS cameras_risk_new ON cameras;
CREATE TRIGGER cameras_risk_new AFTER INSERT ON cameras
    FOR EACH ROW WHEN (NEW.entity IS NOT NULL) EXECUTE FUNCTION offsite_risk_monitor_changed();

CREATE OR REPLACE FUNCTION offsite_risk_entity_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM offsite_risk_mark(ARRAY[NEW.id]);
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS entities_risk ON entities;
CREATE TRIGGER entities_risk AFTER INSERT OR UPDATE OF zones, status ON entities
    FOR EACH ROW EXECUTE FUNCTION offsite_risk_entity_changed();
