-- Random inspection draws and joint inspections (issue 17, "double random, one public").
--
-- A draw (inspection_draws) picks, for one department and one period, regulated entities
-- with odds tied to their credit class and risk, and two inspectors for each from the
-- department's roster (oversight/draws.py). The row keeps the seed, the parameters and the
-- inputs (candidates and roster as they were), so that anyone can recompute the draw; its
-- items (inspection_draw_items) are the public list: entity, inspectors, date.
--
-- Each drawn item is an inspection (the visit: one entity, a window, the departments that
-- take part) and a task of the department. When tasks of several departments (draws or
-- clue tasks) point at the same entity in overlapping windows, their inspections merge into
-- one joint inspection (oversight/joint.py): one visit, one task per department, each task
-- keeping its own result. A merged inspection points at the one it went into.
--
-- Tasks grow beyond clues: clue_id becomes optional (still unique for clue tasks, so the
-- clue trigger of 005 works unchanged), task_kind says where a task comes from, entity is
-- the regulated entity it is about (for a clue task: the entity of its station or camera,
-- else of an enterprise-site zone it touches; filled by a trigger), and co_assignee is the
-- second inspector of a pair.

CREATE TABLE IF NOT EXISTS inspections (
    id            bigserial PRIMARY KEY,
    entity        text NOT NULL REFERENCES entities (id),
    window_start  timestamptz NOT NULL,
    window_end    timestamptz NOT NULL CHECK (window_end >= window_start),
    visit_date    date,
    departments   text[] NOT NULL DEFAULT '{}',
    merged_into   bigint REFERENCES inspections (id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS inspections_entity_idx ON inspections (entity, window_start);

CREATE TABLE IF NOT EXISTS inspection_draws (
    id               bigserial PRIMARY KEY,
    department       text NOT NULL REFERENCES departments (id),
    period_from      date NOT NULL,
    period_to        date NOT NULL CHECK (period_to >= period_from),
    seed             bigint NOT NULL CHECK (seed >= 0),
    requested_count  integer CHECK (requested_count >= 0),
    expected_count   double precision NOT NULL,
    params           jsonb NOT NULL,
    inputs           jsonb NOT NULL,
    drawn_by         text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    -- the same request (department, period, seed) is the same draw: a retry returns it
    UNIQUE (department, period_from, period_to, seed)
);
CREATE INDEX IF NOT EXISTS inspection_draws_dept_idx ON inspection_draws (department, period_from);

ALTER TABLE tasks ALTER COLUMN clue_id DROP NOT NULL;
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS task_kind text NOT NULL DEFAULT 'clue'
    CHECK (task_kind IN ('clue', 'draw'));
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS entity text;
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS inspection_id bigint REFERENCES inspections (id);
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS co_assignee text REFERENCES users (id);
ALTER TABLE tasks ADD CONSTRAINT tasks_kind_clue
    CHECK ((task_kind = 'clue') = (clue_id IS NOT NULL));
ALTER TABLE tasks ADD CONSTRAINT tasks_pair_differs
    CHECK (co_assignee IS NULL OR co_assignee IS DISTINCT FROM assignee);
CREATE INDEX IF NOT EXISTS tasks_co_assignee_idx ON tasks (co_assignee, state)
    WHERE co_assignee IS NOT NULL;
CREATE INDEX IF NOT EXISTS tasks_entity_idx ON tasks (entity, state) WHERE entity IS NOT NULL;
CREATE INDEX IF NOT EXISTS tasks_inspection_idx ON tasks (inspection_id)
    WHERE inspection_id IS NOT NULL;

CREATE TABLE IF NOT EXISTS inspection_draw_items (
    draw_id        bigint NOT NULL REFERENCES inspection_draws (id),
    rank           integer NOT NULL,
    entity         text NOT NULL REFERENCES entities (id),
    inspectors     text[] NOT NULL,
    planned_date   date NOT NULL,
    reason         text NOT NULL CHECK (reason IN ('random', 'high_risk')),
    inspection_id  bigint NOT NULL REFERENCES inspections (id),
    task_id        bigint NOT NULL REFERENCES tasks (id),
    PRIMARY KEY (draw_id, rank)
);
CREATE INDEX IF NOT EXISTS inspection_draw_items_entity_idx
    ON inspection_draw_items (entity, planned_date);

-- The regulated entity a clue is about: its station's or camera's entity (a power clue's
-- subject is the entity), else the first
-- active entity one of whose enterprise-site zones the clue touches.
CREATE OR REPLACE FUNCTION offsite_clue_entity(p_clue text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT COALESCE(
        (SELECT CASE c.modality
                    WHEN 'env' THEN (SELECT s.entity FROM stations s WHERE s.id = c.subject)
                    WHEN 'video' THEN (SELECT k.entity FROM cameras k WHERE k.id = c.subject)
                    WHEN 'power' THEN (SELECT e.id FROM entities e WHERE e.id = c.subject)
                END),
        (SELECT e.id FROM entities e
         WHERE e.status = 'active' AND EXISTS (
             SELECT 1 FROM jsonb_array_elements(
                 CASE WHEN jsonb_typeof(c.zones) = 'array' THEN c.zones ELSE '[]'::jsonb END) z
             WHERE z->>'id' = ANY (e.zones))
         ORDER BY e.id LIMIT 1))
    FROM clues c WHERE c.clue_id = p_clue
$$;

CREATE OR REPLACE FUNCTION offsite_task_entity() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.entity IS NULL AND NEW.clue_id IS NOT NULL THEN
        NEW.entity := offsite_clue_entity(NEW.clue_id);
    END IF;
    RETURN NEW;
END $$;

DROP TRIGGER IF EXISTS tasks_entity ON tasks;
CREATE TRIGGER tasks_entity BEFORE INSERT ON tasks
    FOR EACH ROW EXECUTE FUNCTION offsite_task_entity();

UPDATE tasks SET entity = offsite_clue_entity(clue_id)
WHERE entity IS NULL AND clue_id IS NOT NULL AND offsite_clue_entity(clue_id) IS NOT NULL;
